"""What a Kubernetes rendering is made of: documents, warnings for what has no operator equivalent, and the
Kubernetes Secrets the documents reference (names and keys only: the renderer never reads a secret's value)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from toolhive_apply.errors import ToolhiveApplyError
from toolhive_apply.interop.kubernetes_names import (
    API_VERSION,
    LABEL_MANAGED_BY,
    LABEL_PART_OF,
    MANAGED_BY,
    dns_label,
    file_name,
)
from toolhive_apply.manifest.model import Manifest, Workload


@dataclass(frozen=True, slots=True)
class Document:
    """One Kubernetes object, as it is written to its own file."""

    kind: str
    name: str
    body: Mapping[str, Any]

    @property
    def filename(self) -> str:
        return file_name(self.kind, self.name)


@dataclass(frozen=True, slots=True)
class RenderWarning:
    """Something of the manifest the operator cannot take (or takes differently), per resource."""

    resource: str
    message: str

    def __str__(self) -> str:
        return f"Warning: {self.resource}: {self.message}"


@dataclass(frozen=True, slots=True)
class SecretNeed:
    """A Kubernetes Secret (or Vault path) that must exist before the rendered resources can start."""

    secret: str
    where: str
    """`Secret NAME key KEY` or `Vault PATH field FIELD`."""


@dataclass(frozen=True, slots=True)
class Rendering:
    documents: tuple[Document, ...]
    warnings: tuple[RenderWarning, ...]
    needs: tuple[SecretNeed, ...]


class RenderError(ToolhiveApplyError):
    """The manifest cannot be rendered at all (two workloads fold to one Kubernetes name)."""


@dataclass
class RenderContext:
    """The manifest being rendered and what the renderers have produced so far (mutable while rendering only)."""

    manifest: Manifest
    namespace: str | None
    documents: list[Document] = field(default_factory=list)
    warnings: list[RenderWarning] = field(default_factory=list)
    needs: dict[str, SecretNeed] = field(default_factory=dict)

    def warn(self, resource: str, message: str) -> None:
        self.warnings.append(RenderWarning(resource, message))

    def need(self, secret: str, where: str) -> None:
        self.needs.setdefault(f"{secret}\0{where}", SecretNeed(secret, where))

    def metadata(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if self.namespace:
            meta["namespace"] = self.namespace
        meta["labels"] = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: dns_label(self.manifest.settings.stack)}
        meta["labels"].update(labels or {})
        return meta

    def add(self, kind: str, name: str, spec: Mapping[str, Any], **extra: Any) -> None:
        """A toolhive.stacklok.dev resource; `extra` carries metadata additions (labels, annotations)."""
        metadata = self.metadata(name, extra.get("labels"))
        if extra.get("annotations"):
            metadata["annotations"] = dict(extra["annotations"])
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": dict(spec)}
        self.add_document(Document(kind, name, body))

    def add_shared(self, kind: str, name: str, spec: Mapping[str, Any]) -> None:
        """A config resource several workloads reference (the stack's OIDC or telemetry default): added once; a
        different resource under the same name is the usual clash error."""
        metadata = self.metadata(name)
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": dict(spec)}
        if any(d.kind == kind and d.name == name and d.body == body for d in self.documents):
            return
        self.add_document(Document(kind, name, body))

    def add_document(self, document: Document) -> None:
        clash = next((d for d in self.documents if d.filename == document.filename), None)
        if clash is not None:
            msg = f"two {document.kind} resources would both be named {document.name!r}"
            raise RenderError(msg, hint="rename one of them in the manifest (Kubernetes names are lower case)")
        self.documents.append(document)

    def done(self) -> Rendering:
        ordered = sorted(self.documents, key=lambda d: d.filename)
        return Rendering(tuple(ordered), tuple(self.warnings), tuple(self.needs.values()))


@dataclass
class WorkloadOut:
    """The resource being built for one workload (mutable while its field functions run)."""

    workload: Workload
    name: str
    resource: str
    spec: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    proxy_pod_annotations: dict[str, str] = field(default_factory=dict)


FieldRenderer = Callable[[WorkloadOut, RenderContext], None]
