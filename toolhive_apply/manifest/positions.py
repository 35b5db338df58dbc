"""Put each problem where the field it names was written, not where its entry starts.

Checks name the field they judge (`workloads[2].secrets[0].name`); the loader remembered where every key and list
item was written. An issue about a field that is written is shown at that field; one about a field that is not
(a port a registry supplied) stays at the entry, which is where its nearest written ancestor is.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from toolhive_apply.errors import ManifestIssue, Origin
from toolhive_apply.manifest.loader import Positions, format_path

# the last `.key` or `[index]` of a formatted field path
_LAST_PART = re.compile(r"(\.[^.\[\]]*|\[[^\]]*\])$")


def _index(positions: Positions) -> dict[str, Origin]:
    return {format_path(path): origin for path, origin in positions.by_path.items() if path}


def _written(field: str, index: dict[str, Origin]) -> Origin | None:
    """The origin of `field`, or of its nearest written ancestor below the section itself (a whole section's line
    says less than the entry the check already named)."""
    while field:
        if field in index:
            return index[field]
        shorter = _LAST_PART.sub("", field)
        if shorter == field or not _LAST_PART.search(shorter):
            return None  # only the section is left: `workloads`, `secrets`
        field = shorter
    return None


def positioned(issues: Iterable[ManifestIssue], positions: Positions) -> list[ManifestIssue]:
    """`issues`, each moved to the field it names when that field (or an entry inside the section) was written."""
    index = _index(positions)
    result = []
    for issue in issues:
        where = _written(issue.field, index) if issue.field else None
        result.append(dataclasses.replace(issue, origin=where) if where is not None else issue)
    return result
