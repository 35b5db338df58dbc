"""Benchmark: `toolhive-apply plan` of a big observed stack, its wall time and peak RSS (issue #20: 10,000 workloads
under 5 s and 300 MB).

Run by hand (not by CI): `python bench/plan_scale.py [--sizes 2000 5000 10000] [--runs 3] [--tree DIR ...] [--keep]`.

The stack is made cheaply and faithfully: for each workload of a generated manifest, its server, proxy and docker
gate containers are CREATED BUT NOT STARTED, with exactly the labels toolhive-apply puts on them (its own
`container_labels` / `proxy_labels` of the spec its own `WorkloadProvider.desired` builds), so observation lists
3N containers of a real stack (each workload planned as `start`, since none runs). The plan is the real CLI in a
subprocess; its peak RSS comes from `os.wait4` on that child alone. `--tree DIR` times the CLI with DIR first on
PYTHONPATH (repeat it to compare a tree before a change with one after, on the same stack). Clean-up removes only
containers labelled with this benchmark's stacks (`pb-scale-N`), and the stacks' networks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import docker  # noqa: E402
from peer_tools import COMMAND, IMAGE, ToolhiveApply, measured_plan, workloads_for  # noqa: E402

from toolhive_apply.engine.resource import Kind  # noqa: E402
from toolhive_apply.manifest import load_manifest  # noqa: E402
from toolhive_apply.operations import Connection, open_targets  # noqa: E402
from toolhive_apply.providers.docker.labels import ROLE_GATE, gate_name, proxy_name  # noqa: E402
from toolhive_apply.providers.workload.create_args import container_labels, proxy_labels  # noqa: E402
from toolhive_apply.providers.workload.spec import uses_gate  # noqa: E402
from toolhive_apply.providers.workload.spec_model import WorkloadSpec  # noqa: E402

STACK_LABEL = "toolhive-apply.stack"
PORT_BASE = 20000  # 20000..29999 for 10,000 workloads: clear of the peers' 14000.. and of Linux's ephemeral ports


def make_stack(tool: ToolhiveApply, parallelism: int) -> int:
    """Create (not start) every workload's server, proxy and gate containers; returns how many were created."""
    manifest = load_manifest([tool.directory / "stack.yaml"])
    targets = open_targets(Connection(tool.stack, parallelism=parallelism, timeout=900))
    api = targets.docker
    existing = {
        str(c["Names"][0]).lstrip("/")
        for c in api.containers(all=True, filters={"label": [f"{STACK_LABEL}={tool.stack}"]})
    }

    def create(resource: Any) -> int:
        spec = WorkloadSpec.from_document(resource.spec)
        parts = [(spec.name, COMMAND, container_labels(spec, tool.stack))]
        parts.append((proxy_name(spec.name), ["true"], proxy_labels(spec, tool.stack)))
        if uses_gate(spec):
            parts.append((gate_name(spec.name), ["true"], proxy_labels(spec, tool.stack, ROLE_GATE)))
        made = 0
        for name, command, labels in parts:
            if name not in existing:
                api.create_container(IMAGE, command=command, name=name, labels=labels)
                made += 1
        return made

    desired = targets.providers[Kind.WORKLOAD].desired(manifest)
    with ThreadPoolExecutor(parallelism) as pool:
        made = sum(pool.map(create, desired))
    api.close()
    return made


def plan_cli(tool: ToolhiveApply, tree: str | None) -> dict[str, Any]:
    """The real `plan` CLI on the stack, with `tree` first on PYTHONPATH when given."""
    return measured_plan(tool.directory, {"PYTHONPATH": tree} if tree else None)


def cleanup(api: Any, stack: str) -> int:
    """Every container and network of this benchmark's stack `stack`; nothing else."""
    ours = api.containers(all=True, filters={"label": [f"{STACK_LABEL}={stack}"]})

    def remove(container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(container_id, force=True)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(remove, [c["Id"] for c in ours]))
    for network in api.networks(filters={"label": [f"{STACK_LABEL}={stack}"]}):
        with contextlib.suppress(docker.errors.APIError):
            api.remove_network(network["Id"])
    return len(ours)


def measure(size: int, args: argparse.Namespace, api: Any) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix=f"plan-scale-{size}-"))
    tool = ToolhiveApply(size, directory)
    tool.prefix = f"pb-scale-{size}"  # a stack of its own
    tool.port_base = PORT_BASE
    tool.docker_timeout = 900  # a listing of 3N containers on a loaded engine may take a while
    tool.write(workloads_for(tool.prefix, size))
    result: dict[str, Any] = {"size": size, "load_before": os.getloadavg()}
    started = time.perf_counter()
    result["created"] = make_stack(tool, args.parallelism)
    result["stack_build_s"] = time.perf_counter() - started
    print(f"N={size}: {result['created']} containers created in {result['stack_build_s']:.0f}s", flush=True)
    for tree in args.tree or [None]:
        runs = [plan_cli(tool, tree) for _ in range(args.runs)]
        walls = [r["wall_s"] for r in runs]
        key = tree or "installed"
        result[key] = {"runs": runs, "median_s": statistics.median(walls), "load": os.getloadavg()}
        print(
            f"N={size} {key}: plan median {statistics.median(walls):.2f}s ({min(walls):.2f}-{max(walls):.2f}), "
            f"CPU {statistics.median(r['cpu_s'] for r in runs):.2f}s, "
            f"peak RSS {max(r['peak_rss_mib'] for r in runs):.0f} MiB, exit {[r['exit_code'] for r in runs]}, "
            f"load {os.getloadavg()[0]:.1f}; {runs[-1]['last_line'][:160]}",
            flush=True,
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    parser.add_argument("--runs", type=int, default=3, help="plans per tree and size")
    parser.add_argument("--tree", action="append", help="a source tree to put first on PYTHONPATH (repeatable)")
    parser.add_argument("--parallelism", type=int, default=8, help="concurrent creates while building the stack")
    parser.add_argument("--keep", action="store_true", help="leave the stack for another run (it is reused)")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "plan_scale.json")
    args = parser.parse_args()
    api = docker.APIClient(version="auto", timeout=900)
    results = []
    for size in args.sizes:
        try:
            results.append(measure(size, args, api))
        finally:
            if not args.keep:
                print(f"N={size}: removed {cleanup(api, f'pb-scale-{size}')} containers", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
