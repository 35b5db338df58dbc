"""ToolHive's tool filter/override semantics as the proxy applies them, on data."""

from __future__ import annotations

from toolhive_apply.proxy.config import ToolOverride
from toolhive_apply.proxy.jsonrpc import INVALID_PARAMS
from toolhive_apply.proxy.tools import ToolPolicy

TOOLS = [
    {"name": "get_current_time", "description": "Get the time", "inputSchema": {"type": "object"}},
    {"name": "convert_time", "description": "Convert", "inputSchema": {"type": "object"}},
    {"name": "echo", "description": "Echo", "inputSchema": {"type": "object"}},
]


def listed(policy: ToolPolicy) -> dict[str, str]:
    response = policy.rewrite_list_result({"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS, "nextCursor": "c"}})
    assert response["result"]["nextCursor"] == "c"
    return {tool["name"]: tool["description"] for tool in response["result"]["tools"]}


def call(policy: ToolPolicy, name: str) -> tuple[object, object]:
    request = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": name, "arguments": {"x": 1}}}
    return policy.rewrite_call(request)


RENAME = ToolPolicy(overrides={"get_current_time": ToolOverride(name="now", description="What time is it")})


def test_no_policy_changes_nothing() -> None:
    policy = ToolPolicy()
    assert not policy.active
    assert listed(policy) == {t["name"]: t["description"] for t in TOOLS}
    forwarded, refusal = call(policy, "anything")
    assert refusal is None and forwarded is not None


def test_an_override_renames_and_redescribes_and_a_call_by_the_new_name_reaches_the_real_tool() -> None:
    assert listed(RENAME) == {"now": "What time is it", "convert_time": "Convert", "echo": "Echo"}
    forwarded, refusal = call(RENAME, "now")
    assert refusal is None
    assert forwarded == {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "get_current_time", "arguments": {"x": 1}},
    }


def test_the_old_name_of_a_renamed_tool_is_not_callable() -> None:
    forwarded, refusal = call(RENAME, "get_current_time")
    assert forwarded is None
    assert refusal == {
        "jsonrpc": "2.0",
        "id": 9,
        "error": {"code": INVALID_PARAMS, "message": "tool not found: get_current_time"},
    }


def test_the_filter_matches_the_overridden_name_after_the_override() -> None:
    policy = ToolPolicy(allow=frozenset({"now", "echo"}), overrides=RENAME.overrides)
    assert set(listed(policy)) == {"now", "echo"}
    assert call(policy, "now")[1] is None
    assert call(policy, "echo")[1] is None
    assert call(policy, "convert_time")[0] is None


def test_filtering_by_the_actual_name_of_a_renamed_tool_hides_it() -> None:
    policy = ToolPolicy(allow=frozenset({"get_current_time"}), overrides=RENAME.overrides)
    assert listed(policy) == {}
    assert call(policy, "now")[0] is None
    assert call(policy, "get_current_time")[0] is None


def test_a_description_only_override_keeps_the_name() -> None:
    policy = ToolPolicy(overrides={"echo": ToolOverride(description="Says it back")})
    assert listed(policy)["echo"] == "Says it back"
    forwarded, _ = call(policy, "echo")
    assert forwarded is not None and forwarded["params"]["name"] == "echo"  # type: ignore[index]


def test_a_rename_onto_an_existing_name_wins_over_that_tool() -> None:
    policy = ToolPolicy(overrides={"convert_time": ToolOverride(name="echo")})
    tools = listed(policy)
    assert list(tools) == ["get_current_time", "echo"] and tools["echo"] == "Convert"
    forwarded, _ = call(policy, "echo")
    assert forwarded is not None and forwarded["params"]["name"] == "convert_time"  # type: ignore[index]


def test_errors_pass_through_and_entries_without_a_certain_name_are_hidden() -> None:
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "no"}}
    assert RENAME.rewrite_list_result(error) == error
    odd = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"nameless": True}, "junk", {"name": "echo"}]}}
    assert RENAME.rewrite_list_result(odd)["result"]["tools"] == [{"name": "echo"}]
    # A case-insensitive client (Go) would read the second key as the name: the proxy cannot say which tool it is.
    shadowed = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "echo", "NAME": "get_current_time"}]}}
    assert RENAME.rewrite_list_result(shadowed)["result"]["tools"] == []
    second_list = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [], "Tools": [{"name": "convert_time"}]}}
    assert "error" in RENAME.rewrite_list_result(second_list)


def test_under_a_policy_a_call_without_a_string_name_is_refused() -> None:
    for params in ({"name": 3}, {}, ["echo"], {"Name": "echo"}):
        request = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}
        forwarded, refusal = RENAME.rewrite_call(request)
        assert forwarded is None and refusal is not None and refusal["error"]["code"] == INVALID_PARAMS
