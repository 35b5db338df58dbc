"""Aggregation of several backends' tools: filter, overrides, the three conflict strategies, the name rule, paging."""

from __future__ import annotations

import pytest

from toolhive_apply.proxy.vmcp_aggregate import CursorError, Listing, Route, aggregate, page, resolve_names
from toolhive_apply.proxy.vmcp_config import Aggregation, Rename, Strategy, WorkloadTools, parse_aggregation

TOOLS = [("alpha", ["echo", "add", "get_env"]), ("beta", ["echo", "add", "get_env"])]


def _config(raw: dict[str, object]) -> Aggregation:
    problems: list[str] = []
    config = parse_aggregation(raw, problems, "aggregation")
    assert config is not None, problems
    return config


def test_prefix_names_every_tool_after_its_workload_and_routes_back_to_the_original_name() -> None:
    resolution = resolve_names(TOOLS, Aggregation())
    assert sorted(resolution.routes) == [f"{b}_{t}" for b in ("alpha", "beta") for t in ("add", "echo", "get_env")]
    assert resolution.routes["beta_get_env"] == Route("beta", "get_env")
    assert resolution.warnings == ()


def test_prefix_format_is_applied_as_written() -> None:
    config = _config({"conflict_resolution_config": {"prefix_format": "{workload}."}})
    assert "alpha.echo" in resolve_names(TOOLS, config).routes


def test_priority_keeps_the_first_backend_of_priority_order_and_warns_about_the_hidden_tools() -> None:
    config = _config({"conflict_resolution": "priority", "conflict_resolution_config": {"priority_order": ["beta"]}})
    resolution = resolve_names(TOOLS, config)
    assert resolution.routes["echo"] == Route("beta", "echo")
    assert len(resolution.routes) == 3
    assert "tool 'echo' of alpha is hidden by beta's" in resolution.warnings


def test_manual_keeps_no_colliding_tool_and_names_each_collision() -> None:
    config = _config(
        {
            "conflict_resolution": "manual",
            "tools": [{"workload": "alpha", "overrides": {"echo": {"name": "alpha_echo"}}}],
        }
    )
    resolution = resolve_names(TOOLS, config)
    assert resolution.collisions == {"add": ("alpha", "beta"), "get_env": ("alpha", "beta")}
    assert resolution.routes == {"alpha_echo": Route("alpha", "echo"), "echo": Route("beta", "echo")}


def test_filter_works_on_the_backends_own_names_and_overrides_rename_and_describe() -> None:
    config = Aggregation(
        tools={"alpha": WorkloadTools("alpha", frozenset({"echo", "add"}), {"echo": Rename("say", "Say it back")})}
    )
    listings = [
        Listing("alpha", tuple({"name": n, "description": "d", "inputSchema": {}} for n in ("echo", "add", "get_env"))),
        Listing("beta", ({"name": "echo", "inputSchema": {}},)),
    ]
    catalog = aggregate(listings, config)
    names = [t["name"] for t in catalog.tools]
    assert names == ["alpha_say", "alpha_add", "beta_echo"]
    assert catalog.tools[0]["description"] == "Say it back"
    assert catalog.tools[0]["inputSchema"] == {}
    assert catalog.tool_routes["alpha_say"] == Route("alpha", "echo")


def test_a_name_outside_the_mcp_tool_name_rule_is_not_offered() -> None:
    config = Aggregation(strategy=Strategy.PREFIX, prefix_format="{workload} ")
    resolution = resolve_names([("alpha", ["echo"]), ("beta", ["x" * 128])], config)
    assert resolution.routes == {}
    assert [i[0] for i in resolution.invalid] == ["alpha", "beta"]


def test_resources_are_not_renamed_and_templates_route_by_their_literal_stem() -> None:
    listings = [
        Listing("alpha", resources=({"uri": "file:///a", "name": "a"},), templates=({"uriTemplate": "alpha://{x}"},)),
        Listing("beta", resources=({"uri": "file:///a", "name": "a2"}, {"uri": "file:///b", "name": "b"})),
    ]
    catalog = aggregate(listings, Aggregation())
    assert [r["uri"] for r in catalog.resources] == ["file:///a", "file:///b"]
    assert catalog.backend_of_uri("file:///a") == "alpha"
    assert catalog.backend_of_uri("file:///b") == "beta"
    assert catalog.backend_of_uri("alpha://thing") == "alpha"
    assert catalog.backend_of_uri("other://x") is None


def test_prompts_take_the_prefix_too() -> None:
    listings = [Listing("alpha", prompts=({"name": "greet"},)), Listing("beta", prompts=({"name": "greet"},))]
    catalog = aggregate(listings, Aggregation())
    assert [p["name"] for p in catalog.prompts] == ["alpha_greet", "beta_greet"]
    assert catalog.prompt_routes["beta_greet"] == Route("beta", "greet")


def test_pages_follow_the_cursor_to_the_end_and_foreign_cursors_are_refused() -> None:
    items = [{"name": str(i)} for i in range(5)]
    first, cursor = page(items, None, size=2)
    second, cursor2 = page(items, cursor, size=2)
    last, end = page(items, cursor2, size=2)
    assert [*first, *second, *last] == items
    assert end is None
    for bad in ("vmcp:99", "vmcp:²", "x", 3, "vmcp:-1"):
        with pytest.raises(CursorError):
            page(items, bad, size=2)


def test_aggregation_problems_are_all_reported() -> None:
    problems: list[str] = []
    raw = {"conflict_resolution": "newest", "tools": [{"workload": "a", "filter": "echo"}, {"workload": 3}]}
    assert parse_aggregation(raw, problems, "aggregation") is None
    assert len(problems) == 3
