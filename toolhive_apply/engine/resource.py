"""The one model every resource kind shares: ids, desired and observed resources.

Specs are canonical JSON-able mappings; secrets appear in them only as references and keyed digests,
so a spec can be hashed, shown, saved in a plan file and written to a label without leaking.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from toolhive_apply.errors import Origin

HASH_VERSION = "1"
HMAC_KEY_PREFIX: Final = "toolhive-apply.hmac."
"""Secret keys under this prefix are a stack's digest key (`toolhive-apply.hmac.<stack>`), kept in the store."""

Spec = Mapping[str, Any]


class Status(StrEnum):
    """The observed statuses toolhive-apply itself gives (a container's other states pass through as Docker says
    them: `exited`, `created`, ...; a workload's may name its part: `proxy exited`)."""

    RUNNING = "running"
    PRESENT = "present"  # a file entry, record or stored value that exists
    INVALID = "invalid"  # exists but cannot be read or changed; `facts["error"]` says why
    ORPHANED = "orphaned"  # a part of a unit whose main container is gone


HEALTHY: Final = frozenset({Status.RUNNING, Status.PRESENT})
"""Observed statuses that need nothing done: a running workload, a present file entry, record or value."""
DRIFTED: Final = "drifted: "
"""An observed status starting with this is a change made outside toolhive-apply that a start cannot undo (a
container attached to another network, say): the unit is recreated from the spec."""


class Kind(StrEnum):
    STACK = "stack"
    SECRET = "secret"
    REGISTRY = "registry"
    WORKLOAD = "workload"
    CLIENT = "client"


# Creation order; deletion runs the other way round, so a client entry goes before its server.
KIND_ORDER: tuple[Kind, ...] = (Kind.STACK, Kind.SECRET, Kind.REGISTRY, Kind.WORKLOAD, Kind.CLIENT)


@dataclass(frozen=True, slots=True, order=True)
class ResourceId:
    kind: Kind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def internal(self) -> bool:
        """toolhive-apply's own bookkeeping, not something the user declared: the stack record and the stack's
        digest key. Planned and applied like any resource, but never counted nor listed as in sync or kept."""
        return self.kind is Kind.STACK or (self.kind is Kind.SECRET and self.name.startswith(HMAC_KEY_PREFIX))

    @classmethod
    def parse(cls, text: str) -> ResourceId:
        kind, sep, name = text.partition("/")
        if not sep:
            return cls(Kind.WORKLOAD, text)
        return cls(Kind(kind), name)


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: Spec) -> str:
    """SHA-256 of the canonical spec as given; a resource's hash leaves out its kind's soft fields first
    (engine/fields.py). Versioned separately (HASH_VERSION) so upgrades do not recreate."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class DesiredResource:
    id: ResourceId
    spec: Spec
    origin: Origin | None = None
    depends_on: frozenset[ResourceId] = frozenset()
    explain: Mapping[str, str] = field(default_factory=dict)  # field path -> where its value came from

    @property
    def hash(self) -> str:
        from toolhive_apply.engine.fields import table_for  # the table module builds on this one

        return table_for(self.id.kind).hash(self.spec)


@dataclass(frozen=True, slots=True)
class ObservedResource:
    """What a provider saw: enough to decide in sync / start / replace without a detailed read."""

    id: ResourceId
    handle: str
    managed: bool
    owner: str | None
    spec_hash: str | None
    hash_version: str | None
    status: str
    spec: Spec | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint_row(self) -> str:
        return canonical_json([str(self.id), self.handle, self.spec_hash, self.status, self.owner])
