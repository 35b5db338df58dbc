"""The operations behind the CLI, as functions over explicit targets (no globals, no printing).

`make_plan` is the only way to get a Plan; `apply` either takes one just made or a saved one, which
is refused when the live state moved since it was made (fingerprint), then re-checks convergence.
A saved plan is verified and opened by saved_plans.py before it gets here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolhive_apply.engine.diff import DiffOptions
from toolhive_apply.engine.diff import make_plan as diff_plan
from toolhive_apply.engine.executor import OutcomeStatus, Recap, execute
from toolhive_apply.engine.plan import Action, Plan, fingerprint
from toolhive_apply.engine.provider import EventSink, Provider
from toolhive_apply.engine.resource import (
    HEALTHY,
    DesiredResource,
    Kind,
    ObservedResource,
    ResourceId,
    canonical_json,
)
from toolhive_apply.errors import ApplyFailedError, ManifestError, StalePlanError
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.preflight import preflight
from toolhive_apply.providers.client.provider import ClientProvider
from toolhive_apply.providers.docker.client import CountingAPIClient, connect, endpoint_of
from toolhive_apply.providers.docker.host import engine_is_local
from toolhive_apply.providers.docker.lock import StackLock
from toolhive_apply.providers.docker.snapshot import StackContainers
from toolhive_apply.providers.registry import RegistryProvider
from toolhive_apply.providers.secret import SecretProvider, SecretResolver
from toolhive_apply.providers.secret_fields import check_desired_values
from toolhive_apply.providers.stack_key import hmac_key_name
from toolhive_apply.providers.stack_record import StackRecordProvider
from toolhive_apply.providers.workload.host_ports import PortCheck, check_host_ports
from toolhive_apply.providers.workload.provider import WorkloadProvider
from toolhive_apply.spec_checks import spec_issues
from toolhive_apply.stores.factory import default_settings


@dataclass(slots=True)
class Targets:
    """Everything the run talks to, built in one place and passed down."""

    docker: CountingAPIClient
    endpoint: str
    stack: str
    providers: dict[Kind, Provider] = field(default_factory=dict)
    snapshot: StackContainers | None = None


def secret_settings(manifest: Manifest) -> dict[str, Any]:
    """The manifest's `settings.secrets`, as saved in a plan (addresses and methods; never a credential)."""
    settings = manifest.settings
    return {
        "provider": settings.secret_provider,
        "vault": dict(settings.vault),
        "encrypted": {"path": settings.encrypted_path} if settings.encrypted_path else {},
    }


@dataclass(frozen=True, slots=True)
class Connection:
    """Where a run's targets are: enough to rebuild them from a saved plan without the manifest."""

    stack: str
    docker_host: str | None = None
    secrets: Mapping[str, Any] = field(default_factory=default_settings)
    timeout: float = 60.0
    parallelism: int = 4


def resolver_for(connection: Connection) -> SecretResolver:
    from toolhive_apply.stores.factory import open_store

    return SecretResolver(lambda: open_store(connection.secrets), connection.stack)


def open_targets(connection: Connection) -> Targets:
    endpoint = endpoint_of(connection.docker_host)
    api = connect(
        connection.docker_host, timeout=connection.timeout, pool_size=2 * connection.parallelism + 4
    )  # + a readiness event stream per worker
    stack = connection.stack
    targets = Targets(api, endpoint, stack)
    resolver = resolver_for(connection)
    targets.providers[Kind.SECRET] = SecretProvider(resolver)
    workloads = WorkloadProvider(api, stack, endpoint, resolver)
    targets.snapshot = workloads.snapshot
    targets.providers[Kind.REGISTRY] = RegistryProvider(api, stack, workloads.snapshot)
    targets.providers[Kind.WORKLOAD] = workloads
    targets.providers[Kind.CLIENT] = ClientProvider(stack, secrets=resolver)
    targets.providers[Kind.STACK] = StackRecordProvider(api, stack, workloads.snapshot, connection.secrets)
    return targets


def connection_for(manifest: Manifest, stack: str | None = None) -> Connection:
    settings = manifest.settings
    return Connection(
        stack or settings.stack,
        settings.docker_host,
        secret_settings(manifest),
        settings.docker_timeout,
        settings.parallelism,
    )


def targets_for(manifest: Manifest, stack: str | None = None) -> Targets:
    return open_targets(connection_for(manifest, stack))


def manifest_digest(manifest: Manifest) -> str:
    files = sorted(str(f.resolve()) for f in manifest.files)
    return hashlib.sha256(canonical_json(files).encode()).hexdigest()[:16]


def desired_state(manifest: Manifest, targets: Targets) -> tuple[list[DesiredResource], tuple[str, ...]]:
    """Registries resolved, then every provider's desired resources; also returns warnings to show."""
    resolved = preflight(manifest, offline=False)  # what validate checks, with the network
    manifest = resolved.manifest
    desired: list[DesiredResource] = []
    for provider in targets.providers.values():  # in kind order: a client's entries come from workloads' specs
        if isinstance(provider, ClientProvider):
            workloads = [d for d in desired if d.id.kind is Kind.WORKLOAD]
            desired.extend(provider.desired(manifest, workloads))
        else:
            desired.extend(provider.desired(manifest))
    secrets = targets.providers.get(Kind.SECRET)
    if isinstance(secrets, SecretProvider):  # no spec may carry a value the run read (it would be stored in clear)
        check_desired_values(manifest, desired, secrets.resolver.values)
    explained = [
        dataclasses.replace(d, explain=resolved.explain[d.id.name])
        if d.id.kind is Kind.WORKLOAD and d.id.name in resolved.explain
        else d
        for d in desired
    ]
    return explained, resolved.warnings


def observe_state(
    targets: Targets, names: Mapping[Kind, Sequence[str]], *, fresh_secrets: bool = False
) -> list[ObservedResource]:
    """What the providers see now; `fresh_secrets` lists the store again (after writes, or under the lock)."""
    if targets.snapshot is not None:
        targets.snapshot.refresh()  # every observation sees the engine as it is now
    secrets = targets.providers.get(Kind.SECRET)
    if fresh_secrets and isinstance(secrets, SecretProvider) and secrets.resolver.opened:
        secrets.resolver.listing(refresh=True)  # the listing a plan read is not what the apply just wrote
    observed: list[ObservedResource] = []
    for kind, provider in targets.providers.items():
        observed.extend(provider.observe(names.get(kind, ())))
    return observed


def _names(resources: Sequence[DesiredResource] | Sequence[ResourceId]) -> dict[Kind, list[str]]:
    out: dict[Kind, list[str]] = {}
    for item in resources:
        rid = item.id if isinstance(item, DesiredResource) else item
        out.setdefault(rid.kind, []).append(rid.name)
    return out


@dataclass(frozen=True, slots=True)
class PlanRequest:
    targets: frozenset[ResourceId] = frozenset()
    replace: frozenset[ResourceId] = frozenset()
    allow_empty: bool = False
    destroy: bool = False
    prune_secrets: bool = False


def _observation_names(desired: Sequence[DesiredResource], request: PlanRequest, stack: str) -> dict[Kind, list[str]]:
    """The names to observe besides what the stack owns: those wanted (for conflicts, and so a wanted workload's
    network is reused). A destroy wants nothing; with --prune-secrets it still opens the store to list ours."""
    if not request.destroy:
        return _names(desired)
    return {Kind.SECRET: [hmac_key_name(stack)]} if request.prune_secrets else {}


def make_plan(manifest: Manifest, targets: Targets, request: PlanRequest | None = None) -> Plan:
    request = request or PlanRequest()
    desired, registry_warnings = desired_state(manifest, targets)
    if not request.destroy:
        # what a registry filled in is judged as the manifest is (whose schema the specs were made under)
        problems = spec_issues(targets.stack, desired, structure=False)
        if problems:
            raise ManifestError([p.as_manifest_issue() for p in problems])
    names = _observation_names(desired, request, targets.stack)
    observed = observe_state(targets, names)
    port_warnings = () if request.destroy else tuple(_check_ports(desired, manifest, targets, request.targets))
    options = DiffOptions(
        stack=targets.stack,
        targets=request.targets,
        replace=request.replace,
        allow_empty=request.allow_empty,
        destroy=request.destroy,
        manifest_digest=manifest_digest(manifest),
        settings={
            "docker_host": manifest.settings.docker_host,
            "parallelism": manifest.settings.parallelism,
            "secrets": secret_settings(manifest),
        },
        prune_secrets=request.prune_secrets,
        warnings=tuple(str(w) for w in manifest.warnings)
        + registry_warnings
        + port_warnings
        + tuple(w for p in targets.providers.values() for w in getattr(p, "warnings", ())),
    )
    plan = diff_plan(desired, observed, options)
    observed_names = tuple(sorted(ResourceId(kind, name) for kind, items in names.items() for name in items))
    return dataclasses.replace(plan, observed_names=observed_names)


def _check_ports(
    desired: Sequence[DesiredResource], manifest: Manifest, targets: Targets, only: frozenset[ResourceId]
) -> list[str]:
    """Host ports taken by something else are a plan error (from the container list already made, and a bind probe
    on a local engine); returns the warnings about ports this apply frees only later."""
    containers = targets.snapshot.engine() if targets.snapshot is not None else []
    check = PortCheck(targets.stack, containers, engine_is_local(targets.endpoint))
    return check_host_ports([d for d in desired if not only or d.id in only], manifest, check)


def _plan_names(plan: Plan) -> dict[Kind, list[str]]:
    return _names(plan.observed_names)


def check_not_stale(plan: Plan, targets: Targets) -> dict[ResourceId, ObservedResource]:
    """The live state, observed as the plan was; refused unless it is the state the plan was made from."""
    observed = observe_state(targets, _plan_names(plan), fresh_secrets=True)
    if fingerprint(observed) != plan.observed_fingerprint:
        raise StalePlanError(
            f"the saved plan for stack {plan.stack!r} is stale: the live state changed since it was made "
            "(or the plan was already applied)"
        )
    return {o.id: o for o in observed}


def bind_observed(plan: Plan, live: Mapping[ResourceId, ObservedResource]) -> Plan:
    """Each change acts on the resource as observed now, under the lock, not on ids carried in a plan file.

    The fingerprint has just proved that this is the state the plan was made from; the live records also carry
    what a file does not (a workload's proxy and egress containers, its network), so a delete removes all of it.
    """
    changes = []
    for change in plan.changes:
        seen = live.get(change.id)
        if change.observed is None:
            if seen is not None:
                raise StalePlanError(f"the plan creates {change.id}, which exists now")
            changes.append(change)
            continue
        if seen is None or seen.handle != change.observed.handle or not seen.managed:
            raise StalePlanError(f"the plan acts on {change.id} as {change.observed.handle!r}, which is not so now")
        changes.append(dataclasses.replace(change, observed=seen))
    return dataclasses.replace(plan, changes=tuple(changes))


def unconverged(plan: Plan, targets: Targets, manifest: Manifest | None) -> list[str]:
    """What still differs after apply: a fresh diff when the manifest is at hand, else a status check."""
    if manifest is not None:
        touched = {c.id for c in plan.changes}
        again = make_plan(manifest, targets, PlanRequest(allow_empty=True))
        return [f"{c.id}: still needs {c.action.value} ({c.reason})" for c in again.changes if c.id in touched]
    observed = {o.id: o for o in observe_state(targets, _plan_names(plan), fresh_secrets=True)}
    lines = []
    for change in plan.changes:
        seen = observed.get(change.id)
        if change.action is Action.DELETE and seen is not None:
            lines.append(f"{change.id}: still present")
        elif change.action is not Action.DELETE and (seen is None or seen.status not in HEALTHY):
            lines.append(f"{change.id}: not running after apply")
    return lines


@dataclass(frozen=True, slots=True)
class ApplyResult:
    recap: Recap
    unconverged: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.recap.failed and not self.unconverged

    def error(self) -> ApplyFailedError:
        if self.recap.failed:
            bad = self.recap.count(OutcomeStatus.FAILED) + self.recap.count(OutcomeStatus.SKIPPED)
            return ApplyFailedError(f"{bad} change(s) failed or were skipped; the next apply finishes the job")
        return ApplyFailedError("apply did not converge: " + "; ".join(self.unconverged))


def apply_plan(
    plan: Plan,
    targets: Targets,
    emit: EventSink,
    parallelism: int,
    manifest: Manifest | None = None,
    lock_wait: float = 10.0,
) -> ApplyResult:
    """Execute under the stack lock, then check that the live state now matches."""
    with StackLock(targets.docker, targets.stack, targets.endpoint, "apply", wait_seconds=lock_wait):
        plan = bind_observed(plan, check_not_stale(plan, targets))
        recap = execute(plan, targets.providers, parallelism, emit)
        leftovers = [] if recap.failed else unconverged(plan, targets, manifest)
    return ApplyResult(recap, tuple(leftovers))
