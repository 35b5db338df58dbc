"""Operations on live state without a manifest: restart workloads, verify their endpoints, break or clear a
stack's lock."""

from __future__ import annotations

from collections.abc import Sequence

from toolhive_apply.engine.resource import Kind, ResourceId
from toolhive_apply.operations import Connection, Targets, open_targets
from toolhive_apply.providers.docker.client import connect, endpoint_of
from toolhive_apply.providers.docker.lock import break_lock, clear_stale_lock
from toolhive_apply.providers.workload.provider import WorkloadProvider
from toolhive_apply.verify import Check, verify_specs


def restart_workloads(connection: Connection, names: Sequence[str], group: str | None) -> list[ResourceId]:
    """Restart running workloads (by name, or every one of a group) without changing their spec."""
    from toolhive_apply.errors import UsageError

    if bool(names) == bool(group):
        raise UsageError("name the workloads to restart, or give --group (not both)")
    targets = open_targets(connection)
    provider = targets.providers[Kind.WORKLOAD]
    assert isinstance(provider, WorkloadProvider)
    owned = [o for o in provider.observe(()) if o.managed]
    chosen = [o for o in owned if (o.id.name in names or (o.spec or {}).get("group") == group)]
    missing = sorted(set(names) - {o.id.name for o in chosen})
    if missing or not chosen:
        raise UsageError(f"no such workload in stack {targets.stack!r}: {', '.join(missing) or group}")
    for observed in chosen:
        provider.restart(observed)
    return [o.id for o in chosen]


def break_stack_lock(stack: str, docker_host: str | None) -> str | None:
    """Break a stale stack lock (Terraform's force-unlock); the holder it named, or None if none was held."""
    return break_lock(connect(docker_host), stack, endpoint_of(docker_host))


def clear_stale_stack_lock(targets: Targets) -> None:
    """A run with nothing to change takes no lock, but still clears one a killed run left (see clear_stale_lock)."""
    clear_stale_lock(targets.docker, targets.stack, targets.endpoint)


def verify_stack(connection: Connection, token: str | None, other_audience_token: str | None) -> list[Check]:
    """Probe every managed workload of the stack through its published endpoint (see verify.py)."""
    from toolhive_apply.errors import UsageError

    targets = open_targets(connection)
    provider = targets.providers[Kind.WORKLOAD]
    assert isinstance(provider, WorkloadProvider)
    specs = [o.spec for o in provider.observe(()) if o.managed and o.spec is not None and o.status != "orphaned"]
    if not specs:
        raise UsageError(f"stack {connection.stack!r} has no workloads to verify", hint="apply the stack first")
    return verify_specs(specs, token, other_audience_token)
