"""Workloads in Docker: observe with list calls only, and carry out create/start/replace/delete.

Observation reads labels from the list response (our hash and spec live there), so a no-change plan
costs three API calls whatever the number of workloads. Replace follows compose's order with a
rollback: the old container is renamed aside and only removed once the new one answers.
"""

from __future__ import annotations

import contextlib
import secrets as pyrandom
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import docker.errors

from toolhive_apply.docker_client import CountingAPIClient, docker_errors
from toolhive_apply.engine.diff import field_changes
from toolhive_apply.engine.plan import Action, Change
from toolhive_apply.engine.resource import DRIFTED, DesiredResource, Kind, ObservedResource, ResourceId, Status
from toolhive_apply.errors import ProviderError, ToolhiveApplyError
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.manifest.ports import assign_ports
from toolhive_apply.providers.base import Event, EventSink
from toolhive_apply.providers.endpoint_spec import endpoint_explain, endpoint_only, proxy_secret_refs
from toolhive_apply.providers.fields import WORKLOAD_FIELDS
from toolhive_apply.providers.gateways import gateway_specs, has_proxy
from toolhive_apply.providers.host_ports import port_error
from toolhive_apply.providers.isolation import IsolationManager
from toolhive_apply.providers.package_specs import build_package, container_image, package_fields
from toolhive_apply.providers.proxies import ProxyManager
from toolhive_apply.providers.readiness import wait_running, wait_until_ready
from toolhive_apply.providers.secret_files import secret_archives
from toolhive_apply.providers.secrets import SecretResolver
from toolhive_apply.providers.snapshot import StackContainers
from toolhive_apply.providers.workload_observation import container_name, observe_units
from toolhive_apply.providers.workload_spec import (
    HTTP_TRANSPORTS,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_ROLE,
    LABEL_STACK,
    MANAGED_BY,
    ROLE_REMOTE,
    SET_ASIDE_MARK,
    container_env,
    container_labels,
    egress_name,
    gate_name,
    host_config_args,
    isolated,
    isolation_network,
    proxy_name,
    set_aside_name,
    stdio_server_network,
    uses_gate,
    workload_spec,
)

STOP_TIMEOUT = 10


def split_image(ref: str) -> tuple[str, str]:
    """`repo:tag` -> (repo, tag), leaving registry ports (`host:5000/x`) alone; default tag `latest`."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


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
        self.warnings: tuple[str, ...] = ()
        self._image_ids: dict[str, str] | None = None

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
        ports = assign_ports(manifest.settings.stack, ((w.name, w.proxy_port) for w in manifest.workloads))
        ids = self.image_ids(refresh=True) if any(w.image for w in manifest.workloads) else {}
        result = []
        warnings = []
        for workload in manifest.workloads:
            image_id = None
            package = package_fields(workload, manifest.settings, ids)  # uvx://, npx://, go://: a built image
            if package:
                image_id = ids.get(package["package"]["tag"])
            elif workload.image:
                repo, tag = split_image(workload.image)
                image_id = ids.get(f"{repo}:{tag}") or ids.get(workload.image)
            spec = self._with_digests(workload_spec(workload, manifest, ports[workload.name], image_id) | package)
            refs = [*spec["secrets"], *proxy_secret_refs(spec)]
            uses = frozenset(ResourceId(Kind.SECRET, ref["name"]) for ref in refs)
            rid = ResourceId(Kind.WORKLOAD, workload.name)
            result.append(DesiredResource(rid, spec, workload.origin, uses, explain=endpoint_explain(spec)))
            if spec["permission_profile"].get("privileged"):
                warnings.append(
                    f"workload {workload.name!r} runs PRIVILEGED: it has every capability and the host's devices "
                    "(acknowledged by allow_privileged)"
                )
        self.warnings = tuple(warnings)
        by_name = {d.id.name: d.spec for d in result}
        for group, spec in gateway_specs(manifest, by_name):
            backends = frozenset(ResourceId(Kind.WORKLOAD, b["name"]) for b in spec["vmcp"]["backends"])
            result.append(DesiredResource(ResourceId(Kind.WORKLOAD, spec["name"]), spec, group.origin, backends))
        return result

    def _resolver(self) -> SecretResolver:
        if self.secrets is None:
            raise ToolhiveApplyError("this workload uses secrets, but no secret store is configured")
        return self.secrets

    def _proxy_env(self, spec: dict[str, Any]) -> dict[str, str]:
        """The proxy's own secrets (endpoint_spec.proxy_secret_refs), by the variable its config names."""
        return {ref["target"]: self._resolver().value(ref["name"]).reveal() for ref in proxy_secret_refs(spec)}

    def _with_digests(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The one place `secret_digests` is set: keyed digests of the values a workload and its proxy use, so
        rotating one replaces exactly its users. A workload without secrets has no such field (its hash stays)."""
        refs = [*spec["secrets"], *proxy_secret_refs(spec)]
        if refs:
            resolver = self._resolver()
            spec["secret_digests"] = {ref["name"]: resolver.digest(resolver.value(ref["name"])) for ref in refs}
        return spec

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
            raise ProviderError(address, change.action.value, _api_message(exc)) from None

    def _dispatch(self, change: Change, emit: EventSink) -> str:
        if change.action is Action.DELETE:
            assert change.observed is not None
            facts = change.observed.facts
            self._remove_all(
                change.observed.handle, facts.get("proxy_id"), facts.get("gate_id"), facts.get("egress_id")
            )
            if facts.get("network"):
                self.isolation.drop_network(str(facts["network"]))
            self.proxies.remove_network_if_unused()
            return "deleted"
        assert change.desired is not None
        spec = self._with_image(change, emit)
        self.proxies.ensure_network()
        if change.action is Action.CREATE:
            self._create_and_start(change, spec, emit)
            return "created"
        assert change.observed is not None
        if change.action is Action.START:
            self._start_pair(change, spec, emit)
            return "started"
        self._replace(change, spec, emit)
        return "replaced"

    def _with_image(self, change: Change, emit: EventSink) -> dict[str, Any]:
        """Pull the image if it is not local; the spec recorded on the container gets its id."""
        assert change.desired is not None
        spec = dict(change.desired.spec)
        if spec.get("remote"):
            return self._with_digests(spec)
        image = container_image(spec)
        image_id = self.api.image_id(image)
        if image_id is None and spec.get("package"):
            say = lambda line: emit(Event(str(change.id), "progress", line))  # noqa: E731
            image_id = build_package(self.api, spec, str(change.id), change.action.value, say)
        if image_id is None:
            emit(Event(str(change.id), "progress", f"pulling {image}"))
            problem = self._pull(image, emit, str(change.id))
            image_id = self.api.image_id(image)
            if image_id is None:
                raise ProviderError(
                    str(change.id),
                    change.action.value,
                    f"image {image!r} is not on the Docker host and could not be pulled: {problem or 'not found'}",
                    hint="build or load the image on the Docker host, or fix the image name",
                )
        spec["image_id"] = image_id
        return self._with_digests(spec)  # what is injected now is what the label records

    def _pull(self, image: str, emit: EventSink, address: str) -> str | None:
        """Pull with progress events; returns the engine's error text, if any (pull streams errors)."""
        repo, tag = split_image(image)
        try:
            for event in self.api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in event:
                    return str(event["error"]).strip()
                if event.get("status") and not event.get("progressDetail"):
                    emit(Event(address, "progress", f"{image}: {event['status']}"))
        except docker.errors.APIError as exc:
            return _api_message(exc)
        return None

    def _create(self, change: Change, spec: dict[str, Any], name: str) -> str:
        network = stdio_server_network(spec) or self.isolation.server_network(spec)
        host_config = self.api.create_host_config(**host_config_args(spec, network))
        ports = [int(spec["target_port"])] if spec["transport"] in HTTP_TRANSPORTS else None
        environment = container_env(spec)
        for ref in spec["secrets"]:
            if ref["as"] == "env":
                environment[ref["target"]] = self._resolver().value(ref["name"]).reveal()
        created = self.api.create_container(
            image=container_image(spec),
            command=list(spec["cmd_arguments"]) or None,
            name=name,
            environment=environment,
            labels=container_labels(spec, self.stack),
            detach=True,
            stdin_open=spec["transport"] == "stdio",
            tty=False,
            ports=ports,
            host_config=host_config,
        )
        container_id = str(created["Id"])
        self._copy_secret_files(change, spec, container_id)
        return container_id

    def _copy_secret_files(self, change: Change, spec: dict[str, Any], container_id: str) -> None:
        files = [ref for ref in spec["secrets"] if ref["as"] == "file"]
        archives = secret_archives({ref["target"]: self._resolver().value(ref["name"]) for ref in files})
        for directory, archive in archives.items():
            try:
                self.api.put_archive(container_id, directory, archive)
            except docker.errors.NotFound:
                self._remove_quietly(container_id)
                raise ProviderError(
                    str(change.id),
                    change.action.value,
                    f"secret file directory {directory} does not exist in image {spec['image']!r}",
                    hint="put the file in a directory the image has, such as /tmp",
                ) from None

    def _remove_leftovers(self, name: str, keep: frozenset[str]) -> None:
        """Drop what an interrupted replace of `name` set aside in an earlier run, before making the new unit.

        Why: killed between renaming its old proxy aside and stopping it, a run leaves that proxy holding the host
        port, and orphans are deleted only after creates, so the new proxy could not bind (found by the fault
        suite). A rollback of *this* run's replace (`keep`) is never touched.
        """
        for summary in self.snapshot.owned():
            labels = summary.get("Labels") or {}
            found = container_name(summary)
            if labels.get(LABEL_NAME) == name and SET_ASIDE_MARK in found and summary["Id"] not in keep:
                self._remove_quietly(summary["Id"])

    def _create_and_start(
        self, change: Change, spec: dict[str, Any], emit: EventSink, keep: frozenset[str] = frozenset()
    ) -> None:
        self._remove_leftovers(change.id.name, keep)
        if spec.get("remote"):
            self._create_remote(change, spec, emit)
            return
        address = str(change.id)
        made_network = isolated(spec) and self.isolation.ensure_network(spec, address)
        server: str | None = None
        proxy: str | None = None
        gate: str | None = None
        egress: str | None = None
        try:
            egress = self.isolation.create_egress(spec, address)
            if egress:
                self.api.start(egress)
            server = self._create(change, spec, change.id.name)
            self.api.start(server)
            if has_proxy(spec):
                proxy = self.proxies.create(spec, address, self._proxy_env(spec))
                gate = self.proxies.create_gate(spec, address, server, proxy)
                if gate:
                    self.api.start(gate)
                self.isolation.connect_proxy(spec, proxy)
                self.api.start(proxy)
            self._wait(change, spec, [(c, 0) for c in (server, proxy, gate, egress) if c], emit)
            if not isolated(spec) and not keep:  # (a replace drops it once the old unit is gone)
                self.isolation.drop_network(isolation_network(self.stack, change.id.name))
        except (ProviderError, docker.errors.APIError):
            # a half-made workload is worse than none: the next apply creates it afresh
            self._remove_all(server, proxy, gate, egress)
            if made_network:
                self.isolation.remove_network(isolation_network(self.stack, change.id.name))
            raise

    def _create_remote(self, change: Change, spec: dict[str, Any], emit: EventSink) -> None:
        """A remote server is only a proxy: it carries the workload's own name and labels."""
        env = {ref["target"]: self._resolver().value(ref["name"]).reveal() for ref in spec["secrets"]}
        env.update(self._proxy_env(spec))
        # the proxy image labels its containers role=proxy; a remote workload's container is the workload itself
        labels = {**container_labels(spec, self.stack), LABEL_ROLE: ROLE_REMOTE}
        proxy = self.proxies.create_remote(spec, str(change.id), labels, env)
        try:
            self.api.start(proxy)
            self._wait(change, spec, [(proxy, 0)], emit)
        except (ProviderError, docker.errors.APIError):
            self._remove_all(proxy)
            raise

    def _start_pair(self, change: Change, spec: dict[str, Any], emit: EventSink) -> None:
        """Start what stopped and recreate a proxy that went missing; the spec is unchanged."""
        assert change.observed is not None
        server = change.observed.handle
        proxy = change.observed.facts.get("proxy_id")
        restarts = int(self.api.inspect_container(server).get("RestartCount", 0))
        if not self.api.inspect_container(server)["State"].get("Running"):
            self.api.start(server)
        if spec.get("remote"):
            self._wait(change, spec, [(server, restarts)], emit)
            return
        parts = [(server, restarts)]
        egress = change.observed.facts.get("egress_id")
        if egress is None and isolated(spec):
            egress = self.isolation.create_egress(spec, str(change.id))
        gate = change.observed.facts.get("gate_id")
        if proxy is None and has_proxy(spec):
            proxy = self.proxies.create(spec, str(change.id), self._proxy_env(spec))
            self.isolation.connect_proxy(spec, proxy)
            if gate is not None:  # it shares the old proxy's volume: a new proxy needs a new gate
                self._remove_quietly(str(gate))
                gate = None
        if gate is None and uses_gate(spec):
            gate = self.proxies.create_gate(spec, str(change.id), server, str(proxy))
        for helper in (gate, proxy, egress):
            if helper:
                inspected = self.api.inspect_container(helper)
                parts.append((str(helper), int(inspected.get("RestartCount", 0))))
                if not inspected["State"].get("Running"):
                    self.api.start(helper)
        self._wait(change, spec, parts, emit)

    def _wait(self, change: Change, spec: dict[str, Any], containers: list[tuple[str, int]], emit: EventSink) -> None:
        emit(Event(str(change.id), "progress", "waiting until it answers MCP through its proxy"))
        timeout = float(spec.get("ready_timeout") or 60)
        if not has_proxy(spec):  # no port to ask MCP on: the gateway finds out, on its own backoff
            problem = wait_running(self.api, containers, timeout)
        else:
            problem = wait_until_ready(self.api, containers, spec, timeout)
        if problem is not None:
            raise ProviderError(str(change.id), change.action.value, problem)

    def _replace(self, change: Change, spec: dict[str, Any], emit: EventSink) -> None:
        """compose's order with a rollback: set the old pair aside, start the new one, drop the old one last."""
        assert change.observed is not None
        if self._endpoint_only(change, spec):
            self._replace_proxy(change, spec, emit)
            return
        facts = change.observed.facts
        name = change.id.name
        # the old unit, helpers first to be restored last: (container, its proper name)
        candidates = [
            (facts.get("egress_id"), egress_name(name)),
            (facts.get("proxy_id"), proxy_name(name)),
            (facts.get("gate_id"), gate_name(name)),
            (change.observed.handle, name),
        ]
        old: list[tuple[str, str]] = [(str(container), proper) for container, proper in candidates if container]
        # a drifted unit is a running one (drift is judged only on running servers): a rollback restarts it
        was_running = change.observed.status == Status.RUNNING or change.observed.status.startswith(DRIFTED)
        token = pyrandom.token_hex(3)
        for container, proper in reversed(old):
            self.api.rename(container, set_aside_name(proper, token))
            self.api.stop(container, timeout=STOP_TIMEOUT)
        try:
            self._create_and_start(change, spec, emit, keep=frozenset(container for container, _ in old))
        except (ProviderError, docker.errors.APIError) as exc:
            emit(Event(str(change.id), "progress", "new container failed; restoring the old one"))
            self.isolation.reattach(spec, change.observed.spec, [container for container, _ in old], str(change.id))
            for container, proper in reversed(old):  # the server first, as it was started
                self._restore(container, proper, was_running)
            if isinstance(exc, ProviderError):
                raise
            raise ProviderError(str(change.id), "replace", _api_message(exc)) from None
        self._remove_all(*(container for container, _ in old))
        if not isolated(spec):
            self.isolation.drop_network(isolation_network(self.stack, name))

    def _endpoint_only(self, change: Change, spec: dict[str, Any]) -> bool:
        """Only the endpoint (auth, policies, origins, strictness) changed on a running unit: its proxy alone goes."""
        assert change.observed is not None
        if spec.get("remote") or change.observed.status != "running" or change.observed.spec is None:
            return False
        return endpoint_only(f.path for f in field_changes(change.observed.spec, spec, WORKLOAD_FIELDS))

    def _replace_proxy(self, change: Change, spec: dict[str, Any], emit: EventSink) -> None:
        """The proxy (and a stdio unit's gate, which shares the proxy's volume) replaced, the server left running;
        the old proxy is set aside and comes back if the new one does not answer."""
        assert change.observed is not None
        emit(Event(str(change.id), "progress", "only the endpoint changed: replacing the proxy alone"))
        facts = change.observed.facts
        name, server, address = change.id.name, change.observed.handle, str(change.id)
        old = [
            (str(c), proper)
            for c, proper in ((facts.get("proxy_id"), proxy_name(name)), (facts.get("gate_id"), gate_name(name)))
            if c
        ]
        token = pyrandom.token_hex(3)
        for container, proper in old:
            self.api.rename(container, set_aside_name(proper, token))
            self.api.stop(container, timeout=STOP_TIMEOUT)
        proxy: str | None = None
        gate: str | None = None
        try:
            restarts = int(self.api.inspect_container(server).get("RestartCount", 0))
            proxy = self.proxies.create(spec, address, self._proxy_env(spec))
            gate = self.proxies.create_gate(spec, address, server, proxy)
            if gate:
                self.api.start(gate)
            self.isolation.connect_proxy(spec, proxy)
            self.api.start(proxy)
            self._wait(change, spec, [(server, restarts), *((c, 0) for c in (proxy, gate) if c)], emit)
        except (ProviderError, docker.errors.APIError) as exc:
            emit(Event(address, "progress", "new proxy failed; restoring the old one"))
            self._remove_all(proxy, gate)
            for container, proper in reversed(old):
                self._restore(container, proper, True)
            if isinstance(exc, ProviderError):
                raise
            raise ProviderError(address, "replace", _api_message(exc)) from None
        self._remove_all(*(container for container, _ in old))

    def _restore(self, old: str, name: str, start: bool) -> None:
        self.api.rename(old, name)
        if start:
            self.api.start(old)

    def _remove_all(self, *containers: str | None) -> None:
        """Helpers and server of a unit, in any order: each removal stands alone."""
        for container in containers:
            if container:
                self._remove_quietly(container)

    def _remove_quietly(self, container_id: str) -> None:
        """With its anonymous volumes: a gate's socket volume goes with the last of gate and proxy."""
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(container_id, force=True, v=True)

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


def _api_message(exc: docker.errors.APIError) -> str:
    explanation = getattr(exc, "explanation", None)
    text = explanation.decode() if isinstance(explanation, bytes) else str(explanation or exc)
    return port_error(text) or text.strip()  # a taken port in one sentence, not Docker's endpoint text
