"""Secrets delivered as files: a tar copied into the container before it starts, owner-only permissions.

A value in an environment variable is visible to anyone who can `docker inspect`; a file copied in with
put_archive is not part of the container's config, so servers that read files can avoid that exposure.
Files go into their (existing) parent directory one archive per directory, so no directory of the image
ever has its mode or owner changed by us.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import PurePosixPath

from toolhive_apply.redact import SecretValue


def secret_archives(files: Mapping[str, SecretValue], uid: int = 0, gid: int = 0) -> dict[str, bytes]:
    """Parent directory -> a tar of its secret files, each 0400 and owned by `uid:gid`."""
    grouped: dict[str, list[tuple[str, SecretValue]]] = defaultdict(list)
    for target, value in files.items():
        path = PurePosixPath(target)
        grouped[str(path.parent)].append((path.name, value))
    archives = {}
    for directory, items in sorted(grouped.items()):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, value in sorted(items, key=lambda item: item[0]):
                data = value.reveal().encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o400, uid, gid, time.time()
                tar.addfile(info, io.BytesIO(data))
        archives[directory] = buffer.getvalue()
    return archives
