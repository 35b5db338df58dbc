"""Counts as English (`1 workload`, `2 registries`): one home for the plurals every message uses."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
