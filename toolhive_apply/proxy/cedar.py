"""A Cedar subset, parsed and evaluated in pure Python, for ToolHive-style authorization inside the proxy image.

The proxy image is standard-library only, so it cannot load the Cedar engine. This module evaluates the part of
Cedar that ToolHive's authorization model (docs/authz.md) uses, with Cedar's own semantics; a differential test
compares every decision with ``cedarpy`` (the real engine) over generated policies and requests. Policies outside
the subset are refused when the configuration is read (``unsupported()`` says where), never evaluated differently.

The subset:

* ``permit``/``forbid`` with optional ``@annotation("...")``; scope ``principal``/``resource`` unconstrained,
  ``== Entity`` or ``in Entity``; ``action`` unconstrained, ``== Entity``, ``in Entity`` or ``in [Entity, ...]``.
* ``when { e }`` / ``unless { e }``, any number. Expressions: ``||``, ``&&``, ``!``, ``==``, ``!=``, ``<``, ``<=``,
  ``>``, ``>=`` (longs), ``in`` (entity hierarchy from ``entities_json`` parents), ``has`` (identifier or string),
  ``like "pat*tern"``, ``.contains(x)``, ``.containsAll(s)``, ``.containsAny(s)``, attribute access ``x.a`` and
  ``x["a"]``, variables ``principal``, ``action``, ``resource``, ``context``, string / long (``-`` on a literal) /
  bool literals, entity literals ``Type::"id"`` (namespaced types too), set literals ``[...]``, parentheses.
* Not in the subset (refused, positioned): ``if-then-else``, arithmetic (``+ - *`` on expressions), record
  literals, ``is``, extension functions and methods (``ip``, ``decimal``, ``datetime``, ...), templates
  (``?principal``), ``has`` on attribute paths, ``isEmpty`` / ``getTag`` / ``hasTag``.

Semantics as Cedar's: a policy applies when its scope matches, every ``when`` is true and every ``unless`` is false;
a condition that errors (missing attribute, wrong type) makes its policy not apply (permit and forbid alike);
the decision is Allow when some permit applies and no forbid does (forbid wins, default deny). ``==`` between
different types is false; ``&&``/``||`` short-circuit; ``1 == true`` is false.

The code is in four modules, each with one concern: ``cedar_values`` (values, entities, JSON conversions),
``cedar_syntax`` (tokens and the syntax tree), ``cedar_parser`` (text to policies, ``unsupported``) and
``cedar_eval`` (scopes, conditions, the decision). This module is the one import the rest of the proxy and the host
side use (``validate`` calls ``toolhive_apply.proxy.cedar.unsupported``).
"""

from __future__ import annotations

from toolhive_apply.proxy.cedar_eval import PolicySet, Request, iter_uids
from toolhive_apply.proxy.cedar_parser import parse_policies, unsupported
from toolhive_apply.proxy.cedar_syntax import Policy, Scope, Token, tokenize
from toolhive_apply.proxy.cedar_values import (
    LONG_MAX,
    LONG_MIN,
    CedarError,
    CedarSet,
    Entity,
    EntityStore,
    EvaluationError,
    Uid,
    Value,
    entity_json,
    equal,
    parse_entities,
    prefixed,
    value_from_claim,
    value_from_json,
    value_to_json,
)

__all__ = [
    "LONG_MAX",
    "LONG_MIN",
    "CedarError",
    "CedarSet",
    "Entity",
    "EntityStore",
    "EvaluationError",
    "Policy",
    "PolicySet",
    "Request",
    "Scope",
    "Token",
    "Uid",
    "Value",
    "entity_json",
    "equal",
    "iter_uids",
    "parse_entities",
    "parse_policies",
    "prefixed",
    "tokenize",
    "unsupported",
    "value_from_claim",
    "value_from_json",
    "value_to_json",
]
