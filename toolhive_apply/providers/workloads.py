"""Workloads in Docker: observe with list calls only, and carry out create/start/replace/delete.

Observation reads labels from the list response (our hash and spec live there), so a no-change plan
costs three API calls whatever the number of workloads. Replace follows compose's order with a
rollback: the old container is renamed aside and only removed once the new one answers.
"""

from __future__ import annotations

import contextlib
import json
import secrets as pyrandom
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import docker.errors

from toolhive_apply.docker_client import CountingAPIClient, docker_errors
from toolhive_apply.engine.plan import Action, Change
from toolhive_apply.engine.resource import DesiredResource, Kind, ObservedResource, ResourceId
from toolhive_apply.errors import ProviderError, ToolhiveApplyError
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.manifest.ports import assign_ports
from toolhive_apply.providers.base import Event, EventSink
from toolhive_apply.providers.proxies import ProxyManager
from toolhive_apply.providers.readiness import wait_until_ready
from toolhive_apply.providers.secret_files import secret_archives
from toolhive_apply.providers.secrets import SecretResolver
from toolhive_apply.providers.snapshot import StackContainers
from toolhive_apply.providers.workload_spec import (
    HTTP_TRANSPORTS,
    LABEL_HASH,
    LABEL_HASH_VERSION,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_ROLE,
    LABEL_SPEC,
    LABEL_STACK,
    MANAGED_BY,
    ROLE_PROXY,
    TH_LABEL,
    container_env,
    container_labels,
    host_config_args,
    proxy_name,
    workload_spec,
)

STOP_TIMEOUT = 10


def container_name(summary: dict[str, Any]) -> str:
    names = summary.get("Names") or ["/?"]
    return str(names[0]).lstrip("/")


def _parse_spec(labels: dict[str, str]) -> dict[str, Any] | None:
    try:
        spec = json.loads(labels.get(LABEL_SPEC, ""))
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


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
        for workload in manifest.workloads:
            image_id = None
            if workload.image:
                repo, tag = split_image(workload.image)
                image_id = ids.get(f"{repo}:{tag}") or ids.get(workload.image)
            spec = workload_spec(workload, manifest, ports[workload.name], image_id)
            if spec["secrets"]:
                spec["secret_digests"] = self._digests(spec)
            uses = frozenset(ResourceId(Kind.SECRET, ref["name"]) for ref in spec["secrets"])
            result.append(DesiredResource(ResourceId(Kind.WORKLOAD, workload.name), spec, workload.origin, uses))
        return result

    def _resolver(self) -> SecretResolver:
        if self.secrets is None:
            raise ToolhiveApplyError("this workload uses secrets, but no secret store is configured")
        return self.secrets

    def _digests(self, spec: dict[str, Any]) -> dict[str, str]:
        """Keyed digests of the values a workload uses: rotating one replaces exactly its users."""
        resolver = self._resolver()
        return {ref["name"]: resolver.digest(resolver.value(ref["name"])) for ref in spec["secrets"]}

    def list_owned(self) -> list[dict[str, Any]]:
        return [c for c in self.snapshot.owned() if (c.get("Labels") or {}).get(TH_LABEL) == "true"]

    def observe(self, names: Sequence[str]) -> list[ObservedResource]:
        owned = self.list_owned()
        all_proxies = [c for c in owned if (c.get("Labels") or {}).get(LABEL_ROLE) == ROLE_PROXY]
        # a proxy belongs to its server only under its proper name; one renamed aside by an interrupted
        # replace is an orphan, like its server, and is deleted
        proxies = {
            name: c
            for c in all_proxies
            if container_name(c) == proxy_name(name := (c.get("Labels") or {}).get(LABEL_NAME, ""))
        }
        orphans = [c for c in all_proxies if c not in proxies.values()]
        observed: dict[ResourceId, ObservedResource] = {}
        servers = [c for c in owned if (c.get("Labels") or {}).get(LABEL_ROLE) != ROLE_PROXY]
        for summary in servers:
            resource = self._owned(summary, proxies.pop(container_name(summary), None))
            observed[resource.id] = resource
        for summary in [*proxies.values(), *orphans]:  # proxies whose server is gone, or set aside by a replace
            name = container_name(summary)
            observed[ResourceId(Kind.WORKLOAD, name)] = self._orphan(summary, name)
        if names:
            observed.update(self._foreign(names))
        return list(observed.values())

    def _foreign(self, names: Sequence[str]) -> dict[ResourceId, ObservedResource]:
        """Containers we do not own that hold a name we want (the server's or its proxy's): conflicts."""
        wanted = {n: n for n in names} | {proxy_name(n): n for n in names}
        with docker_errors(self.endpoint):
            same_name = self.api.containers(all=True, filters={"name": [f"^/{n}$" for n in wanted]})
        found = {}
        for summary in same_name:
            labels = summary.get("Labels") or {}
            if labels.get(LABEL_STACK) == self.stack and labels.get(LABEL_MANAGED_BY) == MANAGED_BY:
                continue
            name = container_name(summary)
            owner = labels.get(LABEL_STACK) if labels.get(LABEL_MANAGED_BY) == MANAGED_BY else None
            rid = ResourceId(Kind.WORKLOAD, wanted[name])
            state = str(summary.get("State", "unknown"))
            found[rid] = ObservedResource(rid, f"container {name!r}", False, owner, None, None, state)
        return found

    def _orphan(self, summary: dict[str, Any], name: str) -> ObservedResource:
        facts = {"container_id": summary["Id"], "container_name": name}
        rid = ResourceId(Kind.WORKLOAD, name)
        return ObservedResource(rid, summary["Id"], True, self.stack, None, None, "orphaned", None, facts)

    def _owned(self, summary: dict[str, Any], proxy: dict[str, Any] | None) -> ObservedResource:
        labels = summary.get("Labels") or {}
        name = container_name(summary)
        if name != labels.get(LABEL_NAME, name):
            return self._orphan(summary, name)  # left behind by an interrupted replace
        spec = _parse_spec(labels)
        if spec is not None and summary.get("ImageID") and "image_id" in spec:
            spec = {**spec, "image_id": summary["ImageID"]}
        facts = {
            "container_id": summary["Id"],
            "image_id": summary.get("ImageID"),
            "container_name": name,
            "proxy_id": proxy["Id"] if proxy else None,
            "proxy_state": str(proxy.get("State")) if proxy else "missing",
        }
        state = str(summary.get("State", "unknown"))
        if state == "running" and facts["proxy_state"] != "running" and not (spec or {}).get("remote"):
            state = f"proxy {facts['proxy_state']}"
        return ObservedResource(
            ResourceId(Kind.WORKLOAD, name),
            summary["Id"],
            True,
            self.stack,
            labels.get(LABEL_HASH),
            labels.get(LABEL_HASH_VERSION),
            state,
            spec,
            facts,
        )

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
            self._remove_pair(change.observed.handle, change.observed.facts.get("proxy_id"))
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
            if spec["secrets"]:
                spec["secret_digests"] = self._digests(spec)
            return spec
        image = str(spec["image"])
        image_id = self.api.image_id(image)
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
        if spec["secrets"]:
            spec["secret_digests"] = self._digests(spec)  # what is injected now is what the label records
        return spec

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
        host_config = self.api.create_host_config(**host_config_args(spec, self.proxies.network))
        ports = [int(spec["target_port"])] if spec["transport"] in HTTP_TRANSPORTS else None
        environment = container_env(spec)
        for ref in spec["secrets"]:
            if ref["as"] == "env":
                environment[ref["target"]] = self._resolver().value(ref["name"]).reveal()
        created = self.api.create_container(
            image=spec["image"],
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

    def _create_and_start(self, change: Change, spec: dict[str, Any], emit: EventSink) -> None:
        if spec.get("remote"):
            self._create_remote(change, spec, emit)
            return
        server = self._create(change, spec, change.id.name)
        proxy: str | None = None
        try:
            self.api.start(server)
            proxy = self.proxies.create(spec, str(change.id))
            self.api.start(proxy)
            self._wait(change, spec, [(server, 0), (proxy, 0)], emit)
        except (ProviderError, docker.errors.APIError):
            # a half-made workload is worse than none: the next apply creates it afresh
            self._remove_pair(server, proxy)
            raise

    def _create_remote(self, change: Change, spec: dict[str, Any], emit: EventSink) -> None:
        """A remote server is only a proxy: it carries the workload's own name and labels."""
        env = {ref["target"]: self._resolver().value(ref["name"]).reveal() for ref in spec["secrets"]}
        # the proxy image labels its containers role=proxy; a remote workload's container is the workload itself
        labels = {**container_labels(spec, self.stack), LABEL_ROLE: "remote"}
        proxy = self.proxies.create_remote(spec, str(change.id), labels, env)
        try:
            self.api.start(proxy)
            self._wait(change, spec, [(proxy, 0)], emit)
        except (ProviderError, docker.errors.APIError):
            self._remove_pair(proxy, None)
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
        if proxy is None:
            proxy = self.proxies.create(spec, str(change.id))
        proxy_restarts = int(self.api.inspect_container(proxy).get("RestartCount", 0))
        if not self.api.inspect_container(proxy)["State"].get("Running"):
            self.api.start(proxy)
        self._wait(change, spec, [(server, restarts), (str(proxy), proxy_restarts)], emit)

    def _wait(self, change: Change, spec: dict[str, Any], containers: list[tuple[str, int]], emit: EventSink) -> None:
        emit(Event(str(change.id), "progress", "waiting until it answers MCP through its proxy"))
        timeout = float(spec.get("ready_timeout") or 60)
        problem = wait_until_ready(self.api, containers, spec, timeout)
        if problem is not None:
            raise ProviderError(str(change.id), change.action.value, problem)

    def _replace(self, change: Change, spec: dict[str, Any], emit: EventSink) -> None:
        """compose's order with a rollback: set the old pair aside, start the new one, drop the old one last."""
        assert change.observed is not None
        old = change.observed.handle
        old_proxy = change.observed.facts.get("proxy_id")
        was_running = change.observed.status == "running"
        suffix = f"replaced-{pyrandom.token_hex(3)}"
        self.api.rename(old, f"{change.id.name}-{suffix}")
        self.api.stop(old, timeout=STOP_TIMEOUT)
        if old_proxy:
            self.api.rename(old_proxy, f"{proxy_name(change.id.name)}-{suffix}")
            self.api.stop(old_proxy, timeout=STOP_TIMEOUT)
        try:
            self._create_and_start(change, spec, emit)
        except (ProviderError, docker.errors.APIError) as exc:
            emit(Event(str(change.id), "progress", "new container failed; restoring the old one"))
            self._restore(old, change.id.name, was_running)
            if old_proxy:
                self._restore(old_proxy, proxy_name(change.id.name), was_running)
            if isinstance(exc, ProviderError):
                raise
            raise ProviderError(str(change.id), "replace", _api_message(exc)) from None
        self._remove_pair(old, old_proxy)

    def _restore(self, old: str, name: str, start: bool) -> None:
        self.api.rename(old, name)
        if start:
            self.api.start(old)

    def _remove_pair(self, server: str | None, proxy: str | None) -> None:
        for container in (proxy, server):
            if container:
                self._remove_quietly(container)

    def _remove_quietly(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(container_id, force=True)

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
    return text.strip()
