"""The proxy's Cedar subset decides as Cedar does: ToolHive's documented policies on data, positioned refusals for
what is outside the subset, and a differential test against ``cedarpy`` (the real Cedar engine) over generated
policies, entities and requests in the subset."""

from __future__ import annotations

import json
from typing import Any

import cedarpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolhive_apply.proxy.cedar import (
    CedarError,
    EntityStore,
    PolicySet,
    Request,
    Uid,
    entity_json,
    parse_entities,
    unsupported,
    value_from_json,
)


def decide(policies: list[str], request: Request, entities: list[dict[str, Any]]) -> bool:
    return PolicySet.parse(*policies).is_authorized(request, EntityStore(parse_entities(entities)))


def cedar_decides(policies: list[str], request: Request, entities: list[dict[str, Any]]) -> bool:
    answer = cedarpy.is_authorized(
        {
            "principal": str(request.principal),
            "action": str(request.action),
            "resource": str(request.resource),
            "context": dict(request.context),
        },
        "\n".join(policies),
        entities,
    )
    assert answer.decision in (cedarpy.Decision.Allow, cedarpy.Decision.Deny), answer.diagnostics.errors
    return answer.decision == cedarpy.Decision.Allow


ALICE = Uid("Client", "alice")
CALL = Uid("Action", "call_tool")
WEATHER = Uid("Tool", "weather")


def client(uid: Uid, attrs: dict[str, Any], parents: list[Uid] | None = None) -> dict[str, Any]:
    return {"uid": {"type": uid.type, "id": uid.id}, "attrs": attrs, "parents": [vars_of(p) for p in parents or []]}


def vars_of(uid: Uid) -> dict[str, str]:
    return {"type": uid.type, "id": uid.id}


DOC_CASES = [
    ('permit(principal, action == Action::"call_tool", resource == Tool::"weather");', {}, {}, True),
    ('permit(principal, action == Action::"call_tool", resource == Tool::"calculator");', {}, {}, False),
    (
        'permit(principal, action == Action::"call_tool", resource) when { principal.claim_roles.contains("admin") };',
        {"claim_roles": ["admin", "dev"]},
        {},
        True,
    ),
    (
        'permit(principal, action == Action::"call_tool", resource) when { principal.claim_roles.contains("admin") };',
        {"claim_roles": ["dev"]},
        {},
        False,
    ),
    (
        'permit(principal, action == Action::"call_tool", resource == Tool::"weather") when {\n'
        '  resource.arg_location == "New York" || resource.arg_location == "London"\n};',
        {},
        {"arg_location": "London"},
        True,
    ),
    (
        'permit(principal, action == Action::"call_tool", resource) when {\n'
        '  principal.claim_roles.contains("data_analyst") && resource.arg_data_level <= principal.claim_clearance\n};',
        {"claim_roles": ["data_analyst"], "claim_clearance": 3},
        {"arg_data_level": 5},
        False,
    ),
]


@pytest.mark.parametrize(("policy", "claims", "args", "expected"), DOC_CASES)
def test_toolhive_documented_policies(
    policy: str, claims: dict[str, Any], args: dict[str, Any], expected: bool
) -> None:
    entities = [client(ALICE, claims), client(WEATHER, args)]
    request = Request(ALICE, CALL, WEATHER, {})
    assert decide([policy], request, entities) is expected
    assert cedar_decides([policy], request, entities) is expected


def test_forbid_wins_and_default_deny() -> None:
    permit = 'permit(principal, action, resource == Tool::"weather");'
    forbid = 'forbid(principal, action, resource) when { principal.claim_role == "guest" };'
    guest = [client(ALICE, {"claim_role": "guest"})]
    request = Request(ALICE, CALL, WEATHER, {})
    assert decide([permit], request, guest) and not decide([permit, forbid], request, guest)
    assert not decide([], request, guest)
    # a forbid whose condition errors does not apply (no claim_role): the permit stands
    assert decide([permit, forbid], request, [client(ALICE, {})])


@pytest.mark.parametrize(
    ("text", "line", "col", "words"),
    [
        ("permit(principal, action, resource) when { if true then true else false };", 1, 44, "if-then-else"),
        ("permit(principal, action, resource)\nwhen { context.n + 1 > 2 };", 2, 18, "arithmetic"),
        ('permit(principal, action, resource) when { ip("1.2.3.4").isLoopback() };', 1, 44, "function"),
        ("permit(principal is Client, action, resource);", 1, 18, "'is'"),
        ("permit(principal == ?principal, action, resource);", 1, 21, "templates"),
        ('permit(principal, action, resource) when { context == {"a": 1} };', 1, 55, "record literals"),
        ("permit(principal, action, resource) when { principal.claim_x.isEmpty() };", 1, 62, "isEmpty"),
        ("permit(principal, action, resource) when { principal has a.b };", 1, 59, "attribute path"),
        ("permit(principal, action, resource)", 1, 36, "expected ';'"),
        ("allow(principal, action, resource);", 1, 1, "permit or forbid"),
    ],
)
def test_unsupported_policies_are_positioned(text: str, line: int, col: int, words: str) -> None:
    [(at_line, at_col, message)] = unsupported(text)
    assert (at_line, at_col) == (line, col) and words in message, (at_line, at_col, message)
    with pytest.raises(CedarError):
        PolicySet.parse(text)


def test_supported_policies_have_no_findings() -> None:
    assert unsupported("\n".join(policy for policy, *_ in DOC_CASES)) == []
    assert (
        unsupported('@id("p1")\npermit(principal in Group::"admins", action in [Action::"call_tool"], resource);') == []
    )


# ---------------------------------------------------------------- differential test

CLIENTS = [Uid("Client", n) for n in ("alice", "bob")]
GROUPS = [Uid("Group", n) for n in ("admins", "users")]
TOOLS = [Uid("Tool", n) for n in ("weather", "calc")]
ACTIONS = [Uid("Action", n) for n in ("call_tool", "get_prompt", "list_tools")]
WORDS = ["a", "ab", "b*", "admin", "", "x y", 'q"t']
PATTERNS = ["a*", "*b*", "*", "ab", "a\\*", "", "*y"]

strings = st.sampled_from(WORDS)
longs = st.integers(-1, 2)
scalars = st.one_of(strings, longs, st.booleans())
records = st.dictionaries(
    st.sampled_from(["name", "level"]), st.one_of(scalars, st.lists(scalars, max_size=2)), max_size=2
)
attr_values = st.one_of(scalars, st.lists(scalars, max_size=3), records)


def cedar_string(value: str) -> str:
    return json.dumps(value)


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return cedar_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, Uid):
        return str(value)
    return str(value)


CLAIMS = ["claim_role", "claim_level", "claim_groups", "claim_flag", "claim_org"]
RECORD_REFS = ["principal.claim_org.name", 'principal.claim_org["level"]', "context.claim_org.level"]
ARGS = ["arg_op", "arg_n"]
refs = st.one_of(
    st.sampled_from(CLAIMS).map(lambda a: f"principal.{a}"),
    st.sampled_from(CLAIMS).map(lambda a: f'principal["{a}"]'),
    st.sampled_from(ARGS).map(lambda a: f"resource.{a}"),
    st.sampled_from(CLAIMS + ARGS).map(lambda a: f"context.{a}"),
    st.sampled_from(RECORD_REFS),
)
entity_refs = st.sampled_from(CLIENTS + GROUPS + TOOLS).map(str)
numbers = st.one_of(
    st.integers(-1, 2).map(str),
    st.sampled_from(["principal.claim_level", "resource.arg_n", "context.arg_n", "-1", "true", RECORD_REFS[1]]),
)
operands = st.one_of(refs, scalars.map(literal), st.lists(scalars, max_size=3).map(literal), entity_refs)

leaves = st.one_of(
    st.sampled_from(["true", "false"]),
    st.tuples(operands, st.sampled_from(["==", "!="]), operands).map(" ".join),
    st.tuples(numbers, st.sampled_from(["<", "<=", ">", ">="]), numbers).map(" ".join),
    st.tuples(st.sampled_from(["principal", "resource", "context"]), st.sampled_from(CLAIMS + ARGS)).map(
        lambda p: f"{p[0]} has {p[1]}"
    ),
    st.sampled_from(["principal.claim_org has name", 'context.claim_org has "level"']),
    st.tuples(refs, st.sampled_from(PATTERNS)).map(lambda p: f"{p[0]} like {cedar_string(p[1])}"),
    st.tuples(refs, st.sampled_from(["contains", "containsAll", "containsAny"]), operands).map(
        lambda p: f"{p[0]}.{p[1]}({p[2]})"
    ),
    st.tuples(
        st.sampled_from(["principal", "resource"]),
        st.one_of(entity_refs, st.lists(entity_refs, max_size=2).map(lambda xs: "[" + ", ".join(xs) + "]")),
    ).map(lambda p: f"{p[0]} in {p[1]}"),
)
expressions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        inner.map(lambda e: f"!({e})"),
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
    ),
    max_leaves=5,
)
principal_scopes = st.sampled_from(
    ["principal", *(f"principal == {u}" for u in CLIENTS), *(f"principal in {g}" for g in GROUPS)]
)
action_scopes = st.sampled_from(
    ["action", f"action == {ACTIONS[0]}", f"action in [{ACTIONS[0]}, {ACTIONS[2]}]", "action in []"]
)
resource_scopes = st.sampled_from(["resource", *(f"resource == {t}" for t in TOOLS), f"resource in {GROUPS[0]}"])
conditions = st.lists(st.tuples(st.sampled_from(["when", "unless"]), expressions), max_size=2)
policies = st.tuples(
    st.sampled_from(["permit", "forbid"]), principal_scopes, action_scopes, resource_scopes, conditions
).map(lambda p: f"{p[0]}({p[1]}, {p[2]}, {p[3]})" + "".join(f" {kind} {{ {e} }}" for kind, e in p[4]) + ";")


def attrs_of(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(names), attr_values, max_size=len(names))


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[str], Request, list[dict[str, Any]]]:
    entities = []
    for uid in CLIENTS:
        if draw(st.booleans()) or uid == CLIENTS[0]:
            parents = draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=2))
            entities.append(client(uid, draw(attrs_of(CLAIMS)), parents))
    entities.append(client(GROUPS[0], {}, [GROUPS[1]] if draw(st.booleans()) else []))
    for uid in TOOLS:
        if draw(st.booleans()):
            parents = [GROUPS[0]] if draw(st.booleans()) else []
            entities.append(client(uid, draw(attrs_of(ARGS)), parents))
    request = Request(
        draw(st.sampled_from(CLIENTS)),
        draw(st.sampled_from(ACTIONS)),
        draw(st.sampled_from(TOOLS)),
        draw(attrs_of(CLAIMS + ARGS)),
    )
    return draw(st.lists(policies, min_size=1, max_size=4)), request, entities


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_differential_against_cedarpy(world: tuple[list[str], Request, list[dict[str, Any]]]) -> None:
    texts, request, entities = world
    for text in texts:
        assert unsupported(text) == [], text
    store = EntityStore(parse_entities(entities))
    # the context as Cedar values, as the proxy builds it (value_from_claim) and cedarpy reads the same JSON:
    # a list is a set in both
    converted = Request(
        request.principal,
        request.action,
        request.resource,
        {k: value_from_json(v, k) for k, v in request.context.items()},
    )
    ours = PolicySet.parse(*texts).is_authorized(converted, store)
    assert ours == cedar_decides(texts, request, entities), (texts, request, entities)
    for text in texts:  # each policy on its own, as a permit: does it apply, in both engines
        alone = "permit" + text.removeprefix("forbid").removeprefix("permit")
        assert PolicySet.parse(alone).is_authorized(converted, store) == cedar_decides([alone], request, entities), (
            alone
        )


def test_entity_json_round_trip() -> None:
    raw = [client(ALICE, {"claim_r": ["a", 1, True], "claim_o": {"k": "v"}}, [GROUPS[0]])]
    assert [entity_json(e) for e in parse_entities(raw)] == raw
