"""Each kind's field policy: how the engine treats the fields of a spec (hash, diff, plan text, update or replace).

A provider declares one FieldTable for its kind, as Ansible's community.docker declares an option/comparison table
per module; the engine reads the table and names no provider field. A field without a rule is hashed, compared,
shown with -v only, and changed the way its kind changes: so a new field needs an entry only when it is soft,
sensitive, a headline or updated differently from the rest of its kind.

Rule keys are a top-level field name (`"image"`: that path only) or a name with `.*` (`"env_vars.*"`: every path
below it). Tables are registered once per kind (providers/fields.py does it on import of the providers package);
looking up an unregistered kind is an error, never a silent default that would hash differently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from toolhive_apply.engine.resource import Kind, Spec, spec_hash


class Update(StrEnum):
    """How a change of a hashed field is carried out."""

    IN_PLACE = "in_place"  # the provider changes the resource where it is (a file entry, a KV value)
    REPLACE = "replace"  # the resource is recreated


class Sensitive(StrEnum):
    """What a sensitive path is, for the plan's reason: never its value, only that it changed."""

    NO = "no"
    MARKED = "marked"  # shown as "(sensitive value)", says nothing more in the reason
    VALUE = "value"  # the resource's own value: "value changed"
    NAMED = "named"  # a digest of one named secret under this field: "secret rotated: NAME"


@dataclass(frozen=True, slots=True)
class FieldRule:
    soft: bool = False
    """Recorded with the resource but not shaping it: left out of its hash and its field diff (top-level keys)."""
    sensitive: Sensitive = Sensitive.NO
    headline: bool = False
    """Shown in the short form of a create or delete plan (an empty list says nothing and is left out)."""
    always_shown: bool = False
    """Shown in the short form whatever its value: what a workload may touch is what a reviewer has to see."""
    names_only: bool = False
    """The short form lists the names below this field (`env_vars: A, B`), never their values."""
    update: Update | None = None
    """How a change of this field is carried out; None: as the table's `update` says."""


PLAIN_RULE = FieldRule()


def _as_is(status: str) -> str:
    return status


@dataclass(frozen=True, slots=True)
class FieldTable:
    kind: Kind
    rules: Mapping[str, FieldRule] = field(default_factory=dict)
    update: Update = Update.REPLACE
    parts: str | None = None
    """The field that lists the objects a resource is made of, shown as `# made of: ...` under its change."""
    describe_status: Callable[[str], str] = _as_is
    """How an observed status that is neither healthy nor drifted reads as the reason for a start."""

    def rule(self, path: str) -> FieldRule:
        exact = self.rules.get(path)
        if exact is not None:
            return exact
        parts = path.split(".")
        for size in range(1, len(parts)):
            nested = self.rules.get(".".join(parts[:size]) + ".*")
            if nested is not None:
                return nested
        return PLAIN_RULE

    @property
    def soft_fields(self) -> frozenset[str]:
        return frozenset(name for name, rule in self.rules.items() if rule.soft)

    def hard(self, spec: Spec) -> dict[str, Any]:
        soft = self.soft_fields
        return {key: value for key, value in spec.items() if key not in soft}

    def hash(self, spec: Spec) -> str:
        """SHA-256 of the canonical spec without its soft fields; versioned apart (HASH_VERSION)."""
        return spec_hash(self.hard(spec))

    def update_for(self, paths: Iterable[str]) -> Update:
        """REPLACE when any changed path needs it, else IN_PLACE."""
        for path in paths:
            if (self.rule(path).update or self.update) is Update.REPLACE:
                return Update.REPLACE
        return Update.IN_PLACE if self.update is Update.IN_PLACE else Update.REPLACE


PLAIN_TABLE = FieldTable(Kind.STACK)
"""No rule at all: every field hashed and compared (for hashes of shapes that are not resources, and tests)."""

_TABLES: dict[Kind, FieldTable] = {}


def register(*tables: FieldTable) -> None:
    for table in tables:
        _TABLES[table.kind] = table


def table_for(kind: Kind) -> FieldTable:
    try:
        return _TABLES[kind]
    except KeyError:
        msg = f"no field table is registered for kind {kind.value!r} (import toolhive_apply.providers first)"
        raise LookupError(msg) from None
