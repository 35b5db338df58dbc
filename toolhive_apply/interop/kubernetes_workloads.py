"""A workload as ToolHive operator resources: MCPServer (image) or MCPRemoteProxy (url), plus the MCPToolConfig
and permission-profile ConfigMap it references.

Each manifest field is carried by one small function of WORKLOAD_FIELDS (or REMOTE_FIELDS), each checked against
the CRD's v1beta1 schema. A field with no operator equivalent is a warning naming the resource, never dropped
silently. Endpoint security and observability (oidc, authz_config, audit_config, telemetry_config) are the
functions of kubernetes_auth.AUTH_FIELDS, shared by both kinds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from toolhive_apply.interop.kubernetes_auth import AUTH_FIELDS
from toolhive_apply.interop.kubernetes_model import Document, FieldRenderer, RenderContext, WorkloadOut
from toolhive_apply.interop.kubernetes_names import (
    ANNOTATION_DESCRIPTION,
    ANNOTATION_SOURCE,
    DEFAULT_VAULT_ROLE,
    PERMISSIONS_KEY,
    SECRET_DATA_KEY,
    dns_label,
    secret_name,
    valid_label,
)
from toolhive_apply.manifest.model import DEFAULT_TARGET_PORT, SecretRef, Workload
from toolhive_apply.manifest.vmcp_checks import vmcp_only

HTTP_TRANSPORTS: Final = ("sse", "streamable-http")
BUILTIN_PROFILES: Final = {"none": "none", "stdio": "none", "network": "network"}
PROTOCOL_SCHEMES: Final = ("uvx://", "npx://", "go://")


def _transport(w: Workload) -> str:
    return w.transport or ("streamable-http" if w.url else "stdio")


# --- fields of both kinds --------------------------------------------------------------------------------------
def _ports(out: WorkloadOut, ctx: RenderContext) -> None:
    w = out.workload
    if w.proxy_port is not None:  # as `thv export --format k8s` does: the proxy's port becomes proxyPort
        out.spec["proxyPort"] = w.proxy_port
    if w.host not in (None, ctx.manifest.settings.default_host):
        ctx.warn(out.resource, f"host {w.host!r} is a laptop listen address: the operator serves through a Service")


def _tools(out: WorkloadOut, ctx: RenderContext) -> None:
    w = out.workload
    if not w.tools and not w.tools_override:
        return
    spec: dict[str, Any] = {}
    if w.tools:
        spec["toolsFilter"] = list(dict.fromkeys(w.tools))  # x-kubernetes-list-type: set
    if w.tools_override:
        spec["toolsOverride"] = {actual: dict(o) for actual, o in w.tools_override.items()}
    ctx.add("MCPToolConfig", f"{out.name}-tools", spec)
    out.spec["toolConfigRef"] = {"name": f"{out.name}-tools"}


def _group(out: WorkloadOut, ctx: RenderContext) -> None:
    out.spec["groupRef"] = {"name": dns_label(out.workload.group)}


def _trust_proxy_headers(out: WorkloadOut, ctx: RenderContext) -> None:
    if out.workload.trust_proxy_headers:
        out.spec["trustProxyHeaders"] = True


def _metadata(out: WorkloadOut, ctx: RenderContext) -> None:
    w = out.workload
    if w.description:
        out.annotations[ANNOTATION_DESCRIPTION] = w.description
    if w.registry_server:
        out.annotations[ANNOTATION_SOURCE] = f"registry {w.registry_server}"
    for key, value in w.labels.items():
        if valid_label(key, value):
            out.labels[key] = value
        else:
            ctx.warn(out.resource, f"label {key}={value!r} is not a valid Kubernetes label and is not carried")


def _local_only(out: WorkloadOut, ctx: RenderContext) -> None:
    """Settings that only mean something to the Docker engine or to our proxy on one host."""
    w = out.workload
    notes = {
        "session_mode": w.session_mode == "per-client" and "session_mode per-client (one server process per client)",
        "session_ttl": w.session_ttl is not None and "session_ttl (the operator's proxy keeps its own default)",
        "ready_timeout": w.ready_timeout not in (None, ctx.manifest.settings.ready_timeout)
        and "ready_timeout (the Deployment's probes decide readiness)",
        "prune": not w.prune and "prune: false (use your GitOps tool's prune setting, e.g. Argo CD Prune=false)",
        "allow_docker_gateway": w.allow_docker_gateway and "allow_docker_gateway (there is no Docker gateway)",
        # the proxy runner's Origin check and protocol-version check have no MCPServer/MCPRemoteProxy field
        "allowed_origins": w.allowed_origins is not None
        and "allowed_origins (the proxy runner has no Origin allow-list field; filter at the Ingress)",
        "strict_protocol_validation": w.strict_protocol_validation is not None
        and "strict_protocol_validation (no MCPServer field)",
        "runtime_config": w.runtime_config is not None
        and "runtime_config (the operator runs a built image; build it with these settings and push it)",
        "serve": vmcp_only(ctx.manifest, w)
        and "serve: vmcp-only (every MCPServer keeps its own Service; restrict it with a NetworkPolicy)",
    }
    for text in notes.values():
        if text:
            ctx.warn(out.resource, f"{text} has no operator equivalent and is not rendered")


# --- MCPServer only ---------------------------------------------------------------------------------------------
def _image(out: WorkloadOut, ctx: RenderContext) -> None:
    w = out.workload
    out.spec["image"] = w.image
    if str(w.image).startswith(PROTOCOL_SCHEMES):
        ctx.warn(out.resource, f"{w.image} is built by thv on a laptop: build and push an image, then set it here")


def _transport_fields(out: WorkloadOut, ctx: RenderContext) -> None:
    w = out.workload
    transport = _transport(w)
    out.spec["transport"] = transport
    if transport == "stdio":
        out.spec["proxyMode"] = w.proxy_mode or "streamable-http"
    else:
        out.spec["mcpPort"] = w.target_port or DEFAULT_TARGET_PORT


def _args_env(out: WorkloadOut, ctx: RenderContext) -> None:
    w = out.workload
    if w.cmd_arguments:
        out.spec["args"] = list(w.cmd_arguments)
    if w.env_vars:  # plain values only: the loader refuses a declared secret's value in a plain field
        out.spec["env"] = [{"name": k, "value": v} for k, v in sorted(w.env_vars.items())]


def _secrets(out: WorkloadOut, ctx: RenderContext) -> None:
    w = out.workload
    env_refs = [s for s in w.secrets if s.delivery == "env"]
    for ref in w.secrets:
        if ref.delivery == "file":
            ctx.warn(
                out.resource,
                f"secret {ref.name} as a file ({ref.target}): MCPServer delivers secrets as "
                "environment variables only; mount it through podTemplateSpec yourself",
            )
    if not env_refs:
        return
    if ctx.manifest.settings.secret_provider == "vault":
        _vault_annotations(out, ctx, env_refs)
        return
    out.spec["secrets"] = [
        {"name": secret_name(s.name), "key": SECRET_DATA_KEY, "targetEnvName": s.target} for s in env_refs
    ]
    for ref in env_refs:
        ctx.need(ref.name, f"Secret {secret_name(ref.name)} key {SECRET_DATA_KEY}")


def vault_path(settings_vault: Mapping[str, Any], key: str) -> str:
    """The KV v2 read path of a secret, as our Vault store writes it (`<mount>/data/<path_prefix>/<key>`)."""
    mount = str(settings_vault.get("mount") or "secret").strip("/")
    prefix = str(settings_vault.get("path_prefix") or "toolhive").strip("/")
    return f"{mount}/data/{prefix}/{key}" if prefix else f"{mount}/data/{key}"


def _vault_annotations(out: WorkloadOut, ctx: RenderContext, refs: list[SecretRef]) -> None:
    """The Vault Agent Injector annotations of ToolHive's Vault tutorial, on the proxy runner's pod: the agent
    writes `/vault/secrets/<name>` as NAME=value lines and the proxy runner reads them as environment variables."""
    vault = ctx.manifest.settings.vault
    auth = vault.get("auth") or {}
    role = auth.get("role") if auth.get("method") == "kubernetes" else None
    if not role:
        role = DEFAULT_VAULT_ROLE
        ctx.warn(
            out.resource,
            f"Vault Kubernetes auth role {role!r} is assumed (settings.secrets.vault.auth "
            "names no kubernetes role): create it, bound to the proxy runner's service account",
        )
    notes = out.proxy_pod_annotations
    notes["vault.hashicorp.com/agent-inject"] = "true"
    notes["vault.hashicorp.com/role"] = str(role)
    if vault.get("namespace"):
        notes["vault.hashicorp.com/namespace"] = str(vault["namespace"])
    for index, ref in enumerate(refs):
        path = vault_path(vault, ref.name)
        # the file under /vault/secrets; an annotation key's name part is at most 63 characters
        file = f"{dns_label(ref.name)[:36].rstrip('-')}-{index}"
        notes[f"vault.hashicorp.com/agent-inject-secret-{file}"] = path
        notes[f"vault.hashicorp.com/agent-inject-template-{file}"] = (
            f'{{{{- with secret "{path}" -}}}}\n{ref.target}={{{{ .Data.data.{SECRET_DATA_KEY} }}}}\n{{{{- end -}}}}\n'
        )
        ctx.need(ref.name, f"Vault {path} field {SECRET_DATA_KEY}")


def builtin_of(profile: Mapping[str, Any]) -> str | None:
    """The built-in an inline profile spells out (as ToolHive serialises `none` and `network`), else None."""
    if set(profile) - {"name", "network"}:
        return None
    network = dict(profile.get("network") or {})
    if network.get("inbound") in ({}, None):
        network.pop("inbound", None)
    if set(network) - {"outbound"}:
        return None
    outbound = network.get("outbound") or {}
    if outbound == {} or outbound == {"insecure_allow_all": False}:
        return "none"
    return "network" if outbound == {"insecure_allow_all": True} else None


def _permission_profile(out: WorkloadOut, ctx: RenderContext) -> None:
    w = out.workload
    profile = w.permission_profile
    if isinstance(profile, Mapping) and builtin_of(profile):
        profile = builtin_of(profile)
    if profile is None or isinstance(profile, str):
        out.spec["permissionProfile"] = {
            "type": "builtin",
            "name": BUILTIN_PROFILES.get(profile or "network", "network"),
        }
        _isolation(
            out, ctx, {} if profile in ("none", "stdio") else {"network": {"outbound": {"insecure_allow_all": True}}}
        )
        return
    name = f"{out.name}-permissions"
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(name),
        "data": {PERMISSIONS_KEY: json.dumps(dict(profile), indent=2, sort_keys=True) + "\n"},
    }
    ctx.add_document(Document("ConfigMap", name, body))
    out.spec["permissionProfile"] = {"type": "configmap", "name": name, "key": PERMISSIONS_KEY}
    if profile.get("read") or profile.get("write"):
        ctx.warn(out.resource, "the profile's read/write host mounts name paths of this machine, not of a node")
    if profile.get("privileged"):
        ctx.warn(out.resource, "privileged: the operator does not run privileged MCP containers from a profile")
    _isolation(out, ctx, profile)


def _isolation(out: WorkloadOut, ctx: RenderContext, profile: Mapping[str, Any]) -> None:
    outbound = (profile.get("network") or {}).get("outbound") or {}
    limited = not outbound.get("insecure_allow_all")
    if out.workload.network_isolation and limited:
        hosts = ", ".join(outbound.get("allow_host") or []) or "nothing"
        ctx.warn(
            out.resource,
            f"network_isolation with egress allowed to {hosts}: the operator runs no egress "
            "allow-list proxy; enforce it with a NetworkPolicy (and an egress gateway for host names)",
        )
    elif out.workload.network_isolation:
        ctx.warn(out.resource, "network_isolation has no operator equivalent (use a NetworkPolicy)")


def _volumes(out: WorkloadOut, ctx: RenderContext) -> None:
    volumes = []
    for index, text in enumerate(out.workload.volumes):
        parts = text.split(":")
        host, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
        # relative to the manifest's directory, as plan/apply resolve it (export writes it resolved)
        host = host if host.startswith("/") else str((out.workload.base_dir / host).resolve())
        volume: dict[str, Any] = {"name": f"volume-{index}", "hostPath": host, "mountPath": target}
        if len(parts) > 2 and "ro" in parts[2].split(","):
            volume["readOnly"] = True
        volumes.append(volume)
        ctx.warn(
            out.resource,
            f"volume {text!r} becomes a hostPath volume: {host} must exist on the node "
            "(or mount a PersistentVolume through podTemplateSpec instead)",
        )
    if volumes:
        out.spec["volumes"] = volumes
    if out.workload.allow_privileged:
        ctx.warn(out.resource, "allow_privileged has no operator equivalent")


def _proxy_pod_annotations(out: WorkloadOut, ctx: RenderContext) -> None:
    """Last: annotations gathered by earlier fields go on the proxy runner's pod template."""
    if out.proxy_pod_annotations:
        overrides = out.spec.setdefault("resourceOverrides", {}).setdefault("proxyDeployment", {})
        overrides["podTemplateMetadataOverrides"] = {"annotations": dict(out.proxy_pod_annotations)}


# --- MCPRemoteProxy only ----------------------------------------------------------------------------------------
def _remote(out: WorkloadOut, ctx: RenderContext) -> None:
    w = out.workload
    out.spec["remoteUrl"] = w.url
    out.spec["transport"] = _transport(w) if _transport(w) in HTTP_TRANSPORTS else "streamable-http"


def _headers(out: WorkloadOut, ctx: RenderContext) -> None:
    plain: dict[str, str] = {}
    from_secret = []
    for header in out.workload.headers:
        if header.get("secret"):
            name = secret_name(header["secret"])
            ref = {"name": name, "key": SECRET_DATA_KEY}
            from_secret.append({"headerName": header["name"], "valueSecretRef": ref})
            ctx.need(header["secret"], f"Secret {name} key {SECRET_DATA_KEY}")
            if ctx.manifest.settings.secret_provider == "vault":
                ctx.warn(
                    out.resource,
                    f"header {header['name']}: MCPRemoteProxy reads header values from a "
                    f"Kubernetes Secret ({name}), not from Vault: sync it there (e.g. Vault Secrets Operator)",
                )
        else:
            plain[header["name"]] = header.get("value", "")
    forward: dict[str, Any] = {}
    if plain:
        forward["addPlaintextHeaders"] = plain
    if from_secret:
        forward["addHeadersFromSecret"] = from_secret
    if forward:
        out.spec["headerForward"] = forward
    oauth = out.workload.oauth_config or {}
    bearer = oauth.get("bearer_token")
    if bearer:  # a token issued out of band: MCPExternalAuthConfig of type bearerToken, from a Secret
        name = secret_name(bearer["name"])
        auth = {"type": "bearerToken", "bearerToken": {"tokenSecretRef": {"name": name, "key": SECRET_DATA_KEY}}}
        ctx.add("MCPExternalAuthConfig", f"{out.name}-bearer", auth)
        out.spec["externalAuthConfigRef"] = {"name": f"{out.name}-bearer"}
        ctx.need(bearer["name"], f"Secret {name} key {SECRET_DATA_KEY}")
        if ctx.manifest.settings.secret_provider == "vault":
            ctx.warn(
                out.resource,
                f"oauth_config.bearer_token: MCPExternalAuthConfig reads the token from a "
                f"Kubernetes Secret ({name}), not from Vault: sync it there (e.g. Vault Secrets Operator)",
            )
    if set(oauth) - {"bearer_token"}:
        ctx.warn(
            out.resource,
            "oauth_config (browser OAuth) is not rendered: the operator authenticates to "
            "remote servers through MCPExternalAuthConfig",
        )


COMMON_FIELDS: Final[tuple[FieldRenderer, ...]] = (
    _ports, _tools, _group, _trust_proxy_headers, _metadata, _local_only, *AUTH_FIELDS,
)  # fmt: skip
WORKLOAD_FIELDS: Final[tuple[FieldRenderer, ...]] = (
    _image, _transport_fields, _args_env, _secrets, _permission_profile, _volumes, *COMMON_FIELDS,
    _proxy_pod_annotations,
)  # fmt: skip
REMOTE_FIELDS: Final[tuple[FieldRenderer, ...]] = (_remote, _headers, *COMMON_FIELDS)


def render_workload(workload: Workload, ctx: RenderContext) -> None:
    kind = "MCPRemoteProxy" if workload.url else "MCPServer"
    name = dns_label(workload.name)
    out = WorkloadOut(workload, name, f"workload/{workload.name}")
    if name != workload.name:
        ctx.warn(out.resource, f"named {name!r} in Kubernetes (names there are DNS-1123 labels)")
    if not workload.url and not workload.image:
        ctx.warn(out.resource, f"not rendered: registry {workload.registry!r} could not be read to find its image")
        return
    for render in REMOTE_FIELDS if workload.url else WORKLOAD_FIELDS:
        render(out, ctx)
    ctx.add(kind, name, out.spec, labels=out.labels, annotations=out.annotations)
