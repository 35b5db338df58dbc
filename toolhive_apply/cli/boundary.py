"""The one error boundary: what every failure becomes on the terminal (one message, a hint, an exit code).

Tracebacks never reach the terminal: a bug's redacted traceback goes to the private debug log, and click's own
messages are scrubbed like ours (an argument may be a secret).
"""

from __future__ import annotations

import sys
import traceback
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from toolhive_apply import __version__
from toolhive_apply.cli.common import EXIT_ERROR, colour, err, print_json

if TYPE_CHECKING:
    from toolhive_apply.errors import ToolhiveApplyError


def print_error(error: ToolhiveApplyError, json_mode: bool) -> None:
    """One message (or one JSON object) per error, with its context lines and hint."""
    if json_mode:
        print_json({"error": error.as_json()})
        return
    lines = error.lines()
    prefix = "\x1b[31mError:\x1b[0m" if colour(sys.stderr) else "Error:"
    if len(lines) == 1:
        err(f"{prefix} {lines[0]}\n")
    else:
        err(f"{prefix} {error.message}:\n")
        for line in lines:
            err(f"  {line}\n")
    if error.hint:
        err(f"  hint: {error.hint}\n")


def internal_error(exc: BaseException) -> int:
    """A bug: one line on stderr, the redacted traceback in the private debug log, never on the terminal."""
    from toolhive_apply.fileio import append_private, private_dir, state_dir
    from toolhive_apply.redact import redact

    log = state_dir() / "debug.log"
    header = f"--- {datetime.now(UTC).isoformat()} toolhive-apply {__version__}\n"
    try:
        private_dir(log.parent)  # 0700, like the rest of the state directory; the log itself is 0600
        append_private(log, (header + redact("".join(traceback.format_exception(exc)))).encode("utf-8"))
        where = str(log)
    except OSError:
        where = "(could not write the debug log)"
    err(f"Error: internal error ({type(exc).__name__}) - details in {where}\n")
    return EXIT_ERROR


class _ScrubbedStderr:
    """A file for click's messages that writes through err()."""

    def write(self, text: str) -> int:
        err(text)
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


def usage_problem(exc: Exception) -> int | None:
    """Command-line mistakes found by the parser: Typer vendors its own click, so match by class name."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Abort" in names:
        err("Aborted.\n")
        return EXIT_ERROR
    show = getattr(exc, "show", None)
    if "ClickException" in names and callable(show):
        show(file=_ScrubbedStderr())  # the message may quote an argument, and an argument may be a secret
        return EXIT_ERROR  # not click's 2: with --detailed-exitcode, 2 means "changes"
    return None
