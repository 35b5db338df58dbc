"""Names that would collide with toolhive-apply's own Docker objects: refused at validate.

A workload's container carries its name, and its helpers carry derived ones (`<name>-proxy`, `<name>-egress`);
a replace renames the old containers aside (`<name>-replaced-<token>`) and any container of the stack whose name
holds that mark counts as a leftover; the stack lock, registry records and networks are named
`toolhive-apply...`. So a workload named `x-proxy` beside `x` fights x's proxy for its name and never converges,
one named like a set-aside container is removed as a leftover, and one named `toolhive-apply-lock.<stack>` takes
another stack's lock. Secret keys of that prefix could overwrite the stack's own records in the store.

The naming vocabulary is imported from where the objects are made (providers/workload_spec.py, and the helper
roles of providers/workload_observation.py), never spelled again here. Docker compares container names exactly,
so derived collisions are exact; the reserved prefix is compared case-insensitively (it has no honest use).
"""

from __future__ import annotations

from collections.abc import Iterator

from toolhive_apply.errors import ManifestIssue
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import Manifest


def check_names(manifest: Manifest) -> Iterator[ManifestIssue]:
    # imported here: providers.workload_spec imports the manifest model, which imports these checks
    from toolhive_apply.providers.docker.labels import MANAGED_BY, SET_ASIDE_MARK
    from toolhive_apply.providers.workload.observe import HELPER_NAMES

    helpers = {
        derive(w.name): (w.name, role) for w in manifest.workloads for role, derive in sorted(HELPER_NAMES.items())
    }
    reserved = MANAGED_BY.lower()
    for w in manifest.workloads:
        where = format_path(("workloads", w.index, "name"))
        if w.name.lower().startswith(reserved):
            yield ManifestIssue(
                w.origin,
                where,
                f"names beginning {MANAGED_BY!r} are toolhive-apply's own (the stack lock, registry records, "
                "networks); choose another name",
            )
        if SET_ASIDE_MARK in w.name:
            yield ManifestIssue(
                w.origin,
                where,
                f"a name holding {SET_ASIDE_MARK!r} is how a replace sets containers aside; such a container is "
                "removed as a leftover, so choose another name",
            )
        owner = helpers.get(w.name)
        if owner is not None and owner[0] != w.name:
            yield ManifestIssue(
                w.origin,
                where,
                f"{w.name!r} is the name of workload {owner[0]!r}'s {owner[1]} container; choose another name",
            )
    for index, secret in enumerate(manifest.secrets):
        if secret.key.lower().startswith(reserved):
            yield ManifestIssue(
                secret.origin,
                format_path(("secrets", index, "key")),
                f"keys beginning {MANAGED_BY!r} are toolhive-apply's own records in the store; choose another key",
            )
