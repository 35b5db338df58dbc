"""Where a client's config file lives, and whether the client looks installed, the way ToolHive decides both.

Pure functions of the table, a home directory and a platform name, so plans are reproducible in tests and
on a machine other than the user's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from toolhive_apply.clients.errors import UnsupportedPlatformError
from toolhive_apply.clients.table import ClientSpec, InstalledRule


def config_path(client: ClientSpec, home: Path, platform: str = sys.platform, override: str | None = None) -> Path:
    """The config file of `client` under `home` on `platform` (a sys.platform value).

    `override` (from the manifest) replaces the table's path: absolute, `~/`-relative or relative to `home`.
    """
    if override:
        if override.startswith("~/"):
            return home / override[2:]
        return home / override  # an absolute override wins over `home` in the join
    if platform.startswith("linux"):
        return home / client.linux_path
    if platform == "darwin" and client.macos_path is not None:
        return home / client.macos_path
    raise UnsupportedPlatformError(
        f"no known config file for {client.name} on {platform}",
        hint="give the file's path explicitly in the manifest",
    )


def is_installed(client: ClientSpec, home: Path, platform: str = sys.platform, override: str | None = None) -> bool:
    """ToolHive's rule: the config file's directory exists (for clients living directly in $HOME, the file)."""
    path = config_path(client, home, platform, override)
    return (path if client.installed is InstalledRule.FILE else path.parent).exists()
