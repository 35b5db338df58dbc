"""Typed reads of a raw JSON object (the proxy's configuration) that record every problem instead of raising at
the first, so one start reports all that is wrong with its ``THV_PROXY_CONFIG`` at once."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class ConfigReader:
    """Typed access to the raw JSON object that records problems instead of raising at the first one."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def text(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                self.problems.append(f"{key}: required")
            return default
        if not isinstance(value, str) or not value.strip():
            self.problems.append(f"{key}: must be a non-empty string")
            return default
        return value

    def choice(self, key: str, enum: type[StrEnum], *, required: bool = False) -> Any:
        value = self.text(key, required=required)
        if value is None:
            return None
        try:
            return enum(value)
        except ValueError:
            self.problems.append(f"{key}: must be one of {', '.join(repr(str(m)) for m in enum)}, got {value!r}")
            return None

    def integer(self, key: str, low: int, high: int, *, default: int | None = None) -> int | None:
        value = self.raw.get(key)
        if value is None:
            if default is None:
                self.problems.append(f"{key}: required")
            return default
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.problems.append(f"{key}: must be an integer from {low} to {high}, got {value!r}")
            return default
        return value

    def number(self, key: str, low: float, high: float, *, default: float) -> float:
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            self.problems.append(f"{key}: must be a number of seconds from {low:g} to {high:g}, got {value!r}")
            return default
        return float(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            self.problems.append(f"{key}: must be an object of strings")
            return {}
        return dict(value)

    def string_list(self, key: str) -> list[str] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problems.append(f"{key}: must be a list of non-empty strings")
            return None
        return list(value)
