"""Benchmark: `toolhive-apply --help` start-up time, and peak memory of `plan` for 1,000 workloads (issue #9).

Run by hand (not by CI), normally through `bash bench/run.sh`; directly:
`python bench/footprint.py [--workloads 1000] [--help-runs 10] [--out FILE]`.

The 1,000-workload stack is made cheaply: for each workload of a generated manifest, a server container and a
proxy container are CREATED BUT NOT STARTED, carrying exactly the labels toolhive-apply puts on them (computed by
its own `container_labels` / `proxy_labels` from the spec its own `WorkloadProvider.desired` builds), so
observation sees a real stack of 1,000 workloads (each planned as `start`, since none runs). The plan is the
real CLI in a subprocess; its peak RSS comes from `os.wait4` on that child alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from peer_tools import COMMAND, IMAGE, ToolhiveApply, exclusive, measured_plan, workloads_for  # noqa: E402
from peers import cleanup  # noqa: E402

from toolhive_apply.engine.resource import Kind  # noqa: E402
from toolhive_apply.manifest import load_manifest  # noqa: E402
from toolhive_apply.operations import Connection, make_plan, open_targets  # noqa: E402
from toolhive_apply.providers.docker.labels import proxy_name  # noqa: E402
from toolhive_apply.providers.workload.create_args import container_labels, proxy_labels  # noqa: E402
from toolhive_apply.providers.workload.spec_model import WorkloadSpec  # noqa: E402


def help_times(runs: int) -> dict[str, Any]:
    """Wall time of `--help` through the installed entry point and through `python -m`, beside bare Python."""
    entry = Path(sys.executable).parent / "toolhive-apply"
    commands = {
        "toolhive-apply --help": [str(entry), "--help"],
        "python -m toolhive_apply --help": [sys.executable, "-m", "toolhive_apply", "--help"],
        "python -c pass (interpreter alone)": [sys.executable, "-c", "pass"],
    }
    out: dict[str, Any] = {}
    for label, cmd in commands.items():
        subprocess.run(cmd, capture_output=True, check=True)  # warm the page cache and .pyc files
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        out[label] = {"median": statistics.median(times), "min": min(times), "max": max(times), "n": runs}
    return out


def make_stack(tool: ToolhiveApply) -> int:
    """Create (not start) the server and proxy containers of every workload in the manifest; returns the count."""
    manifest = load_manifest([tool.directory / "stack.yaml"])
    targets = open_targets(Connection(tool.stack, parallelism=8))
    provider = targets.providers[Kind.WORKLOAD]
    api = targets.docker

    def create(resource: Any) -> None:
        spec = WorkloadSpec.from_document(resource.spec)  # the desired resource holds the document
        api.create_container(IMAGE, command=COMMAND, name=spec["name"], labels=container_labels(spec, tool.stack))
        api.create_container(
            IMAGE, command=["true"], name=proxy_name(spec["name"]), labels=proxy_labels(spec, tool.stack)
        )

    desired = provider.desired(manifest)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, desired))
    api.close()
    return 2 * len(desired)


def plan_cli(tool: ToolhiveApply) -> dict[str, Any]:
    """Exit code, wall time and peak RSS (os.wait4 on this child alone) of the real `plan` CLI."""
    tool.write(workloads_for(tool.prefix, tool.count))
    return {"docker_timeout": tool.docker_timeout, **measured_plan(tool.directory)}


def plan_calls(tool: ToolhiveApply) -> dict[str, Any]:
    """The same plan in-process with the counting client: Docker API calls, and the seconds each one took."""
    targets = open_targets(Connection(tool.stack, timeout=900, parallelism=8))
    api = targets.docker
    seconds: dict[str, float] = {}
    original = api.request

    def timed_request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(method, url, *args, **kwargs)
        finally:
            filters = json.loads((kwargs.get("params") or {}).get("filters") or "{}")
            key = f"{method.upper()} {urlparse(url).path.split('/', 2)[-1]} filters={sorted(filters)}"
            if "name" in filters:
                key += f" ({len(filters['name'])} name patterns)"
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started

    api.request = timed_request  # type: ignore[method-assign]
    api.reset_calls()
    plan = make_plan(load_manifest([tool.directory / "stack.yaml"]), targets)
    return {
        "planned": plan.summary(),
        "calls_per_plan": api.total_calls,
        "calls_by_kind": dict(api.calls),
        "seconds_by_call": seconds,
    }


def plan_footprint(tool: ToolhiveApply) -> dict[str, Any]:
    """The CLI plan with toolhive-apply's default Docker timeout, then (if that failed) with a long one."""
    attempts = [plan_cli(tool)]
    if attempts[0]["exit_code"] != 2:
        tool.docker_timeout = 900
        attempts.append(plan_cli(tool))
    for attempt in attempts:
        print(
            f"plan CLI (docker timeout {attempt['docker_timeout'] or 'default'}): exit {attempt['exit_code']}, "
            f"{attempt['wall_s']:.1f}s, peak RSS {attempt['peak_rss_mib']:.0f} MiB; {attempt['last_line'][:200]}",
            flush=True,
        )
    return {"attempts": attempts, **plan_calls(tool)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--help-runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "footprint.json")
    args = parser.parse_args()
    import docker

    api = docker.APIClient(version="auto")
    result: dict[str, Any] = {"help": help_times(args.help_runs)}
    for label, stats in result["help"].items():
        print(f"{label}: median {stats['median']:.3f}s ({stats['min']:.3f}-{stats['max']:.3f}, {stats['n']} runs)")
    cleanup(api)
    try:
        with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
            tool = ToolhiveApply(args.workloads, Path(tmp))
            tool.prefix = f"pb-mem-{args.workloads}"  # a stack of its own, apart from the peers' pb-tha-N
            tool.write(workloads_for(tool.prefix, args.workloads))
            started = time.perf_counter()
            created = make_stack(tool)
            result["stack_build_s"] = time.perf_counter() - started
            print(
                f"stack of {args.workloads} workloads: {created} containers created in {result['stack_build_s']:.0f}s"
            )
            result["plan"] = plan_footprint(tool)
    finally:
        cleanup(api)
    plan = result["plan"]
    print(f"plan of {args.workloads} workloads: {plan['calls_per_plan']} Docker API calls {plan['calls_by_kind']}")
    print(f"planned {plan['planned']}")
    for call, seconds in plan["seconds_by_call"].items():
        print(f"  {seconds:7.2f}s  {call}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    with exclusive():
        sys.exit(main())
