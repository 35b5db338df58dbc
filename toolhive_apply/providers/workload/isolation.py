"""The isolation half of a workload: its internal network and its egress proxy container.

An isolated MCP container is attached only to `toolhive-apply.<stack>.<name>.internal`, a Docker network created
with `internal: true` (no route out of the host, no published ports) and no address of the host on it at all (no
host-side IPv4, no IPv6 in the server), so the server cannot reach the host either. Two helpers share it: the
workload proxy
(inbound: clients reach the server only through it) and, when the profile allows any way out, the egress proxy,
which also sits on the stack's network and forwards exactly what the profile allows. A profile that allows nothing
gets no egress container at all, so there is nothing to misconfigure.

Both helpers carry the pair's hash, so any profile change replaces the whole unit; the network carries the hash of
its own shape and is reused across replaces; one of an older shape is remade (observation reports the unit as
drifted), and a rollback moves the old unit onto the remade network.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

import docker.errors

from toolhive_apply.errors import ProviderError
from toolhive_apply.providers.docker.client import CountingAPIClient
from toolhive_apply.providers.docker.host import DockerHostAddresses, docker_host_addresses
from toolhive_apply.providers.docker.labels import (
    LABEL_HASH,
    LABEL_MANAGED_BY,
    LABEL_STACK,
    MANAGED_BY,
    ROLE_EGRESS,
    egress_name,
    isolation_network,
)
from toolhive_apply.providers.docker.snapshot import StackContainers
from toolhive_apply.providers.workload.create_args import (
    egress_config,
    egress_host_config_args,
    isolation_network_args,
    isolation_network_labels,
    isolation_network_sound,
    proxy_labels,
)
from toolhive_apply.providers.workload.proxy import ProxyManager
from toolhive_apply.providers.workload.spec import HTTP_TRANSPORTS, egress_rules, isolated
from toolhive_apply.providers.workload.spec_model import WorkloadSpec


class IsolationManager:
    def __init__(self, api: CountingAPIClient, stack: str, proxies: ProxyManager, snapshot: StackContainers) -> None:
        self.api = api
        self.stack = stack
        self.proxies = proxies
        self.snapshot = snapshot

    def server_network(self, spec: WorkloadSpec) -> str:
        """The network the MCP container is created on."""
        return isolation_network(self.stack, spec.name) if isolated(spec) else self.proxies.network

    def ensure_network(self, spec: WorkloadSpec, address: str) -> bool:
        """Create the workload's internal network unless ours already exists; True when this call created it.

        A same-named network we do not own, or one of ours whose shape differs (an older version's, which left the
        host reachable), is never reused: the first is a conflict, the second is recreated (a stopped container
        does not hold a network; one still running would make the removal fail, and the apply with it).
        """
        name = isolation_network(self.stack, spec.name)
        labels = isolation_network_labels(spec, self.stack)
        for network in self.api.networks(names=[name]):
            if network.get("Name") != name:
                continue
            found = network.get("Labels") or {}
            if found.get(LABEL_MANAGED_BY) != MANAGED_BY or found.get(LABEL_STACK) != self.stack:
                raise ProviderError(
                    address,
                    "create network",
                    f"a network named {name!r} exists and is not this stack's",
                    hint="remove or rename that network; toolhive-apply never takes over what it did not create",
                )
            if found.get(LABEL_HASH) == labels[LABEL_HASH] and isolation_network_sound(network):
                return False
            self.api.remove_network(network["Id"])
        self.api.create_network(name, labels=labels, check_duplicate=True, **isolation_network_args())
        return True

    def reattach(
        self, spec: WorkloadSpec, old_spec: Mapping[str, Any] | None, containers: list[str], address: str
    ) -> None:
        """Before an old unit is restarted by a rollback: if its internal network was remade meanwhile (a shape
        change), move the old containers onto the current one; Docker cannot start a container whose network is
        gone. Why: a replace that remade the network and then failed left the old unit unable to start."""
        try:
            both = isolated(spec) and old_spec is not None and isolated(WorkloadSpec.from_document(old_spec))
        except (KeyError, AttributeError, TypeError):  # a spec recorded by an older version
            both = False
        if not both:
            return  # only a replace between two isolated units touches the network the old one is on
        name = isolation_network(self.stack, spec.name)
        try:
            self.ensure_network(spec, address)
            current = self.api.inspect_network(name)["Id"]
        except (docker.errors.APIError, ProviderError):
            return  # the restore that follows reports what is still wrong
        for container in containers:
            with contextlib.suppress(docker.errors.APIError):
                networks = self.api.inspect_container(container)["NetworkSettings"].get("Networks") or {}
                if name in networks and (networks[name] or {}).get("NetworkID") != current:
                    self.api.disconnect_container_from_network(container, name, force=True)
                    self.api.connect_container_to_network(container, name)

    def remove_network(self, name: str | None) -> None:
        """Remove a workload's internal network; one still in use (a container set aside) is left for later."""
        if name:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                self.api.remove_network(name)

    def drop_network(self, name: str) -> None:
        """Remove an internal network that no declared unit uses, with whatever of ours is still attached to it.

        Only called once nothing that should live is on it (the workload is gone, or its new unit is not
        isolated), so anything of this stack still attached is a leftover of an interrupted run. Why: killed
        mid-replace, a run could leave the network behind for a workload that is no longer isolated (found by the
        isolated crash test).
        """
        try:
            attached = self.api.inspect_network(name).get("Containers") or {}
        except docker.errors.NotFound:
            return
        for container in attached:
            with contextlib.suppress(docker.errors.NotFound):
                labels = self.api.inspect_container(container)["Config"].get("Labels") or {}
                if labels.get(LABEL_STACK) == self.stack and labels.get(LABEL_MANAGED_BY) == MANAGED_BY:
                    self.api.remove_container(container, force=True)
        self.remove_network(name)

    def create_egress(self, spec: WorkloadSpec, address: str) -> str | None:
        """The egress proxy for an isolated workload whose profile allows a way out; None otherwise."""
        if egress_rules(spec) is None:
            return None
        name = egress_name(spec.name)
        self.proxies.remove_stale(name)
        created = self.api.create_container(
            image=self.proxies.image(spec, address),
            name=name,
            environment={"THV_PROXY_CONFIG": json.dumps(egress_config(spec, self._docker_host()), sort_keys=True)},
            labels=proxy_labels(spec, self.stack, role=ROLE_EGRESS),
            detach=True,
            host_config=self.api.create_host_config(**egress_host_config_args(spec, self.proxies.network)),
        )
        egress = str(created["Id"])
        self.api.connect_container_to_network(egress, isolation_network(self.stack, spec.name))
        return egress

    def _docker_host(self) -> DockerHostAddresses:
        """What the egress proxy must refuse: every gateway in the observation's network list, and this machine's
        addresses when the engine runs here."""
        return docker_host_addresses(self.snapshot.engine_networks(), self.proxies.endpoint)

    def connect_proxy(self, spec: WorkloadSpec, proxy: str) -> None:
        """A pass-through proxy must reach its HTTP server, which lives only on the internal network."""
        if isolated(spec) and spec.transport in HTTP_TRANSPORTS:
            self.api.connect_container_to_network(proxy, isolation_network(self.stack, spec.name))
