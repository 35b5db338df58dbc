"""The registry resource: each declared registry's configured source, recorded on the Docker host.

ToolHive keeps its registry source in config.yaml on one machine; a GitOps runner with a remote DOCKER_HOST has
no such file. So the record is a never-started container carrying labels (created atomically, listed in one call
with the stack's other objects), which lets `export registries` work without the manifest and makes a source change
show in `plan`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

import docker.errors

from toolhive_apply.engine.plan import Action, Change
from toolhive_apply.engine.provider import EventSink
from toolhive_apply.engine.resource import DesiredResource, Kind, ObservedResource, ResourceId
from toolhive_apply.errors import ProviderError
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.providers.docker.client import CountingAPIClient, docker_errors
from toolhive_apply.providers.docker.labels import LABEL_NAME, LABEL_ROLE, LABEL_STACK
from toolhive_apply.providers.docker.snapshot import StackContainers
from toolhive_apply.providers.records import create_record, observed_record, record_spec, records_of
from toolhive_apply.registry.resolve import source_of
from toolhive_apply.urls import mask_url

ROLE_REGISTRY: Final = "registry"


def record_name(stack: str, name: str) -> str:
    return f"toolhive-apply-registry.{stack}.{name}"


def registry_records(api: CountingAPIClient, stack: str | None) -> list[dict[str, Any]]:
    labels = [f"{LABEL_ROLE}={ROLE_REGISTRY}"] + ([f"{LABEL_STACK}={stack}"] if stack else [])
    found: list[dict[str, Any]] = api.containers(all=True, filters={"label": labels})
    return found


__all__ = ["RegistryProvider", "record_name", "record_spec", "registry_records"]


class RegistryProvider:
    kind: ClassVar[Kind] = Kind.REGISTRY

    def __init__(self, api: CountingAPIClient, stack: str, snapshot: StackContainers) -> None:
        self.api = api
        self.stack = stack
        self.endpoint = snapshot.endpoint
        self.snapshot = snapshot

    def desired(self, manifest: Manifest) -> list[DesiredResource]:
        result = []
        for registry in manifest.registries:
            kind, source = source_of(registry)
            # A URL may carry credentials: labels, plans and exports only ever hold it masked.
            shown = source if kind == "file" else mask_url(source)
            # `source` is a soft field (for secrets it only describes); `location` makes a moved registry a change
            spec: dict[str, Any] = {"name": registry.name, "type": kind, "source": shown, "location": shown}
            spec["prune"] = True
            if registry.allow_private_ip:  # recorded so `export registries` fetches under the same rules
                spec["allow_private_ip"] = True
            if registry.redirect_hosts:
                spec["redirect_hosts"] = sorted(registry.redirect_hosts)
            result.append(DesiredResource(ResourceId(Kind.REGISTRY, registry.name), spec, registry.origin))
        return result

    def observe(self, names: Sequence[str]) -> list[ObservedResource]:
        records = records_of(self.snapshot.owned(), ROLE_REGISTRY)
        observed = []
        for summary in records:
            name = (summary.get("Labels") or {}).get(LABEL_NAME, "")
            observed.append(observed_record(Kind.REGISTRY, name, self.stack, summary))
        return observed

    def apply(self, change: Change, emit: EventSink) -> str:
        try:
            with docker_errors(self.endpoint):
                if change.observed is not None:
                    self.api.remove_container(change.observed.handle, force=True)
                if change.action is Action.DELETE:
                    return "deleted"
                assert change.desired is not None
                self._create(change.desired)
        except docker.errors.APIError as exc:
            raise ProviderError(str(change.id), change.action.value, str(exc.explanation or exc)) from None
        return "recorded" if change.action is Action.CREATE else "replaced"

    def _create(self, desired: DesiredResource) -> None:
        name = record_name(self.stack, desired.id.name)
        create_record(self.api, name, (self.stack, ROLE_REGISTRY, desired.id.name), desired)
