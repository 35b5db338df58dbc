"""The exception hierarchy: every user-facing failure is a ToolhiveApplyError.

Each subclass carries the context a user needs to act (file:line:col and field for manifests,
kind/name for resources, endpoint and hint for unreachable targets); cli.py renders them in one place.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


def unreadable_value(exc: ValueError) -> str:
    """A parser's ValueError in words, for every file format we read (manifests and client files alike).

    The one known cause is int() of more digits than Python converts (sys.get_int_max_str_digits)."""
    if "integer string conversion" in str(exc):
        return f"a number too long to read (at most {sys.get_int_max_str_digits()} digits)"
    return f"a value that cannot be read ({exc})"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where something was declared: errors and plan lines point here."""

    file: Path
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class ManifestIssue:
    """One problem in a manifest, positioned; many are reported together."""

    origin: Origin | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.origin}: " if self.origin else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.origin is None:
            return ("", 0, 0, self.field)
        return (str(self.origin.file), self.origin.line, self.origin.column, self.field)

    def as_json(self) -> dict[str, object]:
        return {
            "file": str(self.origin.file) if self.origin else None,
            "line": self.origin.line if self.origin else None,
            "column": self.origin.column if self.origin else None,
            "field": self.field,
            "message": self.message,
        }


class ToolhiveApplyError(Exception):
    """Base of every error the CLI reports as a message rather than a traceback."""

    exit_code: int = 1
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        """The lines the CLI prints for this error (without the hint)."""
        return [self.message]

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class ManifestError(ToolhiveApplyError):
    """One or more problems in the manifest files; all are reported at once, sorted by position."""

    code = "manifest_invalid"

    def __init__(self, issues: Iterable[ManifestIssue], *, hint: str | None = None) -> None:
        self.issues: tuple[ManifestIssue, ...] = tuple(sorted(issues, key=ManifestIssue.sort_key))
        count = len(self.issues)
        summary = str(self.issues[0]) if count == 1 else f"{count} problems in the manifest"
        super().__init__(summary, hint=hint)

    @classmethod
    def single(cls, origin: Origin | None, field: str, message: str) -> ManifestError:
        return cls([ManifestIssue(origin, field, message)])

    def lines(self) -> list[str]:
        return [str(issue) for issue in self.issues]

    def as_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "issues": [issue.as_json() for issue in self.issues],
        }


class TargetUnavailableError(ToolhiveApplyError):
    """Docker, Vault or a registry could not be reached or refused to work."""

    code = "target_unavailable"

    def __init__(self, target: str, endpoint: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{target} at {endpoint} is not available: {reason}", hint=hint)
        self.target = target
        self.endpoint = endpoint


class ConflictError(ToolhiveApplyError):
    """Something with a name we want exists and is not ours (or changed under us)."""

    code = "conflict"


class LockedError(ToolhiveApplyError):
    """Another apply holds the stack's lock."""

    code = "locked"


class StalePlanError(ToolhiveApplyError):
    """A saved plan no longer matches the live state it was made from."""

    code = "stale_plan"

    def __init__(self, message: str, moved: Sequence[str] = ()) -> None:
        super().__init__(message, hint="run `toolhive-apply plan` again and apply the new plan")
        self.moved = tuple(moved)


class PlanFileError(ToolhiveApplyError):
    """A saved plan file cannot be read, or cannot be verified."""

    code = "plan_file_invalid"


class UnsafePlanError(PlanFileError):
    """A verified saved plan whose specs fail the manifest's checks: every problem, one per line."""

    code = "plan_refused"

    def __init__(self, message: str, problems: Sequence[str]) -> None:
        super().__init__(message, hint="make the plan again from a manifest that passes `toolhive-apply validate`")
        self.problems = tuple(problems)

    def lines(self) -> list[str]:
        return list(self.problems)

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "problems": list(self.problems)}


class ProviderError(ToolhiveApplyError):
    """An action on one resource failed; carries the resource address and the action."""

    code = "resource_failed"

    def __init__(self, address: str, action: str, cause: str, *, hint: str | None = None) -> None:
        super().__init__(f"{address}: {action} failed: {cause}", hint=hint)
        self.address = address
        self.action = action
        self.cause = cause


class ApplyFailedError(ToolhiveApplyError):
    """Some resources failed; the recap already told which."""

    code = "apply_failed"


class UsageError(ToolhiveApplyError):
    """The command line asked for something impossible (unknown target, missing file)."""

    code = "usage"
