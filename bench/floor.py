"""The floor: the least a desired-state tool must do against Docker, as a standalone docker-py script.

Run as a subprocess by bench/peers.py, like the peers, so that its time includes interpreter start-up and the
docker-py import just as theirs do: `python bench/floor.py plan|apply|destroy DESIRED.json`.

DESIRED.json: {"select": "LABEL=VALUE", "parallelism": 8, "workloads": [{"name", "image", "command", "env",
"labels"}]}. Observation is ONE `containers/json` list filtered by the selector label; a change is detected by a
hash label the script writes (compose and toolhive-apply do the same with their own hash labels). Apply then
removes (force), creates and starts in parallel, and waits for nothing: no readiness check, no proxy, no lock,
no manifest validation, which is why every real tool is slower than this.
"""

from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

HASH_LABEL = "bench.floor-hash"


def workload_hash(workload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(workload, sort_keys=True).encode()).hexdigest()[:16]


def diff(api: Any, desired: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """(workloads to (re)create, container ids to remove) from one list call."""
    existing = {c["Names"][0].lstrip("/"): c for c in api.containers(all=True, filters={"label": [desired["select"]]})}
    wanted = {w["name"]: w for w in desired["workloads"]}
    create, remove = [], []
    for name, workload in wanted.items():
        found = existing.get(name)
        if found is None:
            create.append(workload)
        elif (found.get("Labels") or {}).get(HASH_LABEL) != workload_hash(workload) or found["State"] != "running":
            remove.append(found["Id"])
            create.append(workload)
    remove += [c["Id"] for name, c in existing.items() if name not in wanted]
    return create, remove


def converge(api: Any, create: list[dict[str, Any]], remove: list[str], parallelism: int) -> None:
    def drop(container_id: str) -> None:
        api.remove_container(container_id, force=True)

    def make(workload: dict[str, Any]) -> None:
        created = api.create_container(
            workload["image"],
            command=workload["command"],
            name=workload["name"],
            stdin_open=True,
            detach=True,
            environment=workload["env"],
            labels={**workload["labels"], HASH_LABEL: workload_hash(workload)},
            host_config=api.create_host_config(restart_policy={"Name": "unless-stopped"}),
        )
        api.start(created["Id"])

    with ThreadPoolExecutor(parallelism) as pool:
        list(pool.map(drop, remove))
        list(pool.map(make, create))


def main(argv: list[str]) -> int:
    action, path = argv[0], Path(argv[1])
    desired = json.loads(path.read_text(encoding="utf-8"))
    if action == "destroy":
        desired["workloads"] = []
    api = docker.APIClient(version="auto", max_pool_size=max(10, desired["parallelism"] + 2))
    create, remove = diff(api, desired)
    print(f"floor {action}: {len(create)} to create, {len(remove)} to remove")
    if action != "plan":
        converge(api, create, remove, desired["parallelism"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
