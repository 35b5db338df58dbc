"""Workloads in Docker: observe with list calls only, decide what each change needs, and hand the containers to
the unit builder (unit.py), which creates, starts, replaces and removes them.

Observation reads labels from the list response (our hash and spec live there), so a no-change plan
costs three API calls whatever the number of workloads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import ClassVar

import docker.errors

from toolhive_apply.engine.plan import Action, Change
from toolhive_apply.engine.provider import Event, EventSink
from toolhive_apply.engine.resource import DesiredResource, Kind, ObservedResource, ResourceId
from toolhive_apply.errors import ProviderError, ToolhiveApplyError
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.manifest.ports import manifest_ports
from toolhive_apply.providers.docker.client import CountingAPIClient, docker_errors
from toolhive_apply.providers.docker.labels import (
    LABEL_MANAGED_BY,
    LABEL_STACK,
    MANAGED_BY,
    egress_name,
    gate_name,
    proxy_name,
)
from toolhive_apply.providers.docker.snapshot import StackContainers
from toolhive_apply.providers.gateway import gateway_specs
from toolhive_apply.providers.secret import SecretResolver
from toolhive_apply.providers.workload.endpoint import endpoint_explain, proxy_secret_refs
from toolhive_apply.providers.workload.errors import api_message
from toolhive_apply.providers.workload.isolation import IsolationManager
from toolhive_apply.providers.workload.observe import container_name, observe_units
from toolhive_apply.providers.workload.package_specs import (
    build_package,
    container_image,
    installed_note,
    package_fields,
    package_secret,
)
from toolhive_apply.providers.workload.proxy import ProxyManager
from toolhive_apply.providers.workload.spec import (
    split_image,
    workload_spec,
)
from toolhive_apply.providers.workload.spec_model import WorkloadSpec
from toolhive_apply.providers.workload.unit import STOP_TIMEOUT, WorkloadUnits


class WorkloadProvider:
    kind: ClassVar[Kind] = Kind.WORKLOAD

    def __init__(
        self, api: CountingAPIClient, stack: str, endpoint: str, secrets: SecretResolver | None = None
    ) -> None:
        self.api = api
        self.stack = stack
        self.endpoint = endpoint
        self.secrets = secrets
        self.snapshot = StackContainers(api, stack, endpoint)
        self.proxies = ProxyManager(api, stack, endpoint)
        self.isolation = IsolationManager(api, stack, self.proxies, self.snapshot)
        self.units = WorkloadUnits(api, stack, self.snapshot, self.proxies, self.isolation, self._resolver)
        self.warnings: tuple[str, ...] = ()
        self._image_ids: dict[str, str] | None = None
        self._removed: set[str] = set()  # containers this run deleted (destroy's stack-network check)
        self._removed_lock = threading.Lock()

    # -- observing -------------------------------------------------------------------------------
    def image_ids(self, refresh: bool = False) -> dict[str, str]:
        """Tag -> image id for every local image: one call per plan."""
        if self._image_ids is None or refresh:
            with docker_errors(self.endpoint):
                images = self.api.images()
            mapping: dict[str, str] = {}
            for image in images:
                for tag in image.get("RepoTags") or ():
                    mapping[tag] = image["Id"]
            self._image_ids = mapping
        return self._image_ids

    def desired(self, manifest: Manifest) -> list[DesiredResource]:
        ports = manifest_ports(manifest)
        ids = self.image_ids(refresh=True) if any(w.image for w in manifest.workloads) else {}
        result = []
        warnings = []
        by_name: dict[str, WorkloadSpec] = {}
        for workload in manifest.workloads:
            image_id = None
            package = package_fields(workload, manifest.settings, ids)  # uvx://, npx://, go://: a built image
            if package:
                image_id = ids.get(package["package"]["tag"])
            elif workload.image:
                repo, tag = split_image(workload.image)
                image_id = ids.get(f"{repo}:{tag}") or ids.get(workload.image)
            spec = workload_spec(workload, manifest, ports[workload.name], image_id)
            spec = self._with_digests(spec.with_fields(**package) if package else spec)
            uses = frozenset(ResourceId(Kind.SECRET, ref.name) for ref in (*spec.secrets, *proxy_secret_refs(spec)))
            if index_secret := package_secret(spec):  # a private index's password, read by the build
                uses |= {ResourceId(Kind.SECRET, index_secret)}
            rid = ResourceId(Kind.WORKLOAD, workload.name)
            by_name[workload.name] = spec
            doc = spec.document()
            result.append(DesiredResource(rid, doc, workload.origin, uses, explain=endpoint_explain(spec)))
            if package and (note := installed_note(self.api, workload.name, spec)):
                warnings.append(note)
            if spec.permission_profile.get("privileged"):
                warnings.append(
                    f"workload {workload.name!r} runs PRIVILEGED: it has every capability and the host's devices "
                    "(acknowledged by allow_privileged)"
                )
        self.warnings = tuple(warnings)
        for group, gateway in gateway_specs(manifest, by_name):
            spec = self._with_digests(gateway)  # an incoming_auth client secret, as a workload proxy's
            backends = frozenset(ResourceId(Kind.WORKLOAD, b["name"]) for b in (spec.vmcp or {})["backends"])
            uses = frozenset(ResourceId(Kind.SECRET, ref.name) for ref in proxy_secret_refs(spec))
            rid = ResourceId(Kind.WORKLOAD, spec.name)
            doc = spec.document()
            result.append(DesiredResource(rid, doc, group.origin, backends | uses, explain=endpoint_explain(spec)))
        return result

    def _resolver(self) -> SecretResolver:
        if self.secrets is None:
            raise ToolhiveApplyError("this workload uses secrets, but no secret store is configured")
        return self.secrets

    def _with_digests(self, spec: WorkloadSpec) -> WorkloadSpec:
        """The one place `secret_digests` is set: keyed digests of the values a workload and its proxy use, so
        rotating one replaces exactly its users. A workload without secrets has no such field (its hash stays)."""
        refs = [*spec.secrets, *proxy_secret_refs(spec)]
        if not refs:
            return spec
        resolver = self._resolver()
        return spec.with_fields(secret_digests={ref.name: resolver.digest(resolver.value(ref.name)) for ref in refs})

    def observe(self, names: Sequence[str]) -> list[ObservedResource]:
        observed = observe_units(self.stack, self.snapshot.owned(), self.snapshot.networks(), frozenset(names))
        if names:
            observed.update(self._foreign(names))
        return list(observed.values())

    def _foreign(self, names: Sequence[str]) -> dict[ResourceId, ObservedResource]:
        """Containers we do not own that hold a name we want (the server's or a helper's): conflicts.

        Matched here against the observation's one list of the engine's containers (see StackContainers.engine).
        """
        wanted = {helper(n): n for n in names for helper in (str, proxy_name, egress_name, gate_name)}
        found = {}
        for summary in self.snapshot.engine():
            if container_name(summary) not in wanted:
                continue
            labels = summary.get("Labels") or {}
            if labels.get(LABEL_STACK) == self.stack and labels.get(LABEL_MANAGED_BY) == MANAGED_BY:
                continue
            name = container_name(summary)
            owner = labels.get(LABEL_STACK) if labels.get(LABEL_MANAGED_BY) == MANAGED_BY else None
            rid = ResourceId(Kind.WORKLOAD, wanted[name])
            state = str(summary.get("State", "unknown"))
            found[rid] = ObservedResource(rid, f"container {name!r}", False, owner, None, None, state)
        return found

    # -- applying --------------------------------------------------------------------------------
    def apply(self, change: Change, emit: EventSink) -> str:
        address = str(change.id)
        try:
            with docker_errors(self.endpoint):
                return self._dispatch(change, emit)
        except docker.errors.APIError as exc:
            raise ProviderError(address, change.action.value, api_message(exc)) from None

    def _dispatch(self, change: Change, emit: EventSink) -> str:
        if change.action is Action.DELETE:
            assert change.observed is not None
            facts = change.observed.facts
            unit = [change.observed.handle, facts.get("proxy_id"), facts.get("gate_id"), facts.get("egress_id")]
            self.units.remove_all(*unit)
            self.units.drop_gate_volumes(change.observed.spec, None)  # a vmcp-only stdio gate's, a gateway's
            if facts.get("network"):
                self.isolation.drop_network(str(facts["network"]))
            if not self._stack_network_still_used({str(c) for c in unit if c}):
                self.proxies.remove_network_if_unused()
            return "deleted"
        assert change.desired is not None
        spec = self._with_image(change, emit)
        self.proxies.ensure_network()
        if change.action is Action.CREATE:
            self.units.create_and_start(change, spec, emit)
            return "created"
        assert change.observed is not None
        if change.action is Action.START:
            self.units.start_pair(change, spec, emit)
            return "started"
        self.units.replace(change, spec, emit)
        return "replaced"

    def _stack_network_still_used(self, removed: set[str]) -> bool:
        """True while a container the observation saw on the stack network has not been deleted by this run: the
        network is in use, no inspect needed. Why: a destroy used to inspect the network under one lock after every
        workload (the benchmark's destroy); now only the deletes that may have emptied it ask the engine."""
        network = self.proxies.network
        attached = {
            str(c["Id"])
            for c in self.snapshot.engine()
            if network in ((c.get("NetworkSettings") or {}).get("Networks") or {})
        }
        with self._removed_lock:
            self._removed |= removed
            return bool(attached - self._removed)

    def _with_image(self, change: Change, emit: EventSink) -> WorkloadSpec:
        """Pull the image if it is not local; the spec recorded on the container gets its id."""
        assert change.desired is not None
        spec = WorkloadSpec.from_document(change.desired.spec)
        if spec.remote:
            return self._with_digests(spec)
        image = container_image(spec)
        image_id = self.api.image_id(image)
        if image_id is None and spec.package is not None:
            say = lambda line: emit(Event(str(change.id), "progress", line))  # noqa: E731
            secret = lambda name: self._resolver().value(name)  # noqa: E731
            image_id = build_package(self.api, spec, str(change.id), change.action.value, say, secret)
        if image_id is None:
            emit(Event(str(change.id), "progress", f"pulling {image}"))
            problem = self.units.pull(image, emit, str(change.id))
            image_id = self.api.image_id(image)
            if image_id is None:
                raise ProviderError(
                    str(change.id),
                    change.action.value,
                    f"image {image!r} is not on the Docker host and could not be pulled: {problem or 'not found'}",
                    hint="build or load the image on the Docker host, or fix the image name",
                )
        return self._with_digests(spec.with_fields(image_id=image_id))  # what is injected now is what the label records

    # -- bulk operations -------------------------------------------------------------------------
    def restart(self, observed: ObservedResource) -> None:
        with docker_errors(self.endpoint):
            self.api.restart(observed.handle, timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.api.inspect_container(observed.handle)["State"].get("Running"):
                return
            time.sleep(0.2)
        raise ProviderError(str(observed.id), "restart", "container did not come back within 30 s")
