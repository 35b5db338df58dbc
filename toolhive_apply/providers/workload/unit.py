"""Making a workload's unit of containers: create and start, start what stopped, replace (whole or the proxy
alone) with a rollback, remove. The provider decides which of these a change needs; this class carries it out.

Replace follows compose's order with a rollback: the old containers are renamed aside, and removed only once the
new unit answers; an interrupted replace's leftovers are removed before the next unit is made.
"""

from __future__ import annotations

import contextlib
import secrets as pyrandom
from collections.abc import Callable, Mapping
from typing import Any

import docker.errors

from toolhive_apply.engine.diff import field_changes
from toolhive_apply.engine.plan import Change
from toolhive_apply.engine.provider import Event, EventSink
from toolhive_apply.engine.resource import DRIFTED, Status
from toolhive_apply.errors import ProviderError
from toolhive_apply.providers.docker.client import CountingAPIClient
from toolhive_apply.providers.docker.labels import (
    LABEL_NAME,
    LABEL_ROLE,
    ROLE_REMOTE,
    SET_ASIDE_MARK,
    egress_name,
    gate_name,
    gate_volume_name,
    isolation_network,
    proxy_name,
    set_aside_name,
)
from toolhive_apply.providers.docker.snapshot import StackContainers
from toolhive_apply.providers.fields import WORKLOAD_FIELDS
from toolhive_apply.providers.gateway import has_proxy, publishes_port
from toolhive_apply.providers.secret import SecretResolver
from toolhive_apply.providers.workload.create_args import container_env, container_labels, host_config_args
from toolhive_apply.providers.workload.endpoint import endpoint_only, proxy_secret_refs
from toolhive_apply.providers.workload.errors import api_message
from toolhive_apply.providers.workload.isolation import IsolationManager
from toolhive_apply.providers.workload.observe import container_name
from toolhive_apply.providers.workload.overlap import started_meanwhile, stop_together
from toolhive_apply.providers.workload.package_specs import container_image
from toolhive_apply.providers.workload.proxy import ProxyManager
from toolhive_apply.providers.workload.readiness import wait_running, wait_until_ready
from toolhive_apply.providers.workload.secret_files import secret_archives
from toolhive_apply.providers.workload.spec import (
    HTTP_TRANSPORTS,
    isolated,
    recorded_gate_volume,
    split_image,
    stdio_server_network,
    uses_gate,
)
from toolhive_apply.providers.workload.spec_model import WorkloadSpec

STOP_TIMEOUT = 10


class WorkloadUnits:
    """The containers of one stack's workloads; `resolver` is asked only when a value must be injected."""

    def __init__(
        self,
        api: CountingAPIClient,
        stack: str,
        snapshot: StackContainers,
        proxies: ProxyManager,
        isolation: IsolationManager,
        resolver: Callable[[], SecretResolver],
    ) -> None:
        self.api = api
        self.stack = stack
        self.snapshot = snapshot
        self.proxies = proxies
        self.isolation = isolation
        self._resolver = resolver

    def _proxy_env(self, spec: WorkloadSpec) -> dict[str, str]:
        """The proxy's own secrets (endpoint.proxy_secret_refs), by the variable its config names."""
        return {ref.target: self._resolver().value(ref.name).reveal() for ref in proxy_secret_refs(spec)}

    def create_and_start(
        self, change: Change, spec: WorkloadSpec, emit: EventSink, keep: frozenset[str] = frozenset()
    ) -> None:
        self._remove_leftovers(change.id.name, keep)
        if spec.remote:
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
            with started_meanwhile(self.api, server):  # the helpers are created while the server starts
                if has_proxy(spec):
                    proxy = self.proxies.create(spec, address, self._proxy_env(spec))
                gate = self.proxies.create_gate(spec, address, server, proxy)  # (no proxy: in its named volume)
            if proxy:
                self.isolation.connect_proxy(spec, proxy)
                with started_meanwhile(self.api, gate):  # the proxy retries its gate with a short backoff
                    self.api.start(proxy)
            elif gate:
                self.api.start(gate)  # served vmcp-only: the gateway retries the gate with its own backoff
            self._wait(change, spec, [(c, 0) for c in (server, proxy, gate, egress) if c], emit)
            if not isolated(spec) and not keep:  # (a replace drops it once the old unit is gone)
                self.isolation.drop_network(isolation_network(self.stack, change.id.name))
        except (ProviderError, docker.errors.APIError):
            # a half-made workload is worse than none: the next apply creates it afresh
            self.remove_all(server, proxy, gate, egress)
            if made_network:
                self.isolation.remove_network(isolation_network(self.stack, change.id.name))
            raise

    def _create_remote(self, change: Change, spec: WorkloadSpec, emit: EventSink) -> None:
        """A remote server is only a proxy: it carries the workload's own name and labels."""
        env = {ref.target: self._resolver().value(ref.name).reveal() for ref in spec.secrets}
        env.update(self._proxy_env(spec))
        # the proxy image labels its containers role=proxy; a remote workload's container is the workload itself
        labels = {**container_labels(spec, self.stack), LABEL_ROLE: ROLE_REMOTE}
        proxy = self.proxies.create_remote(spec, str(change.id), labels, env)
        try:
            self.api.start(proxy)
            self._wait(change, spec, [(proxy, 0)], emit)
        except (ProviderError, docker.errors.APIError):
            self.remove_all(proxy)
            raise

    def start_pair(self, change: Change, spec: WorkloadSpec, emit: EventSink) -> None:
        """Start what stopped and recreate a proxy that went missing; the spec is unchanged."""
        assert change.observed is not None
        server = change.observed.handle
        proxy = change.observed.facts.get("proxy_id")
        restarts = int(self.api.inspect_container(server).get("RestartCount", 0))
        if not self.api.inspect_container(server)["State"].get("Running"):
            self.api.start(server)
        if spec.remote:
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
            gate = self.proxies.create_gate(spec, str(change.id), server, str(proxy) if proxy else None)
        for helper in (gate, proxy, egress):
            if helper:
                inspected = self.api.inspect_container(helper)
                parts.append((str(helper), int(inspected.get("RestartCount", 0))))
                if not inspected["State"].get("Running"):
                    self.api.start(helper)
        self._wait(change, spec, parts, emit)

    def replace(self, change: Change, spec: WorkloadSpec, emit: EventSink) -> None:
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
        stop_together(self.api, [container for container, _ in reversed(old)], STOP_TIMEOUT)
        try:
            self.create_and_start(change, spec, emit, keep=frozenset(container for container, _ in old))
        except (ProviderError, docker.errors.APIError) as exc:
            emit(Event(str(change.id), "progress", "new container failed; restoring the old one"))
            self.isolation.reattach(spec, change.observed.spec, [container for container, _ in old], str(change.id))
            for container, proper in reversed(old):  # the server first, as it was started
                self._restore(container, proper, was_running)
            if isinstance(exc, ProviderError):
                raise
            raise ProviderError(str(change.id), "replace", api_message(exc)) from None
        self.remove_all(*(container for container, _ in old))
        self.drop_gate_volumes(change.observed.spec, spec)
        if not isolated(spec):
            self.isolation.drop_network(isolation_network(self.stack, name))

    def drop_gate_volumes(self, old: Mapping[str, Any] | None, new: WorkloadSpec | None) -> None:
        """Once a unit's old containers are gone: the named gate volumes the old unit used (its own gate's, or a
        gateway's backends') that the new one (None: deleted) does not use. Docker keeps any still mounted by the
        other side (the gateway, or the backend's gate), which then removes it when its own container goes."""
        for volume in sorted(self._gate_volumes(old) - self._gate_volumes(new.document() if new else None)):
            self.proxies.drop_gate_volume(volume)

    def _gate_volumes(self, doc: Mapping[str, Any] | None) -> set[str]:
        if not doc:
            return set()
        if recorded_gate_volume(doc):
            return {gate_volume_name(self.stack, str(doc["name"]))}
        backends = (doc.get("vmcp") or {}).get("backends") or ()
        return {str(b["gate_volume"]) for b in backends if isinstance(b, Mapping) and "gate_volume" in b}

    def _endpoint_only(self, change: Change, spec: WorkloadSpec) -> bool:
        """Only the endpoint (auth, policies, origins, strictness) changed on a running unit: its proxy alone goes."""
        assert change.observed is not None
        if spec.remote or change.observed.status != "running" or change.observed.spec is None or not has_proxy(spec):
            return False
        changes = field_changes(change.observed.spec, spec.document(), WORKLOAD_FIELDS)
        return endpoint_only(f.path for f in changes)

    def _replace_proxy(self, change: Change, spec: WorkloadSpec, emit: EventSink) -> None:
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
        stop_together(self.api, [container for container, _ in old], STOP_TIMEOUT)
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
            self.remove_all(proxy, gate)
            for container, proper in reversed(old):
                self._restore(container, proper, True)
            if isinstance(exc, ProviderError):
                raise
            raise ProviderError(address, "replace", api_message(exc)) from None
        self.remove_all(*(container for container, _ in old))

    def _create(self, change: Change, spec: WorkloadSpec, name: str) -> str:
        network = stdio_server_network(spec) or self.isolation.server_network(spec)
        host_config = self.api.create_host_config(**host_config_args(spec, network))
        ports = [int(spec.target_port)] if spec.transport in HTTP_TRANSPORTS else None
        environment = container_env(spec)
        for ref in spec.secrets:
            if ref.delivery == "env":
                environment[ref.target] = self._resolver().value(ref.name).reveal()
        created = self.api.create_container(
            image=container_image(spec),
            command=list(spec.cmd_arguments) or None,
            name=name,
            environment=environment,
            labels=container_labels(spec, self.stack),
            detach=True,
            stdin_open=spec.transport == "stdio",
            tty=False,
            ports=ports,
            host_config=host_config,
        )
        container_id = str(created["Id"])
        self._copy_secret_files(change, spec, container_id)
        return container_id

    def _copy_secret_files(self, change: Change, spec: WorkloadSpec, container_id: str) -> None:
        files = [ref for ref in spec.secrets if ref.delivery == "file"]
        archives = secret_archives({ref.target: self._resolver().value(ref.name) for ref in files})
        for directory, archive in archives.items():
            try:
                self.api.put_archive(container_id, directory, archive)
            except docker.errors.NotFound:
                self._remove_quietly(container_id)
                raise ProviderError(
                    str(change.id),
                    change.action.value,
                    f"secret file directory {directory} does not exist in image {spec.image!r}",
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

    def _wait(self, change: Change, spec: WorkloadSpec, containers: list[tuple[str, int]], emit: EventSink) -> None:
        emit(Event(str(change.id), "progress", "waiting until it answers MCP through its proxy"))
        timeout = float(spec.ready_timeout or 60)
        if not publishes_port(spec):  # no port to ask MCP on: the gateway finds out, on its own backoff
            problem = wait_running(self.api, containers, timeout)
        else:
            problem = wait_until_ready(self.api, containers, spec, timeout)
        if problem is not None:
            raise ProviderError(str(change.id), change.action.value, problem)

    def _restore(self, old: str, name: str, start: bool) -> None:
        self.api.rename(old, name)
        if start:
            self.api.start(old)

    def remove_all(self, *containers: str | None) -> None:
        """Helpers and server of a unit, in any order: each removal stands alone."""
        for container in containers:
            if container:
                self._remove_quietly(container)

    def _remove_quietly(self, container_id: str) -> None:
        """With its anonymous volumes: a gate's socket volume goes with the last of gate and proxy."""
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(container_id, force=True, v=True)

    def pull(self, image: str, emit: EventSink, address: str) -> str | None:
        """Pull with progress events; returns the engine's error text, if any (pull streams errors)."""
        repo, tag = split_image(image)
        try:
            for event in self.api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in event:
                    return str(event["error"]).strip()
                if event.get("status") and not event.get("progressDetail"):
                    emit(Event(address, "progress", f"{image}: {event['status']}"))
        except docker.errors.APIError as exc:
            return api_message(exc)
        return None
