"""Where toolhive-apply keeps local state: `$XDG_STATE_HOME/toolhive-apply` (default ~/.local/state/...).

One home for the directory the debug log, the client state and the local digest key live in; it is private
(0700) when toolhive-apply creates it. XDG_STATE_HOME itself is left as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

APP_DIR = "toolhive-apply"


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / APP_DIR


def make_private_dir(directory: Path) -> Path:
    """Create `directory` (mode 0700) and its parents; an existing directory is left as it is."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    return directory
