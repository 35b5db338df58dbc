"""`render kubernetes`: a manifest as ToolHive operator resources (v1beta1) and a kustomization.yaml, without Docker.

Pure up to `write_rendering`: the manifest (registry workloads resolved) goes in, documents and warnings come out.
Secrets are references only (a Kubernetes Secret name and key, or Vault Agent Injector annotations naming a Vault
path); no secret store is opened, so no value can reach the output. Every document is checked against the CRD
we ship before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import yaml

from toolhive_apply.fileio import replace_atomically
from toolhive_apply.interop.crd_validate import SchemaProblem, validate_core, validate_document
from toolhive_apply.interop.kubernetes_model import Document, RenderContext, RenderError, Rendering
from toolhive_apply.interop.kubernetes_names import REGISTRY_DATA_DIR, RENDERED_HEADER, dns_label
from toolhive_apply.interop.kubernetes_vmcp import render_vmcp
from toolhive_apply.interop.kubernetes_workloads import render_workload
from toolhive_apply.manifest.model import DEFAULT_GROUP, Manifest, Registry

CONFIGMAP_LIMIT: Final = 1024 * 1024  # the API server refuses a larger ConfigMap
KUSTOMIZATION: Final = "kustomization.yaml"

SectionRenderer = Callable[[RenderContext], None]


def _groups(ctx: RenderContext) -> None:
    declared = {g.name: g for g in ctx.manifest.groups}
    used = {w.group for w in ctx.manifest.workloads}
    for name in sorted(set(declared) | used):
        group = declared.get(name)
        spec = {"description": group.description} if group and group.description else {}
        if name == DEFAULT_GROUP and not spec:
            spec = {"description": "Workloads of the manifest's default group"}
        ctx.add("MCPGroup", dns_label(name), spec)
        if group is not None:
            render_vmcp(group, ctx)


def _registries(ctx: RenderContext) -> None:
    for registry in ctx.manifest.registries:
        _registry(ctx, registry)


def _registry(ctx: RenderContext, registry: Registry) -> None:
    """MCPRegistry (deprecated by ToolHive for the registry-server Helm chart, still served at v1beta1)."""
    resource = f"registry/{registry.name}"
    name = dns_label(registry.name)
    source: dict[str, Any] = {"name": name}
    spec: dict[str, Any] = {}
    if registry.api_url:
        source["api"] = {"endpoint": registry.api_url}
    elif registry.local_path:
        data_name = f"{name}-registry-data"
        text = (registry.base_dir / registry.local_path).read_text(encoding="utf-8")
        if len(text.encode("utf-8")) > CONFIGMAP_LIMIT:
            ctx.warn(resource, "not rendered: the registry file is over a ConfigMap's 1 MiB")
            return
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": ctx.metadata(data_name),
                "data": {"registry.json": text}}  # fmt: skip
        ctx.add_document(Document("ConfigMap", data_name, body))
        source["file"] = {"path": f"{REGISTRY_DATA_DIR}/registry.json"}
        spec["volumes"] = [{"name": "registry-data", "configMap": {"name": data_name}}]
        spec["volumeMounts"] = [{"name": "registry-data", "mountPath": REGISTRY_DATA_DIR, "readOnly": True}]
    else:
        ctx.warn(resource, "not rendered: the registry server syncs from git, api or file sources, not a static URL")
        return
    source["syncPolicy"] = {"interval": f"{registry.cache_ttl}s"}
    config = {"sources": [source], "registries": [{"name": name, "sources": [name]}], "auth": {"mode": "anonymous"}}
    spec = {"configYAML": yaml.safe_dump(config, sort_keys=False), **spec}
    ctx.add("MCPRegistry", name, spec)
    ctx.warn(
        resource,
        "MCPRegistry is deprecated by ToolHive (toolhive-registry-server Helm chart); its configYAML "
        "is rendered with anonymous auth and still needs your database section",
    )


def _workloads(ctx: RenderContext) -> None:
    for workload in ctx.manifest.workloads:
        render_workload(workload, ctx)


def _clients(ctx: RenderContext) -> None:
    for client in ctx.manifest.clients:
        ctx.warn(
            f"client/{client.name}",
            "client config files live on a laptop: not rendered (point the client at "
            "the MCPServer's Service or Ingress)",
        )


SECTIONS: Final[tuple[SectionRenderer, ...]] = (_groups, _registries, _workloads, _clients)
"""One function per manifest section (a group's vmcp, VirtualMCPServer, is rendered with its MCPGroup)."""


def render_manifest(manifest: Manifest, namespace: str | None = None) -> Rendering:
    """Registry workloads must already be resolved (resolve_registries); raises RenderError on a name clash."""
    ctx = RenderContext(manifest, namespace)
    for section in SECTIONS:
        section(ctx)
    rendering = ctx.done()
    problems = check_rendering(rendering)
    if problems:
        msg = "a rendered document does not validate against its CRD (a bug in the renderer)"
        raise RenderError(msg + ": " + "; ".join(str(p) for p in problems[:5]))
    return rendering


def check_rendering(rendering: Rendering) -> list[SchemaProblem]:
    problems: list[SchemaProblem] = []
    for document in rendering.documents:
        if document.kind == "ConfigMap":
            problems.extend(validate_core(document.body, document.filename))
        else:
            problems.extend(validate_document(document.body, document.filename))
    return problems


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (configYAML, Vault templates) as literal blocks, so a diff in review reads well."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def document_text(document: Document) -> str:
    return RENDERED_HEADER + yaml.dump(json.loads(json.dumps(document.body)), Dumper=_Dumper, sort_keys=False)


def kustomization_text(rendering: Rendering) -> str:
    body = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [d.filename for d in rendering.documents]}  # fmt: skip
    return RENDERED_HEADER + yaml.dump(body, Dumper=_Dumper, sort_keys=False)


def write_rendering(rendering: Rendering, out_dir: Path) -> list[Path]:
    """Write every document and the kustomization; files an earlier render wrote and this one did not are removed
    (only files that start with our header), so a workload removed from the manifest leaves the directory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {d.filename: document_text(d) for d in rendering.documents}
    texts[KUSTOMIZATION] = kustomization_text(rendering)
    for old in sorted(out_dir.glob("*.yaml")):
        if old.name not in texts and old.is_file() and not old.is_symlink() and _ours(old):
            old.unlink()
    written = []
    for filename, text in texts.items():
        path = out_dir / filename
        if path.is_symlink():
            raise RenderError(f"{path} is a symbolic link: refusing to write through it")
        replace_atomically(path, text.encode("utf-8"), mode=0o644)  # manifests for a repository: no secrets
        written.append(path)
    return written


def _ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline() == RENDERED_HEADER
    except (OSError, UnicodeDecodeError):
        return False


__all__ = ["RenderError", "Rendering", "check_rendering", "render_manifest", "write_rendering"]
