"""Names and labels of rendered Kubernetes objects: one home for the vocabulary the renderer writes.

A workload name may hold characters Kubernetes refuses (upper case, `_`, `.`), and the operator builds
Service and Deployment names from an MCPServer's name, so every name is folded to a DNS-1123 label.
"""

from __future__ import annotations

import re
from typing import Final

API_VERSION: Final = "toolhive.stacklok.dev/v1beta1"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
MANAGED_BY: Final = "toolhive-apply"
ANNOTATION_DESCRIPTION: Final = "toolhive-apply/description"
ANNOTATION_SOURCE: Final = "toolhive-apply/source"
RENDERED_HEADER: Final = "# Rendered by toolhive-apply render kubernetes: edit the manifest, not this file.\n"
SECRET_DATA_KEY: Final = "value"
"""The key inside each Kubernetes Secret the rendered resources reference (`kubectl create secret generic NAME
--from-literal=value=...`), as our Vault store keeps a secret in the field `value`."""
PERMISSIONS_KEY: Final = "permissions.json"
REGISTRY_DATA_DIR: Final = "/data/registry"
DEFAULT_VAULT_ROLE: Final = "toolhive-mcp-workloads"

_LABEL_VALUE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME: Final = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def dns_label(text: str) -> str:
    """`text` folded to a DNS-1123 label (lower case, `[a-z0-9-]`, at most 63 characters)."""
    folded = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    folded = re.sub(r"-{2,}", "-", folded).strip("-")[:63].rstrip("-")
    return folded or "unnamed"


def secret_name(key: str) -> str:
    """The Kubernetes Secret a manifest secret is expected in (its value under SECRET_DATA_KEY)."""
    return dns_label(key)


def valid_label(key: str, value: str) -> bool:
    """A label Kubernetes accepts: optional DNS-subdomain prefix, a name of at most 63, a value of at most 63."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _PREFIX.match(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name)) and len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def file_name(kind: str, name: str) -> str:
    return f"{kind.lower()}-{name}.yaml"
