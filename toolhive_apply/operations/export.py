"""What `export` reads of live state: ToolHive-labelled containers, a stack's records and its clients. Read only;
cli/export.py prints what these return through the views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolhive_apply.engine.resource import Spec
from toolhive_apply.errors import UsageError
from toolhive_apply.providers.client.state import ClientState, default_state_dir
from toolhive_apply.providers.docker.client import connect, docker_errors, endpoint_of
from toolhive_apply.providers.docker.labels import LABEL_GROUP, LABEL_STACK, TH_AUXILIARY, TH_BASENAME, TH_LABEL
from toolhive_apply.providers.records import record_spec
from toolhive_apply.providers.registry import registry_records
from toolhive_apply.providers.stack_record import stack_records
from toolhive_apply.registry.formats import parse_catalogue
from toolhive_apply.registry.sources import FetchPolicy, load_file, load_remote
from toolhive_apply.urls import MASK
from toolhive_apply.views.manifest import LiveStack, as_manifest
from toolhive_apply.views.workloads import managed_spec, with_proxy_endpoint


def toolhive_containers(docker_host: str | None, stack: str | None, auxiliary: bool = False) -> list[dict[str, Any]]:
    """ToolHive-labelled containers (of one stack, or all), without helpers unless `auxiliary`."""

    api = connect(docker_host)
    labels = [f"{TH_LABEL}=true"] + ([f"{LABEL_STACK}={stack}"] if stack else [])
    with docker_errors(endpoint_of(docker_host)):
        found: list[dict[str, Any]] = api.containers(all=True, filters={"label": labels})
    if auxiliary:
        return found
    return [c for c in found if (c.get("Labels") or {}).get(TH_AUXILIARY) != "true"]


def stack_manifest(docker_host: str | None, stack: str) -> dict[str, Any]:
    """The stack's workloads, registry records and stack record from the Docker host, its clients from this machine."""

    api = connect(docker_host)
    try:
        with docker_errors(endpoint_of(docker_host)):
            found = api.containers(all=True, filters={"label": [f"{TH_LABEL}=true", f"{LABEL_STACK}={stack}"]})
            registries = [spec for r in registry_records(api, stack) if (spec := record_spec(r)) is not None]
            records = [spec for r in stack_records(api, stack) if (spec := record_spec(r)) is not None]
    finally:
        api.close()
    servers = [c for c in found if (c.get("Labels") or {}).get(TH_AUXILIARY) != "true"]
    live = LiveStack(
        stack=stack,
        workloads=[with_proxy_endpoint(managed_spec(c), c, found) for c in servers],
        registries=registries,
        record=records[0] if records else None,
        clients=ClientState(stack, default_state_dir()).load(),
        docker_host=docker_host,
    )
    return as_manifest(live)


def registry_catalogue(record: dict[str, Any]) -> tuple[dict[str, Any], Any, str | None]:
    """A registry record's spec and its catalogue, read again from its source; and the source's warning, if any."""

    spec = record_spec(record) or {}
    kind, source, name = spec.get("type", ""), spec.get("source", ""), spec.get("name", "")
    if kind != "file" and MASK in source:
        raise UsageError(
            f"registry {name!r}: its source {source} had credentials or a query, which are never recorded,"
            " so it cannot be read again from the Docker host",
            hint="run `toolhive-apply plan` with the manifest to read it",
        )
    policy = FetchPolicy(bool(spec.get("allow_private_ip")), frozenset(spec.get("redirect_hosts") or ()))
    if kind == "file":
        fetched = load_file(Path(source), name)
    else:
        fetched = load_remote(f"{kind}:{source}", name, ttl=3600, policy=policy)
    return spec, parse_catalogue(name, fetched.document), fetched.warning


def applied_registries(docker_host: str | None, stack: str | None, name: str | None = None) -> list[dict[str, Any]]:
    """The registry records applied (in one stack, or all); with `name`, that one or a clear error."""

    with docker_errors(endpoint_of(docker_host)):
        found = registry_records(connect(docker_host), stack)
    if name is not None:
        found = [r for r in found if (record_spec(r) or {}).get("name") == name]
        if not found:
            raise UsageError(f"no registry named {name!r} has been applied" + (f" in stack {stack!r}" if stack else ""))
    return found


def workload_spec_named(docker_host: str | None, stack: str | None, name: str) -> tuple[Spec, str]:
    """A managed workload's recorded spec (with its proxy's endpoint block) and the stack that owns it."""
    every = toolhive_containers(docker_host, stack, auxiliary=True)
    found = [c for c in every if (c.get("Labels") or {}).get(TH_BASENAME) == name]
    if not found:
        raise UsageError(f"no workload named {name!r}")
    owner = str((found[0].get("Labels") or {}).get(LABEL_STACK, ""))
    return with_proxy_endpoint(managed_spec(found[0]), found[0], every), owner


def group_gateway_spec(docker_host: str | None, stack: str | None, name: str) -> Spec:
    """The recorded spec of a group's vMCP gateway."""
    found = [c for c in toolhive_containers(docker_host, stack) if (c.get("Labels") or {}).get(LABEL_GROUP) == name]
    specs = [spec for c in found if isinstance((spec := managed_spec(c)).get("vmcp"), dict)]
    if not specs:
        raise UsageError(f"group {name!r} has no vMCP gateway" + ("" if stack else " (on any stack; try --stack)"))
    return specs[0]
