"""The tiny image behind state-carrying containers (stack locks, registry and stack records).

Its own module because locks and records both use it and neither owns it: imported from a built-in tar, never
pulled, so no registry is ever asked for it.
"""

from __future__ import annotations

import io
import tarfile
from typing import Final

from toolhive_apply.providers.docker.client import CountingAPIClient

LOCK_IMAGE_REPO: Final = "toolhive-apply/lock"
LOCK_IMAGE_TAG: Final = "1"


def _empty_image_tar() -> bytes:
    """A one-file root filesystem: the lock container is created, never started."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("lock")
        info.size = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


MARKER_IMAGE: Final = f"{LOCK_IMAGE_REPO}:{LOCK_IMAGE_TAG}"


def ensure_marker_image(api: CountingAPIClient) -> str:
    """The tiny image behind state-carrying containers (locks, registry records); imported, never pulled."""
    if api.image_id(MARKER_IMAGE) is None:
        api.import_image_from_data(_empty_image_tar(), repository=LOCK_IMAGE_REPO, tag=LOCK_IMAGE_TAG)
    return MARKER_IMAGE
