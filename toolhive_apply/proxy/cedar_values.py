"""Cedar values, entities and the entity store for the proxy's Cedar subset (see ``cedar.py`` for the subset).

One home for what a Cedar value is here: ``bool``, 64-bit ``int``, ``str``, ``Uid`` (an entity reference),
``CedarSet`` and records (mappings); ``equal`` is Cedar's ``==`` on them. Also the conversions in and out: Cedar's
JSON entity format (``entities_json``), and claims/arguments as ToolHive turns them into attributes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Union

LONG_MIN: Final = -(2**63)
LONG_MAX: Final = 2**63 - 1


class CedarError(ValueError):
    """A policy (or entity document) outside the subset or malformed; ``line``/``col`` are 1-based."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        super().__init__(f"{line}:{col}: {message}" if line else message)
        self.message = message
        self.line = line
        self.col = col


class EvaluationError(Exception):
    """A condition that Cedar evaluates to an error: the policy does not apply."""


@dataclass(frozen=True, slots=True)
class Uid:
    type: str
    id: str

    def __str__(self) -> str:
        escaped = self.id.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.type}::"{escaped}"'


@dataclass(frozen=True, slots=True)
class CedarSet:
    items: tuple[Value, ...]


Value = Union[bool, int, str, Uid, CedarSet, "Mapping[str, Value]"]


def equal(a: Value, b: Value) -> bool:
    """Cedar ``==``: never an error; values of different types are unequal (``1 != true``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, CedarSet) and isinstance(b, CedarSet):
        return all(member(x, b) for x in a.items) and all(member(y, a) for y in b.items)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    return a == b


def member(value: Value, cedar_set: CedarSet) -> bool:
    return any(equal(value, item) for item in cedar_set.items)


@dataclass(frozen=True, slots=True)
class Entity:
    uid: Uid
    attrs: Mapping[str, Value] = field(default_factory=dict)
    parents: tuple[Uid, ...] = ()


class EntityStore:
    """Entities by uid, with the transitive ancestors ``in`` follows."""

    def __init__(self, entities: Iterable[Entity]) -> None:
        self.entities: dict[Uid, Entity] = {}
        for entity in entities:
            self.entities[entity.uid] = entity
        self._ancestors: dict[Uid, frozenset[Uid]] = {}

    def ancestors(self, uid: Uid) -> frozenset[Uid]:
        cached = self._ancestors.get(uid)
        if cached is not None:
            return cached
        seen: set[Uid] = set()
        todo = list(self.entities[uid].parents) if uid in self.entities else []
        while todo:
            parent = todo.pop()
            if parent not in seen:
                seen.add(parent)
                if parent in self.entities:
                    todo.extend(self.entities[parent].parents)
        self._ancestors[uid] = frozenset(seen)
        return self._ancestors[uid]

    def is_in(self, uid: Uid, other: Uid) -> bool:
        return uid == other or other in self.ancestors(uid)


TYPE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*")
"""An entity type name, namespaced or not (``Client``, ``Acme::Group``)."""


def _uid_json(raw: object, where: str) -> Uid:
    if isinstance(raw, dict) and set(raw) == {"__entity"}:
        raw = raw["__entity"]
    if not (isinstance(raw, dict) and isinstance(raw.get("type"), str) and isinstance(raw.get("id"), str)):
        raise CedarError(f'{where}: an entity uid must be {{"type": ..., "id": ...}}')
    if not TYPE_NAME.fullmatch(raw["type"]):
        raise CedarError(f"{where}: {raw['type']!r} is not an entity type name")
    return Uid(raw["type"], raw["id"])


def value_from_json(raw: object, where: str = "value") -> Value:
    """A Cedar value from Cedar's JSON attribute format (no schema): lists are sets, objects records, and
    ``{"__entity": {...}}`` an entity reference. Numbers must be 64-bit integers."""
    if isinstance(raw, bool | str):
        return raw
    if isinstance(raw, int):
        if not LONG_MIN <= raw <= LONG_MAX:
            raise CedarError(f"{where}: integer out of the 64-bit range")
        return raw
    if isinstance(raw, list):
        return CedarSet(tuple(value_from_json(v, where) for v in raw))
    if isinstance(raw, dict):
        if "__entity" in raw:
            return _uid_json(raw, where)
        if "__extn" in raw:
            raise CedarError(f"{where}: extension values are not supported")
        return {str(k): value_from_json(v, f"{where}.{k}") for k, v in raw.items()}
    raise CedarError(f"{where}: {type(raw).__name__} is not a Cedar value")


def parse_entities(raw: object) -> list[Entity]:
    """Cedar's JSON entity list (``entities_json``): ``[{"uid": {...}, "attrs": {...}, "parents": [...]}]``."""
    if not isinstance(raw, list):
        raise CedarError("entities_json must be a JSON list of entities")
    entities = []
    for index, item in enumerate(raw):
        where = f"entities[{index}]"
        if not isinstance(item, dict) or "uid" not in item:
            raise CedarError(f"{where}: must be an object with uid, attrs, parents")
        attrs = item.get("attrs") or {}
        parents = item.get("parents") or []
        if not isinstance(attrs, dict) or not isinstance(parents, list):
            raise CedarError(f"{where}: attrs must be an object and parents a list")
        values = {str(k): value_from_json(v, f"{where}.attrs.{k}") for k, v in attrs.items()}
        entities.append(Entity(_uid_json(item["uid"], where), values, tuple(_uid_json(p, where) for p in parents)))
    return entities


def value_from_claim(raw: object) -> Value | None:
    """A JWT claim or tool argument as a Cedar value, as ToolHive converts them: strings, booleans, integers
    (integral floats too), lists as sets and objects as records; what Cedar cannot hold (null, fractions, numbers
    beyond 64 bits) is left out (None), so a policy reading it errors and does not apply."""
    if isinstance(raw, bool | str):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, int):
        return raw if LONG_MIN <= raw <= LONG_MAX else None
    if isinstance(raw, list):
        items = [value_from_claim(v) for v in raw]
        return CedarSet(tuple(v for v in items if v is not None))
    if isinstance(raw, dict):
        record = {str(k): value_from_claim(v) for k, v in raw.items()}
        return {k: v for k, v in record.items() if v is not None}
    return None


def prefixed(prefix: str, values: Mapping[str, Any] | None) -> dict[str, Value]:
    converted = {f"{prefix}{k}": value_from_claim(v) for k, v in (values or {}).items()}
    return {k: v for k, v in converted.items() if v is not None}


def entity_json(entity: Entity) -> dict[str, Any]:
    """Cedar's JSON entity format (for the differential test and for debugging)."""
    return {
        "uid": {"type": entity.uid.type, "id": entity.uid.id},
        "attrs": {k: value_to_json(v) for k, v in entity.attrs.items()},
        "parents": [{"type": p.type, "id": p.id} for p in entity.parents],
    }


def value_to_json(value: Value) -> Any:
    if isinstance(value, Uid):
        return {"__entity": {"type": value.type, "id": value.id}}
    if isinstance(value, CedarSet):
        return [value_to_json(v) for v in value.items]
    if isinstance(value, Mapping):
        return {k: value_to_json(v) for k, v in value.items()}
    return value
