"""The proxy half of a workload: its image, its container, the stack network, and a stdio server's docker gate.

A workload is a pair (MCP container + proxy container) kept alive by Docker's restart policy, so an applied
stack answers again after a reboot or a dockerd restart with no toolhive-apply process running (ToolHive's
proxies are host processes that do not come back: its issues #431 and #835). A stdio workload has a third
container, its docker gate: the only one that holds the engine's socket, with no network at all, serving its
proxy (over a unix socket in a volume they share) attach/inspect or per-client sessions of its one server. Served
``vmcp-only``, a stdio workload has no proxy: its gate listens in a named volume, which the group's gateway mounts
read-only (``gateway.py``); gate and gateway each try to remove it once their own container is gone.
"""

from __future__ import annotations

import contextlib
import json
import stat
import threading
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlparse

import docker.errors

from toolhive_apply.errors import ProviderError
from toolhive_apply.manifest.model import DEFAULT_PROXY_BASE_IMAGE
from toolhive_apply.providers.docker.client import CountingAPIClient
from toolhive_apply.providers.docker.labels import (
    LABEL_MANAGED_BY,
    LABEL_STACK,
    MANAGED_BY,
    ROLE_GATE,
    gate_name,
    gate_volume_name,
    proxy_name,
    stack_network,
)
from toolhive_apply.providers.gateway import gate_volumes
from toolhive_apply.providers.workload.create_args import (
    HELPER_USER,
    gate_config,
    gate_host_config_args,
    gate_volume_labels,
    gate_volume_options,
    gateway_mounts,
    proxy_config,
    proxy_host_config_args,
    proxy_labels,
)
from toolhive_apply.providers.workload.proxy_image import ProxyImageError, ensure_proxy_image
from toolhive_apply.providers.workload.spec import PROXY_LISTEN_PORT, gate_in_named_volume, uses_gate
from toolhive_apply.providers.workload.spec_model import WorkloadSpec


def local_socket(endpoint: str) -> tuple[str, int | None]:
    """(host path, group id) of the engine's unix socket, for a stdio workload's docker gate."""
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("unix", "http+unix", ""):
        return ("/var/run/docker.sock", None)  # a remote engine: its own default socket, group unknown here
    path = parsed.path or "/var/run/docker.sock"
    try:
        info = Path(path).stat()
    except OSError:
        return (path, None)
    return (path, info.st_gid) if stat.S_ISSOCK(info.st_mode) else (path, None)


class ProxyManager:
    """Builds (once per run) the proxy image, and creates proxies on the stack network."""

    def __init__(self, api: CountingAPIClient, stack: str, endpoint: str) -> None:
        self.api = api
        self.stack = stack
        self.endpoint = endpoint
        self.network = stack_network(stack)
        self._lock = threading.Lock()
        self._images: dict[str, str] = {}
        self._network_ready = False

    def ensure_network(self) -> None:
        with self._lock:
            if self._network_ready:
                return
            # the engine's name filter matches substrings: an isolated workload's network starts with this name
            if not any(n.get("Name") == self.network for n in self.api.networks(names=[self.network])):
                labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_STACK: self.stack}
                self.api.create_network(self.network, driver="bridge", labels=labels, check_duplicate=True)
            self._network_ready = True

    def remove_network_if_unused(self) -> None:
        """Networks are shared by the stack's workloads: removed only when nothing uses them any more."""
        with self._lock:
            try:
                if not self.api.inspect_network(self.network).get("Containers"):
                    self.api.remove_network(self.network)
                    self._network_ready = False
            except docker.errors.APIError:
                pass

    def image(self, spec: WorkloadSpec, address: str) -> str:
        settings = spec.proxy
        if settings.image:
            return settings.image
        base = settings.base_image or DEFAULT_PROXY_BASE_IMAGE
        with self._lock:
            if base not in self._images:
                try:
                    self._images[base] = ensure_proxy_image(self.api, base)
                except ProxyImageError as exc:
                    raise ProviderError(
                        address,
                        "build proxy image",
                        str(exc),
                        hint="set settings.proxy.base_image to a CPython 3.11+ image the engine has, "
                        "or settings.proxy.image to a prebuilt proxy image",
                    ) from None
            return self._images[base]

    def create_remote(
        self, spec: WorkloadSpec, address: str, labels: dict[str, str], secret_env: dict[str, str]
    ) -> str:
        """The whole of a remote workload: a proxy named like the workload, forwarding to the remote URL."""
        args = proxy_host_config_args(spec, self.network)
        volumes = gate_volumes(spec)  # a gateway's stdio backends: their gates' volumes, read-only
        for volume in volumes.values():
            self.ensure_gate_volume(volume, spec.name)  # (made with its backend; only if this runs first)
        if volumes:
            args["mounts"] = gateway_mounts(volumes)
        host_config = self.api.create_host_config(**args)
        env = {"THV_PROXY_CONFIG": json.dumps(proxy_config(spec), sort_keys=True), **secret_env}
        created = self.api.create_container(
            image=self.image(spec, address),
            name=spec.name,
            user=HELPER_USER if volumes else None,  # the gates' sockets are their user's alone
            environment=env,
            labels=labels,
            ports=[PROXY_LISTEN_PORT],
            detach=True,
            host_config=host_config,
        )
        return str(created["Id"])

    def remove_stale(self, name: str) -> None:
        """A helper of ours left under `name` by an interrupted run is replaced; anything else is not ours."""
        with contextlib.suppress(docker.errors.NotFound):
            existing = self.api.inspect_container(name)
            if (existing["Config"].get("Labels") or {}).get(LABEL_STACK) == self.stack:
                self.api.remove_container(name, force=True, v=True)

    def ensure_gate_volume(self, volume: str, workload: str) -> None:
        """The named volume a gate served vmcp-only listens in, made (tmpfs, labelled as the stack's) if missing."""
        try:
            self.api.inspect_volume(volume)
        except docker.errors.NotFound:
            options = gate_volume_options()
            labels = gate_volume_labels(self.stack, workload)
            self.api.create_volume(volume, driver="local", driver_opts=options, labels=labels)

    def drop_gate_volume(self, volume: str) -> None:
        """Remove a named gate volume unless it is gone already or still mounted (by its gate or the gateway: the
        last of them to go removes it)."""
        try:
            self.api.remove_volume(volume)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != HTTPStatus.CONFLICT:  # in use: whoever still mounts it removes it later
                raise

    def create_gate(self, spec: WorkloadSpec, address: str, server: str, proxy: str | None) -> str | None:
        """The docker gate of a stdio workload, bound to the server container's id and sharing `proxy`'s volume, or
        (no proxy: served vmcp-only) listening in its named volume; None for other transports."""
        if not uses_gate(spec):
            return None
        name = gate_name(spec.name)
        self.remove_stale(name)
        volume = gate_volume_name(self.stack, spec.name) if gate_in_named_volume(spec) else None
        if volume is not None:
            self.ensure_gate_volume(volume, spec.name)
        host_config = gate_host_config_args(local_socket(self.endpoint), proxy, volume)
        created = self.api.create_container(
            image=self.image(spec, address),
            name=name,
            user=HELPER_USER,
            environment={"THV_PROXY_CONFIG": json.dumps(gate_config(spec, server), sort_keys=True)},
            labels=proxy_labels(spec, self.stack, role=ROLE_GATE),
            detach=True,
            healthcheck={"test": ["NONE"]},  # the image's check asks a TCP /health; the gate has no network
            host_config=self.api.create_host_config(**host_config),
        )
        return str(created["Id"])

    def create(self, spec: WorkloadSpec, address: str, secret_env: dict[str, str] | None = None) -> str:
        """A new proxy container for `spec`; an old one of ours with the same name is replaced. `secret_env`: the
        values the proxy itself needs (endpoint_spec.proxy_secret_refs: the OIDC client secret, collector headers,
        values to scrub from audit data), under the variable names its config gives."""
        image = self.image(spec, address)
        name = proxy_name(spec.name)
        self.remove_stale(name)
        host_config = self.api.create_host_config(**proxy_host_config_args(spec, self.network))
        created = self.api.create_container(
            image=image,
            name=name,
            user=HELPER_USER,
            environment={"THV_PROXY_CONFIG": json.dumps(proxy_config(spec), sort_keys=True), **(secret_env or {})},
            labels=proxy_labels(spec, self.stack),
            ports=[PROXY_LISTEN_PORT],
            detach=True,
            host_config=host_config,
        )
        return str(created["Id"])
