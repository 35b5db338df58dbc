"""The isolation half of a workload: its internal network and its egress proxy container.

An isolated MCP container is attached only to `toolhive-apply.<stack>.<name>.internal`, a Docker network created
with `internal: true` (no route out of the host, no published ports). Two helpers share it: the workload proxy
(inbound: clients reach the server only through it) and, when the profile allows any way out, the egress proxy,
which also sits on the stack's network and forwards exactly what the profile allows. A profile that allows nothing
gets no egress container at all, so there is nothing to misconfigure.

Both helpers carry the pair's hash, so any profile change replaces the whole unit; the network carries the hash of
its own shape and is reused across replaces (it has nothing that changes).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import docker.errors

from toolhive_apply.docker_client import CountingAPIClient
from toolhive_apply.errors import ProviderError
from toolhive_apply.providers.proxies import ProxyManager
from toolhive_apply.providers.workload_spec import (
    HTTP_TRANSPORTS,
    LABEL_HASH,
    LABEL_MANAGED_BY,
    LABEL_STACK,
    MANAGED_BY,
    ROLE_EGRESS,
    egress_config,
    egress_name,
    egress_rules,
    helper_host_config_args,
    isolated,
    isolation_network,
    isolation_network_labels,
    proxy_labels,
)


class IsolationManager:
    def __init__(self, api: CountingAPIClient, stack: str, proxies: ProxyManager) -> None:
        self.api = api
        self.stack = stack
        self.proxies = proxies

    def server_network(self, spec: dict[str, Any]) -> str:
        """The network the MCP container is created on."""
        return isolation_network(self.stack, spec["name"]) if isolated(spec) else self.proxies.network

    def ensure_network(self, spec: dict[str, Any], address: str) -> bool:
        """Create the workload's internal network unless ours already exists; True when this call created it.

        A same-named network we do not own, or one of ours whose shape differs (not internal), is never reused:
        the first is a conflict, the second is recreated when nothing is attached to it.
        """
        name = isolation_network(self.stack, spec["name"])
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
            if found.get(LABEL_HASH) == labels[LABEL_HASH] and network.get("Internal"):
                return False
            self.api.remove_network(network["Id"])
        self.api.create_network(name, driver="bridge", internal=True, labels=labels, check_duplicate=True)
        return True

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

    def create_egress(self, spec: dict[str, Any], address: str) -> str | None:
        """The egress proxy for an isolated workload whose profile allows a way out; None otherwise."""
        if egress_rules(spec) is None:
            return None
        name = egress_name(spec["name"])
        self.proxies.remove_stale(name)
        created = self.api.create_container(
            image=self.proxies.image(spec, address),
            name=name,
            environment={"THV_PROXY_CONFIG": json.dumps(egress_config(spec), sort_keys=True)},
            labels=proxy_labels(spec, self.stack, role=ROLE_EGRESS),
            detach=True,
            host_config=self.api.create_host_config(**helper_host_config_args(self.proxies.network)),
        )
        egress = str(created["Id"])
        self.api.connect_container_to_network(egress, isolation_network(self.stack, spec["name"]))
        return egress

    def connect_proxy(self, spec: dict[str, Any], proxy: str) -> None:
        """A pass-through proxy must reach its HTTP server, which lives only on the internal network."""
        if isolated(spec) and spec["transport"] in HTTP_TRANSPORTS:
            self.api.connect_container_to_network(proxy, isolation_network(self.stack, spec["name"]))
