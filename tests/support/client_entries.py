"""Reading client files entry by entry, for tests: the provider observes whole files (clients.observe) and never
needs these, so they live here rather than in the library."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from toolhive_apply.clients import ClientSpec, observe, same_entry
from toolhive_apply.clients.confinement import Confinement


def read_entries(client: ClientSpec, path: Path, confinement: Confinement | None = None) -> dict[str, object]:
    """Every server entry in the file (ours and foreign), by name; empty for a missing file."""
    return dict(observe(client, path, confinement).entries)


def entry_differences(expected: Mapping[str, object], actual: object) -> tuple[str, ...]:
    """The keys in which an observed entry differs from the expected one, sorted; empty when they are the same.

    For wording drift in a plan ("url, type differ"); an entry that is not a mapping differs in every key.
    """
    if not isinstance(actual, Mapping):
        return tuple(sorted(expected))
    keys = set(expected) | {str(key) for key in actual}
    return tuple(sorted(key for key in keys if not _same_field(key, expected, actual)))


def _same_field(key: str, expected: Mapping[str, object], actual: Mapping[object, object]) -> bool:
    if (key in expected) != (key in actual):
        return False
    return same_entry(expected.get(key), actual.get(key))


def _same_field(key: str, expected: Mapping[str, object], actual: Mapping[object, object]) -> bool:
    if (key in expected) != (key in actual):
        return False
    return same_entry(expected.get(key), actual.get(key))
