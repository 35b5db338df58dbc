"""The registry resource: each declared registry's configured source, recorded on the Docker host.

ToolHive keeps its registry source in config.yaml on one machine; a GitOps runner with a remote DOCKER_HOST has
no such file. So the record is a never-started container carrying labels (created atomically, listed in one call
with the stack's other objects), which lets `export registries` work without the manifest and makes a source change
show in `plan`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar, Final

import docker.errors

from toolhive_apply.docker_client import CountingAPIClient, docker_errors
from toolhive_apply.engine.lock import ensure_marker_image
from toolhive_apply.engine.plan import Action, Change
from toolhive_apply.engine.resource import HASH_VERSION, DesiredResource, Kind, ObservedResource, ResourceId, spec_hash
from toolhive_apply.errors import ProviderError
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.providers.base import EventSink
from toolhive_apply.providers.snapshot import StackContainers
from toolhive_apply.providers.workload_spec import (
    LABEL_HASH,
    LABEL_HASH_VERSION,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_SPEC,
    LABEL_STACK,
    MANAGED_BY,
)
from toolhive_apply.redact import scrubbed_json
from toolhive_apply.registry.resolve import source_of
from toolhive_apply.urls import mask_url

LABEL_ROLE: Final = "toolhive-apply.role"
ROLE_REGISTRY: Final = "registry"


def record_name(stack: str, name: str) -> str:
    return f"toolhive-apply-registry.{stack}.{name}"


def registry_records(api: CountingAPIClient, stack: str | None) -> list[dict[str, Any]]:
    labels = [f"{LABEL_ROLE}={ROLE_REGISTRY}"] + ([f"{LABEL_STACK}={stack}"] if stack else [])
    found: list[dict[str, Any]] = api.containers(all=True, filters={"label": labels})
    return found


def record_spec(summary: dict[str, Any]) -> dict[str, Any] | None:
    try:
        spec = json.loads((summary.get("Labels") or {}).get(LABEL_SPEC, ""))
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


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
        records = [c for c in self.snapshot.owned() if (c.get("Labels") or {}).get(LABEL_ROLE) == ROLE_REGISTRY]
        observed = []
        for summary in records:
            labels = summary.get("Labels") or {}
            name = labels.get(LABEL_NAME, "")
            observed.append(
                ObservedResource(
                    ResourceId(Kind.REGISTRY, name),
                    summary["Id"],
                    True,
                    self.stack,
                    labels.get(LABEL_HASH),
                    labels.get(LABEL_HASH_VERSION),
                    "present",
                    record_spec(summary),
                )
            )
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
        spec = dict(desired.spec)
        self.api.create_container(
            image=ensure_marker_image(self.api),
            command=["/registry"],
            name=record_name(self.stack, desired.id.name),
            network_disabled=True,
            labels={
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_STACK: self.stack,
                LABEL_ROLE: ROLE_REGISTRY,
                LABEL_NAME: desired.id.name,
                LABEL_HASH: spec_hash(spec),
                LABEL_HASH_VERSION: HASH_VERSION,
                LABEL_SPEC: scrubbed_json(spec, sort_keys=True),
            },
        )
