"""Benchmark: no-op plan and cold apply for N workloads, beside a docker-py floor, in one run.

Run by hand (not by CI): `python bench/engine.py [--sizes 10 50 100] [--repeat 5]`. It needs the local
test images (`python tests/images/build_images.py`). Every workload is an idle stdio Python process
from the same image, so the numbers measure the tool, not the servers.

The floor is the least any tool must do: one `containers/json` list for the no-op case; parallel
create+start (same parallelism) for the cold case.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TINY_MCP  # noqa: E402
from toolhive_apply.manifest import load_manifest  # noqa: E402
from toolhive_apply.operations import Connection, apply_plan, make_plan, open_targets  # noqa: E402
from toolhive_apply.providers.docker.client import connect  # noqa: E402

IMAGE = "toolhive-apply-test/python:latest"
IDLE = TINY_MCP  # a minimal real stdio MCP server: both tools wait for it (we through its proxy)
PARALLELISM = 8


def manifest_for(stack: str, count: int, directory: Path) -> Path:
    data = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": stack, "defaults": {"parallelism": PARALLELISM}, "proxy": {"base_image": IMAGE}},
        "workloads": [
            {"name": f"{stack}-{i:03d}", "image": IMAGE, "cmd_arguments": IDLE, "env_vars": {"BENCH": "1"}}
            for i in range(count)
        ],
    }
    path = directory / f"{stack}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def wipe(api: Any, label: str) -> None:
    for container in api.containers(all=True, filters={"label": [label]}):
        api.remove_container(container["Id"], force=True, v=True)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def floor_cold(api: Any, stack: str, count: int) -> None:
    def one(index: int) -> None:
        created = api.create_container(
            IMAGE,
            command=IDLE,
            name=f"floor-{stack}-{index:03d}",
            stdin_open=True,
            detach=True,
            labels={"bench-floor": stack},
            environment={"BENCH": "1"},
        )
        api.start(created["Id"])

    with ThreadPoolExecutor(PARALLELISM) as pool:
        list(pool.map(one, range(count)))


def measure(count: int, repeat: int, directory: Path) -> dict[str, Any]:
    stack = f"bench-{count}"
    api = connect()
    path = manifest_for(stack, count, directory)
    manifest = load_manifest([path])
    wipe(api, f"toolhive-apply.stack={stack}")
    wipe(api, f"bench-floor={stack}")

    targets = open_targets(Connection(stack, parallelism=PARALLELISM))
    cold = timed(lambda: apply_plan(make_plan(manifest, targets), targets, lambda _e: None, PARALLELISM, manifest))
    floor_cold_s = timed(lambda: floor_cold(api, stack, count))

    noop, calls = [], 0
    for _ in range(repeat):
        targets.docker.reset_calls()
        noop.append(timed(lambda: make_plan(load_manifest([path]), targets)))
        calls = targets.docker.total_calls
    floor_noop = [
        timed(lambda: api.containers(all=True, filters={"label": [f"bench-floor={stack}"]})) for _ in range(repeat)
    ]

    wipe(api, f"toolhive-apply.stack={stack}")
    wipe(api, f"bench-floor={stack}")
    return {
        "n": count,
        "cold_s": cold,
        "floor_cold_s": floor_cold_s,
        "noop_median_s": statistics.median(noop),
        "noop_spread_s": max(noop) - min(noop),
        "floor_noop_median_s": statistics.median(floor_noop),
        "calls_per_noop_plan": calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.sizes:
            rows.append(measure(count, args.repeat, Path(tmp)))
    print(
        "| N | cold apply (s) | floor cold (s) | ratio | no-op plan median (s) | spread "
        "| floor no-op (s) | calls/plan |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']} | {r['cold_s']:.2f} | {r['floor_cold_s']:.2f} | {r['cold_s'] / r['floor_cold_s']:.2f}x "
            f"| {r['noop_median_s']:.3f} | {r['noop_spread_s']:.3f} | {r['floor_noop_median_s']:.3f} "
            f"| {r['calls_per_noop_plan']} |"
        )


if __name__ == "__main__":
    main()
