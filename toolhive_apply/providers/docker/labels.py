"""The one label and object-naming vocabulary: our labels, ToolHive's labels, and the names of every container and
network a workload's unit is made of. Observation, creation, export and the lock all read it from here, so a label
is spelled once."""

from __future__ import annotations

from typing import Final

from toolhive_apply.ownership import MANAGED_BY as MANAGED_BY

LABEL_MANAGED_BY: Final = "toolhive-apply.managed-by"
LABEL_STACK: Final = "toolhive-apply.stack"
LABEL_NAME: Final = "toolhive-apply.name"
LABEL_HASH: Final = "toolhive-apply.config-hash"
LABEL_HASH_VERSION: Final = "toolhive-apply.hash-version"
LABEL_SPEC: Final = "toolhive-apply.spec"
LABEL_GROUP: Final = "toolhive-apply.group"
LABEL_ROLE: Final = "toolhive-apply.role"
ROLE_PROXY: Final = "proxy"
ROLE_EGRESS: Final = "egress"
ROLE_GATE: Final = "gate"
ROLE_ISOLATION: Final = "isolation"
ROLE_REMOTE: Final = "remote"  # the proxy that is all of a remote workload
LABEL_LOCK: Final = "toolhive-apply.lock"
LABEL_BUILD: Final = "toolhive-apply.package-build"
LABEL_PACKAGE: Final = "toolhive-apply.package"
LABEL_RESOLVED: Final = "toolhive-apply.package-resolved"  # the version an unpinned package image installed
LABEL_PACKAGE_FETCH: Final = "toolhive-apply.package-fetch"  # a go:// index_auth fetch container (the ref)
LABEL_ENDPOINT: Final = "toolhive-apply.endpoint"
INPUTS_LABEL: Final = "toolhive-apply.proxy.inputs"
"""Image label holding ``proxy_image_inputs_hash``; an image whose label matches is up to date."""
TH_AUXILIARY: Final = "toolhive-auxiliary-workload"


# ToolHive's standard labels (pkg/labels/labels.go), so `thv list` recognises our containers.
TH_LABEL: Final = "toolhive"
TH_NAME: Final = "toolhive-name"
TH_BASENAME: Final = "toolhive-basename"
TH_TRANSPORT: Final = "toolhive-transport"
TH_PORT: Final = "toolhive-port"
TH_ISOLATION: Final = "toolhive-network-isolation"


def stack_network(stack: str) -> str:
    """The stack's own bridge network: the proxy reaches its server there by container name."""
    return f"toolhive-apply.{stack}"


def proxy_name(workload_name: str) -> str:
    return f"{workload_name}-proxy"


def egress_name(workload_name: str) -> str:
    return f"{workload_name}-egress"


SET_ASIDE_MARK: Final = "-replaced-"


def set_aside_name(proper: str, token: str) -> str:
    """The name a container carries while its replacement starts (a rollback renames it back); any container of
    the stack whose name holds SET_ASIDE_MARK is taken for a leftover of an interrupted replace."""
    return f"{proper}{SET_ASIDE_MARK}{token}"


def gate_name(workload_name: str) -> str:
    return f"{workload_name}-gate"


def gate_volume_name(stack: str, workload_name: str) -> str:
    """The named volume a stdio server served vmcp-only has its docker gate listen in: with no proxy to hold an
    anonymous one, the gate and the group's gateway (read-only) mount it by this name, the same across replaces."""
    return f"toolhive-apply.{stack}.{workload_name}.gate"


def isolation_network(stack: str, workload_name: str) -> str:
    """One internal network per isolated workload, so isolated servers cannot reach each other either."""
    return f"toolhive-apply.{stack}.{workload_name}.internal"
