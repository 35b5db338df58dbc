"""Records kept on the Docker host: never-started marker containers whose labels carry a spec.

What a manifest declares that no running container carries (a registry's source, the stack's groups and secret
store) must survive without local files, for a GitOps runner with a remote DOCKER_HOST. A labelled container is
created atomically, is listed with the stack's other containers (no extra call) and is owned like them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from toolhive_apply.engine.resource import HASH_VERSION, DesiredResource, Kind, ObservedResource, ResourceId, Status
from toolhive_apply.providers.docker.client import CountingAPIClient
from toolhive_apply.providers.docker.labels import (
    LABEL_HASH,
    LABEL_HASH_VERSION,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_ROLE,
    LABEL_SPEC,
    LABEL_STACK,
    MANAGED_BY,
)
from toolhive_apply.providers.docker.marker_image import ensure_marker_image
from toolhive_apply.redact import scrubbed_json


def record_spec(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The spec a record carries, or None when its label is missing or not a JSON object."""
    try:
        spec = json.loads((summary.get("Labels") or {}).get(LABEL_SPEC, ""))
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def observed_record(kind: Kind, name: str, stack: str, summary: Mapping[str, Any]) -> ObservedResource:
    """A record container as the observed resource of `kind` it stands for (a record is present or absent)."""
    labels = summary.get("Labels") or {}
    return ObservedResource(
        ResourceId(kind, name),
        str(summary["Id"]),
        True,
        stack,
        labels.get(LABEL_HASH),
        labels.get(LABEL_HASH_VERSION),
        Status.PRESENT,
        record_spec(summary),
    )


def records_of(containers: Iterable[Mapping[str, Any]], role: str) -> list[Mapping[str, Any]]:
    return [c for c in containers if (c.get("Labels") or {}).get(LABEL_ROLE) == role]


def create_record(
    api: CountingAPIClient, container: str, owner: tuple[str, str, str], desired: DesiredResource
) -> None:
    """A record named `container` for (stack, role, name); the spec is scrubbed before it becomes a label."""
    stack, role, name = owner
    spec = desired.spec
    api.create_container(
        image=ensure_marker_image(api),
        command=[f"/{role}"],  # never run: the marker image has no program
        name=container,
        network_disabled=True,
        labels={
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_STACK: stack,
            LABEL_ROLE: role,
            LABEL_NAME: name,
            LABEL_HASH: desired.hash,
            LABEL_HASH_VERSION: HASH_VERSION,
            LABEL_SPEC: scrubbed_json(dict(spec), sort_keys=True),
        },
    )
