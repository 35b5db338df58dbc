"""Benchmark: toolhive-apply beside docker-compose, Ansible and a docker-py floor, in one run (issue #9).

Run by hand (not by CI), normally through `bash bench/run.sh`; directly:
`python bench/peers.py [--sizes 10 50 100 200] [--repeat 3] [--repeat-large 1] [--out FILE]`.

For each N and each repeat, every tool goes through the same life cycle on its own N workloads, one tool after
another (the order rotates between repeats so that load from other work on the engine does not always hit the
same tool): cold apply, no-op plan, no-op apply, one workload changed among N, destroy. Every tool runs as a
subprocess through its own command line, the floor included (bench/floor.py), so every number includes
interpreter start-up.

A broken tool must not look fast, so every step is checked against the engine afterwards: after an apply all
containers run (toolhive-apply: server, proxy and docker gate per stdio workload), a no-op left every container id
as it was, "one changed" replaced exactly the changed workload's containers (and its env is the new one), destroy
left nothing.

`--base-tree DIR ...` adds a toolhive-apply column per other checkout (for example `git worktree add /tmp/old
<commit>`), titled by `--base-label`: the same life cycle, its CLI run with that tree first on PYTHONPATH.

Fairness caveat: a toolhive-apply workload is three containers (server, proxy, docker gate) and its apply
returns only once MCP `initialize` answers through the proxy; the peers run one container per workload and wait for
nothing. Ansible's loop is serial by design (one module run per item).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from peer_tools import (  # noqa: E402
    IMAGE,
    SUITE,
    SUITE_LABEL,
    TOOLS,
    Compose,
    Tool,
    ToolhiveApply,
    base_tool,
    exclusive,
    timed,
    workloads_for,
)

SCENARIOS = ("cold", "noop_plan", "noop_apply", "changed", "destroy")
SCENARIO_TITLES = {
    "cold": "Cold apply (nothing exists)",
    "noop_plan": "No-op plan (everything up to date)",
    "noop_apply": "No-op apply (everything up to date)",
    "changed": "One workload changed among N (apply)",
    "destroy": "Destroy",
}

# --------------------------------------------------------------------------------------------------
# the engine's view: what each tool left behind
# --------------------------------------------------------------------------------------------------


def containers_of(api: Any, tool: Tool) -> dict[str, tuple[str, str]]:
    """Name -> (id, state) of every container the tool owns (toolhive-apply's stack lock excluded)."""
    found: dict[str, tuple[str, str]] = {}
    for filters in tool.selectors():
        for c in api.containers(all=True, filters=filters):
            name = c["Names"][0].lstrip("/")
            if not name.startswith("toolhive-apply-lock."):
                found[name] = (c["Id"], c["State"])
    return found


class NotConvergedError(AssertionError):
    """A tool returned success but the engine does not show what it should."""


def check_running(api: Any, tool: Tool, count: int, step: str) -> dict[str, tuple[str, str]]:
    seen = containers_of(api, tool)
    running = [n for n, (_, state) in seen.items() if state == "running"]
    expected = count * tool.containers_per_workload + tool.extra_containers
    if len(running) != expected or len(seen) != expected + tool.record_containers:
        raise NotConvergedError(
            f"{tool.title} after {step}: {len(running)} running of {len(seen)} containers, expected {expected}"
        )
    return seen


def check_unchanged(
    before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]], tool: Tool, step: str
) -> None:
    moved = sorted(n for n in before.keys() | after.keys() if before.get(n, ("",))[0] != after.get(n, ("",))[0])
    if moved:
        raise NotConvergedError(f"{tool.title} {step} touched {len(moved)} container(s): {moved[:4]}")


def check_changed(
    api: Any, tool: Tool, before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]], changed: str
) -> None:
    """Exactly the changed workload's containers were replaced, and the server runs with the new env."""
    moved = {n for n in before.keys() | after.keys() if before.get(n, ("",))[0] != after.get(n, ("",))[0]}
    allowed = {changed, f"{changed}-proxy", f"{changed}-gate"}
    if not moved or not moved <= allowed or changed not in moved:
        raise NotConvergedError(f"{tool.title} one-changed replaced {sorted(moved)[:4]}, expected {changed}")
    env = api.inspect_container(changed)["Config"]["Env"] or []
    if "BENCH=2" not in env:
        raise NotConvergedError(f"{tool.title} one-changed: {changed} still has env {env}")


def check_gone(api: Any, tool: Tool) -> None:
    left = containers_of(api, tool)
    if left:
        raise NotConvergedError(f"{tool.title} after destroy: {len(left)} container(s) left: {sorted(left)[:4]}")


def cleanup(api: Any) -> int:
    """Everything an earlier (maybe interrupted) run of this benchmark left; nothing else is touched."""
    ours: list[dict[str, Any]] = list(api.containers(all=True, filters={"label": [f"{SUITE_LABEL}={SUITE}"]}))
    for c in api.containers(all=True, filters={"label": ["toolhive-apply.stack"]}):
        if (c.get("Labels") or {}).get("toolhive-apply.stack", "").startswith("pb-"):
            ours.append(c)
    ours += api.containers(all=True, filters={"name": ["^/toolhive-apply-lock\\.pb-"]})

    def remove(container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(container_id, force=True)

    unique = list({c["Id"] for c in ours})
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(remove, unique))
    removed = len(unique)
    for network in api.networks():
        labels = network.get("Labels") or {}
        if labels.get("toolhive-apply.stack", "").startswith("pb-") or labels.get(
            "com.docker.compose.project", ""
        ).startswith("pbcompose"):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_network(network["Id"])
    for volume in (api.volumes() or {}).get("Volumes") or []:  # vmcp-only stdio units' named gate volumes
        if (volume.get("Labels") or {}).get("toolhive-apply.stack", "").startswith("pb-"):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_volume(volume["Name"])
    return removed


# --------------------------------------------------------------------------------------------------
# one life cycle of one tool
# --------------------------------------------------------------------------------------------------


def engine_noop_plan(tool: ToolhiveApply, samples: int) -> dict[str, Any]:
    """In-process no-op plan (no interpreter start-up) with the counting client, beside one list call."""
    from toolhive_apply.manifest import load_manifest
    from toolhive_apply.operations import Connection, make_plan, open_targets

    path = tool.directory / "stack.yaml"
    targets = open_targets(Connection(tool.stack, parallelism=8))
    times, calls, by_call = [], 0, {}
    for _ in range(samples):
        targets.docker.reset_calls()
        started = time.perf_counter()
        plan = make_plan(load_manifest([path]), targets)
        times.append(time.perf_counter() - started)
        calls, by_call = targets.docker.total_calls, dict(targets.docker.calls)
        if plan.has_changes:
            raise NotConvergedError("toolhive-apply in-process no-op plan has changes")
    filters = {"label": [f"toolhive-apply.stack={tool.stack}"]}
    floor = []
    for _ in range(samples):
        started = time.perf_counter()
        targets.docker.containers(all=True, filters=filters)
        floor.append(time.perf_counter() - started)
    targets.docker.close()
    return {"plan_s": times, "floor_list_s": floor, "calls": calls, "calls_by_kind": by_call}


def lifecycle(api: Any, tool: Tool, count: int, plan_samples: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The five scenarios in order, each checked; returns seconds per scenario (no-op plan: a list)."""
    result: dict[str, Any] = {}
    tool.write(workloads_for(tool.prefix, count))
    result["cold"] = timed(tool.apply)
    before = check_running(api, tool, count, "cold apply")
    result["noop_plan"] = [timed(tool.plan) for _ in range(plan_samples)]
    check_unchanged(before, containers_of(api, tool), tool, "no-op plan")
    if isinstance(tool, ToolhiveApply) and tool.tree is None:
        result["engine"] = engine_noop_plan(tool, plan_samples)
    result["noop_apply"] = timed(tool.apply)
    after = check_running(api, tool, count, "no-op apply")
    check_unchanged(before, after, tool, "no-op apply")
    tool.write(workloads_for(tool.prefix, count, changed=True))
    result["changed"] = timed(tool.apply)
    changed = check_running(api, tool, count, "one changed")
    check_changed(api, tool, after, changed, f"{tool.prefix}-000")
    result["destroy"] = timed(tool.destroy)
    check_gone(api, tool)
    log(
        f"  {tool.title:28} N={count}: cold {result['cold']:.2f}s, plan {statistics.median(result['noop_plan']):.2f}s,"
        f" no-op apply {result['noop_apply']:.2f}s, changed {result['changed']:.2f}s, destroy {result['destroy']:.2f}s"
    )
    return result


def warm_up(tool_class: type[ToolhiveApply], directory: Path, log: Callable[[str], None]) -> None:
    """One small untimed round of toolhive-apply: the proxy image (one per tree) is built here, not inside a timed
    apply."""
    tool = tool_class(1, directory / "warmup")
    tool.write(workloads_for(tool.prefix, 1))
    started = time.perf_counter()
    tool.apply()
    tool.destroy()
    log(f"warm-up of {tool.title} (proxy image ready): {time.perf_counter() - started:.1f}s")


# --------------------------------------------------------------------------------------------------
# statistics and the tables
# --------------------------------------------------------------------------------------------------


def samples(runs: list[dict[str, Any]], scenario: str) -> list[float]:
    out: list[float] = []
    for run in runs:
        value = run[scenario]
        out.extend(value if isinstance(value, list) else [value])
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarise(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """N -> tool -> scenario -> {median, min, max, n, ratio to the floor's median}."""
    table: dict[str, Any] = {}
    for n, by_tool in results.items():
        table[n] = {}
        for key, runs in by_tool.items():
            table[n][key] = {s: summary(samples(runs, s)) for s in SCENARIOS}
        floor = table[n].get("floor")
        for key in table[n]:
            for s in SCENARIOS:
                if floor:
                    table[n][key][s]["ratio"] = table[n][key][s]["median"] / floor[s]["median"]
        tha = by_tool.get("tha")
        if tha:
            engine = [r["engine"] for r in tha]
            table[n]["engine"] = {
                "plan": summary([t for e in engine for t in e["plan_s"]]),
                "floor_list": summary([t for e in engine for t in e["floor_list_s"]]),
                "calls": sorted({e["calls"] for e in engine}),
                "calls_by_kind": engine[-1]["calls_by_kind"],
            }
    return table


def cell(stats: dict[str, float]) -> str:
    spread = f"{stats['min']:.2f}-{stats['max']:.2f}"
    ratio = f", **{stats['ratio']:.1f}x**" if "ratio" in stats else ""
    return f"{stats['median']:.2f} ({spread}){ratio}"


def markdown(table: dict[str, Any], titles: dict[str, str]) -> str:
    """One table per scenario, a column per tool in `titles` (in its order)."""
    keys = list(titles)
    lines: list[str] = []
    for scenario in SCENARIOS:
        lines += [f"#### {SCENARIO_TITLES[scenario]}", ""]
        lines.append("| N | " + " | ".join(titles[k] for k in keys) + " |")
        lines.append("|---" * (len(keys) + 1) + "|")
        for n, by_tool in table.items():
            cells = []
            for k in keys:
                if k not in by_tool:
                    cells.append("-")
                    continue
                text = cell(by_tool[k][scenario])
                if scenario == "noop_plan" and k == Compose.key:
                    text += " †"
                cells.append(text)
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "#### No-op plan in-process (toolhive-apply's API, no interpreter start-up) and Docker API calls per plan",
        "",
        "| N | toolhive-apply make_plan (s) | one list call (s) | ratio | calls/plan |",
        "|---|---|---|---|---|",
    ]
    for n, by_tool in table.items():
        if "engine" in by_tool:
            e = by_tool["engine"]
            ratio = e["plan"]["median"] / e["floor_list"]["median"]
            lines.append(
                f"| {n} | {e['plan']['median']:.3f} ({e['plan']['min']:.3f}-{e['plan']['max']:.3f}) "
                f"| {e['floor_list']['median']:.3f} | {ratio:.0f}x | {', '.join(map(str, e['calls']))} |"
            )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100, 200])
    parser.add_argument("--repeat", type=int, default=3, help="life cycles per tool and N")
    parser.add_argument("--repeat-large", type=int, default=None, help="life cycles for N >= 200 (default --repeat)")
    parser.add_argument("--plan-samples", type=int, default=3, help="no-op plans per life cycle")
    parser.add_argument("--tools", nargs="+", default=[t.key for t in TOOLS], choices=[t.key for t in TOOLS])
    parser.add_argument(
        "--base-tree", type=Path, nargs="+", default=[], help="other checkouts, each run as a column (issue #15)"
    )
    parser.add_argument("--base-label", nargs="+", default=[], help="what each --base-tree column is called")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "peers.json")
    parser.add_argument("--table-from", type=Path, nargs="+", help="print the tables of saved runs, merged by N")
    args = parser.parse_args()
    if args.table_from:
        merged: dict[str, Any] = {}
        titles = {t.key: t.title for t in TOOLS}
        for saved in args.table_from:
            data = json.loads(saved.read_text(encoding="utf-8"))
            merged.update(data["results"])
            titles.update(data.get("titles", {}))
        print(markdown(summarise(merged), titles))
        return 0
    labels = args.base_label + [str(tree) for tree in args.base_tree[len(args.base_label) :]]
    args.tool_classes = [t for t in TOOLS if t.key in args.tools]
    args.tool_classes[1:1] = [
        base_tool(i + 1, tree, label) for i, (tree, label) in enumerate(zip(args.base_tree, labels, strict=False))
    ]
    with exclusive():
        return measure(args)


def measure(args: argparse.Namespace) -> int:
    """The whole run: clean-up, warm-up, every N and repeat, final clean-up; prints the tables."""

    def log(line: str) -> None:
        print(f"[{datetime.now().strftime('%H:%M:%S')}] {line}", flush=True)

    api = docker.APIClient(version="auto")
    api.inspect_image(IMAGE)  # fails early when the test images are not built
    log(f"clean-up of an earlier run: {cleanup(api)} container(s) removed")
    tools = args.tool_classes
    titles = {t.key: t.title for t in tools}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
            trees = {t.tree: t for t in tools if issubclass(t, ToolhiveApply)}  # one proxy image per tree
            for tree, tool_class in trees.items():
                warm_up(ToolhiveApply if tree is None else tool_class, Path(tmp), log)
            for count in args.sizes:
                repeat = args.repeat_large if count >= 200 and args.repeat_large else args.repeat
                results[str(count)] = {t.key: [] for t in tools}
                for r in range(repeat):
                    order = tools[r % len(tools) :] + tools[: r % len(tools)]
                    log(f"N={count} repeat {r + 1}/{repeat}: {' -> '.join(t.key for t in order)}")
                    for tool_class in order:
                        tool = tool_class(count, Path(tmp) / f"n{count}-r{r}")
                        results[str(count)][tool.key].append(lifecycle(api, tool, count, args.plan_samples, log))
                _save(args.out, results, titles, time.perf_counter() - started)
    finally:
        log(f"final clean-up: {cleanup(api)} container(s) removed")
    table = summarise(results)
    _save(args.out, results, titles, time.perf_counter() - started, table)
    print(markdown(table, titles))
    log(f"docker-compose down had to be run twice {Compose.retried_down} time(s) (network still had endpoints)")
    log(f"total {time.perf_counter() - started:.0f}s; raw results in {args.out}")
    return 0


def _save(path: Path, results: Any, titles: dict[str, str], elapsed: float, table: Any = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.now(UTC).isoformat()
    data = {"when": when, "elapsed_s": elapsed, "titles": titles, "results": results, "table": table}
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
