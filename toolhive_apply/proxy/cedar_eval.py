"""Evaluation of the Cedar subset with Cedar's semantics (see ``cedar.py``): scopes, conditions, and the decision
(forbid wins, then any permit, else deny). A condition that errors makes its policy not apply."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from toolhive_apply.proxy.cedar_parser import parse_policies
from toolhive_apply.proxy.cedar_syntax import (
    Attr,
    Binary,
    Call,
    Expr,
    Has,
    Like,
    Literal,
    Not,
    Policy,
    Scope,
    SetExpr,
    Var,
)
from toolhive_apply.proxy.cedar_values import CedarSet, EntityStore, EvaluationError, Uid, Value, equal, member


def _like(value: str, pattern: Sequence[str | None]) -> bool:
    """Glob match (``*`` any run of characters) by dynamic programming: linear memory, no backtracking blow-up."""
    reachable = [True] + [False] * len(value)  # reachable[j]: pattern prefix matches value[:j]
    for part in pattern:
        if part is None:
            for j in range(1, len(value) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            reachable = [False] + [reachable[j - 1] and value[j - 1] == part for j in range(1, len(value) + 1)]
    return reachable[len(value)]


@dataclass(frozen=True, slots=True)
class Request:
    principal: Uid
    action: Uid
    resource: Uid
    context: Mapping[str, Value] = field(default_factory=dict)


class _Evaluator:
    def __init__(self, request: Request, store: EntityStore) -> None:
        self.request = request
        self.store = store

    def boolean(self, expr: Expr) -> bool:
        value = self.eval(expr)
        if not isinstance(value, bool):
            raise EvaluationError("not a boolean")
        return value

    def eval(self, expr: Expr) -> Value:  # noqa: C901 - one case per node type
        if isinstance(expr, Literal):
            return expr.value
        if isinstance(expr, Var):
            if expr.name == "context":
                return self.request.context
            uid: Uid = getattr(self.request, expr.name)
            return uid
        if isinstance(expr, SetExpr):
            return CedarSet(tuple(self.eval(item) for item in expr.items))
        if isinstance(expr, Not):
            return not self.boolean(expr.operand)
        if isinstance(expr, Binary):
            return self.binary(expr)
        if isinstance(expr, Has):
            target = self.eval(expr.operand)
            if isinstance(target, Uid):
                entity = self.store.entities.get(target)
                return entity is not None and expr.attr in entity.attrs
            if isinstance(target, Mapping):
                return expr.attr in target
            raise EvaluationError("has on a value that is neither an entity nor a record")
        if isinstance(expr, Like):
            target = self.eval(expr.operand)
            if not isinstance(target, str):
                raise EvaluationError("like on a non-string")
            return _like(target, expr.pattern)
        if isinstance(expr, Attr):
            return self.attribute(self.eval(expr.operand), expr.attr)
        return self.call(expr)

    def attribute(self, target: Value, name: str) -> Value:
        if isinstance(target, Uid):
            entity = self.store.entities.get(target)
            if entity is None:
                raise EvaluationError("entity does not exist")
            attrs = entity.attrs
        elif isinstance(target, Mapping):
            attrs = target
        else:
            raise EvaluationError("attribute of a value that is neither an entity nor a record")
        if name not in attrs:
            raise EvaluationError(f"no attribute {name}")
        return attrs[name]

    def call(self, expr: Call) -> Value:
        target = self.eval(expr.operand)
        argument = self.eval(expr.argument)
        if not isinstance(target, CedarSet):
            raise EvaluationError(f"{expr.method} on a non-set")
        if expr.method == "contains":
            return member(argument, target)
        if not isinstance(argument, CedarSet):
            raise EvaluationError(f"{expr.method} needs a set argument")
        if expr.method == "containsAll":
            return all(member(item, target) for item in argument.items)
        return any(member(item, target) for item in argument.items)

    def binary(self, expr: Binary) -> Value:
        if expr.op == "&&":
            return self.boolean(expr.left) and self.boolean(expr.right)
        if expr.op == "||":
            return self.boolean(expr.left) or self.boolean(expr.right)
        left, right = self.eval(expr.left), self.eval(expr.right)
        if expr.op == "==":
            return equal(left, right)
        if expr.op == "!=":
            return not equal(left, right)
        if expr.op == "in":
            return self.is_in(left, right)
        if not (_is_long(left) and _is_long(right)):
            raise EvaluationError("comparison of non-longs")
        assert isinstance(left, int) and isinstance(right, int)
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[expr.op]

    def is_in(self, left: Value, right: Value) -> bool:
        if not isinstance(left, Uid):
            raise EvaluationError("in needs an entity on the left")
        if isinstance(right, Uid):
            return self.store.is_in(left, right)
        if isinstance(right, CedarSet):
            targets = right.items
            if not all(isinstance(t, Uid) for t in targets):
                raise EvaluationError("in needs a set of entities")
            return any(self.store.is_in(left, t) for t in targets if isinstance(t, Uid))
        raise EvaluationError("in needs an entity or a set of entities on the right")


def _is_long(value: Value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scope_matches(scope: Scope, uid: Uid, store: EntityStore) -> bool:
    if scope.op is None:
        return True
    if scope.op == "==":
        return uid == scope.entities[0]
    return any(store.is_in(uid, target) for target in scope.entities)


@dataclass(frozen=True, slots=True)
class PolicySet:
    policies: tuple[Policy, ...]

    @classmethod
    def parse(cls, *texts: str) -> PolicySet:
        """Every policy in ``texts`` (each may hold several), or CedarError at the first one outside the subset."""
        found: list[Policy] = []
        for text in texts:
            found.extend(parse_policies(text))
        return cls(tuple(found))

    def applies(self, policy: Policy, request: Request, store: EntityStore) -> bool:
        if not (
            _scope_matches(policy.principal, request.principal, store)
            and _scope_matches(policy.action, request.action, store)
            and _scope_matches(policy.resource, request.resource, store)
        ):
            return False
        evaluator = _Evaluator(request, store)
        try:
            return all(evaluator.boolean(expr) == is_when for is_when, expr in policy.conditions)
        except EvaluationError:
            return False  # Cedar skips a policy whose condition errors

    def is_authorized(self, request: Request, store: EntityStore) -> bool:
        """Forbid wins, then any permit, else deny."""
        permitted = False
        for policy in self.policies:
            if self.applies(policy, request, store):
                if policy.effect == "forbid":
                    return False
                permitted = True
        return permitted


def iter_uids(policies: PolicySet) -> Iterator[Uid]:
    """Every entity named in the policies' scopes (for documentation and checks)."""
    for policy in policies.policies:
        for scope in (policy.principal, policy.action, policy.resource):
            yield from scope.entities
