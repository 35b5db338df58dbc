"""The tool policy fails closed: what the proxy cannot read beyond doubt is refused, and what it forwards is read by a
Go-like (case-insensitive, last-duplicate-wins, lenient) decoder exactly as the proxy read it. On data."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.go_like import go_decode, tool_calls
from tests.support.policy_attacks import ALLOWED, ARGS, ATTACKS, FIRST_WINS, HIDDEN
from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.config import ToolOverride
from toolhive_apply.proxy.httpserver import Response
from toolhive_apply.proxy.jsonrpc import envelope_problem
from toolhive_apply.proxy.rewrite import plan_request
from toolhive_apply.proxy.sessions import SessionHub
from toolhive_apply.proxy.streamable import parse_messages
from toolhive_apply.proxy.tools import ToolPolicy

ALLOW_ONLY = ToolPolicy(allow=frozenset({ALLOWED}))
RENAMED = ToolPolicy(allow=frozenset({"say"}), overrides={ALLOWED: ToolOverride(name="say")})


def go_reads_hidden(body: bytes) -> bool:
    try:
        return any(name == HIDDEN for _, name in tool_calls(go_decode(body)))
    except (ValueError, RecursionError):
        return False


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_attack_is_real_against_a_lenient_decoder(attack: str) -> None:
    """Sanity: each body does name the hidden tool for some decoder (deep nesting is past Python's own limit)."""
    if attack == "deep nesting":
        pytest.skip("the in-process decoder cannot follow 5,000 levels; the container one does")
    if attack in FIRST_WINS:
        first = json.loads(ATTACKS[attack], object_pairs_hook=lambda pairs: dict(reversed(pairs)))
        assert first["params"]["name"] == HIDDEN
        return
    assert go_reads_hidden(ATTACKS[attack])


@pytest.mark.parametrize("policy", [ALLOW_ONLY, RENAMED], ids=["allow-list", "rename"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_under_a_policy_no_attack_is_forwarded(attack: str, policy: ToolPolicy) -> None:
    plan = plan_request(policy, ATTACKS[attack])
    assert not plan.forward and plan.body == b""
    answer = plan.rejection or plan.refusals[0]
    assert "error" in answer


def test_what_is_forwarded_is_the_proxys_own_encoding_of_what_it_decided_on() -> None:
    body = ('{"jsonrpc":"2.0", "id":1,"method":"tools/call","params":{"name":"say","arguments":' + ARGS + "}}").encode()
    plan = plan_request(RENAMED, body)
    assert plan.forward and plan.call_name == ALLOWED and plan.method == "tools/call"
    assert tool_calls(go_decode(plan.body)) == [(1.0, ALLOWED)]
    assert plan.body == strictjson.dumps(json.loads(plan.body))
    notification = plan_request(RENAMED, b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert notification.forward and notification.method == "notifications/initialized"


def test_a_refused_batch_element_refuses_the_whole_batch_and_allowed_batches_pass() -> None:
    ok = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "say", "arguments": {}}},
    ]
    plan = plan_request(RENAMED, json.dumps(ok).encode())
    assert plan.forward and plan.batch and plan.call_name is None
    assert [name for _, name in tool_calls(go_decode(plan.body))] == [ALLOWED]
    assert plan_request(RENAMED, b"[]").rejection is not None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xef\xbb\xbf{}", "byte-order mark"),
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b'{"a": NaN}', "not a JSON number"),
        (b'{"a": -Infinity}', "not a JSON number"),
        (b'{"a": 1e400}', "out of range"),
        (b'{"a": -' + b"1" * 301 + b"}", "out of range"),
        (b'{"a": "\\udc00"}', "lone surrogate"),
        (b'{"\\ud800x": 1}', "lone surrogate"),
        (b'{"a": "\xc3"}', "not UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded as UTF-8 (CESU)
        (b"{} {}", "not JSON"),
        (b"[" * 65 + b"]" * 65, "nested deeper"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, "nested deeper"),
    ],
)
def test_strict_json_refuses_what_decoders_read_differently(body: bytes, problem: str) -> None:
    with pytest.raises(strictjson.StrictJsonError, match=problem):
        strictjson.loads(body)


def test_strict_json_reads_ordinary_messages_and_keeps_big_but_safe_numbers() -> None:
    assert strictjson.loads(b' {"a": [1, 2.5, -0, "\\u00e9\\ud83d\\ude00"], "b": 1e300} \n') == {
        "a": [1, 2.5, 0, "é😀"],
        "b": 1e300,
    }
    assert strictjson.loads(b"[" * 64 + b"]" * 64) is not None


@pytest.mark.parametrize(
    "key",
    ["Name", "NAME", "nAmE"],
)
def test_go_folding_matches_ascii_case_variants(key: str) -> None:
    assert strictjson.go_fold(key) == strictjson.go_fold("name")


def test_go_folding_maps_the_kelvin_sign_and_long_s_onto_ascii_and_nothing_else() -> None:
    assert strictjson.go_fold("progressTo\u212aen") == strictjson.go_fold("progressToken")
    assert strictjson.go_fold("argument\u017f") == strictjson.go_fold("arguments")
    assert strictjson.go_fold("n\u0430me") != strictjson.go_fold("name")  # Cyrillic a: no fold to ASCII
    assert strictjson.go_fold("\u0131d") != strictjson.go_fold("id")  # dotless i is not in i's simple-fold orbit


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"_meta": {"progressToken": 1, "progressTo\u212aen": 2}}},
        {"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"_META": {}}},
        {"jsonrpc": "2.0", "id": 1, "method": "x", "Jsonrpc": "1.0"},
        {"jsonrpc": "2.0", "id": 2**60, "method": "x"},
        {"jsonrpc": "2.0", "id": True, "method": "x"},
        {"jsonrpc": "2.0", "id": 1, "method": "x", "params": "text"},
        {"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"uri": "a", "URI": "b"}},
        [{"jsonrpc": "2.0", "id": 1, "method": "x"}],
    ],
)
def test_envelope_problems(message: object) -> None:
    assert envelope_problem(message) is not None


def test_an_ordinary_envelope_has_no_problem() -> None:
    request = {
        "jsonrpc": "2.0",
        "id": "a",
        "method": "tools/call",
        "params": {"name": "x", "_meta": {"progressToken": 3}},
    }
    assert envelope_problem(request) is None
    assert envelope_problem({"jsonrpc": "2.0", "id": 4, "result": {"Tools": []}}) is None  # results are not envelope


class _RecordingBackend:
    """Stands in for the stdio backend: records what the hub would send to the server, answers every request."""

    listener: object = None

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def request(self, _: str, message: dict[str, object]) -> dict[str, object]:
        self.sent.append(json.dumps(message).encode())  # what the backend writes to the server's stdin
        return {"jsonrpc": "2.0", "id": message["id"], "result": {}}

    async def notify(self, message: dict[str, object]) -> None:
        self.sent.append(json.dumps(message).encode())

    def forget_client(self, _: str) -> None:
        pass


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_in_stdio_mode_no_attack_reaches_the_server(attack: str) -> None:
    """The stdio proxy re-encodes messages itself, but a case-variant key would still reach the server."""
    backend = _RecordingBackend()
    hub = SessionHub(backend, ALLOW_ONLY, health=None)  # type: ignore[arg-type]
    parsed = parse_messages(ATTACKS[attack])
    if isinstance(parsed, Response):
        assert parsed.status == 400
        return
    messages, _ = parsed

    async def run() -> None:
        for message in messages:
            await hub.handle("k", None, message)

    asyncio.run(run())
    assert not any(go_reads_hidden(sent) for sent in backend.sent)
