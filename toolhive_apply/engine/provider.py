"""The Provider protocol every resource kind implements, and the context apply hands it.

Providers decide *how* to perform a change, never *whether*: the diff decided that, and there is no
check mode for a provider to consult (the Ansible lesson).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Protocol

from toolhive_apply.engine.resource import DesiredResource, Kind, ObservedResource

if TYPE_CHECKING:
    from toolhive_apply.engine.plan import Change
    from toolhive_apply.manifest.model import Manifest


class Phase(StrEnum):
    START = "start"
    PROGRESS = "progress"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Event:
    """Something the executor or a provider wants the user to see; the CLI decides how."""

    address: str
    phase: Phase | str  # a Phase; a plain string of one of its values is accepted from older providers
    message: str


EventSink = Callable[[Event], None]


class Provider(Protocol):
    kind: ClassVar[Kind]

    def desired(self, manifest: Manifest) -> list[DesiredResource]:
        """The resources of this kind the manifest asks for (pure but for cheap lookups)."""
        ...

    def observe(self, names: Sequence[str]) -> list[ObservedResource]:
        """Live resources of this kind owned by the stack, plus any foreign one under a wanted name.

        Must cost a constant number of round trips, whatever the number of resources.
        """
        ...

    def apply(self, change: Change, emit: EventSink) -> str:
        """Carry out one change; returns a short past-tense note ("created", "replaced")."""
        ...
