"""The one name toolhive-apply marks what it owns with: container and network labels, secret-store records,
Vault metadata. Its own module, below everything, so the Docker side and the stores share it without importing
each other."""

from __future__ import annotations

from typing import Final

MANAGED_BY: Final = "toolhive-apply"
