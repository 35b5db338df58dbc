"""Endpoint security and observability of a workload as the operator takes them (v1beta1), for MCPServer and
MCPRemoteProxy alike (both CRDs have the same fields):

- `oidc` (or settings.auth's) -> an `MCPOIDCConfig` of type inline, referenced by `oidcConfigRef` with the
  per-server audience and scopes (the CRD puts those on the reference, not on the shared config);
- `authz_config` -> the inline `authzConfig` (Cedar policies and entities), as `thv export --format k8s` writes it;
- `audit_config` -> `audit.enabled` (the only audit field the CRDs have);
- `telemetry_config` -> an `MCPTelemetryConfig` referenced by `telemetryConfigRef` with the server's serviceName.

A stack default (settings.auth, settings.telemetry_config unchanged by the workload) is one shared resource named
after the stack. Secrets are Kubernetes Secret references only; the renderer never reads a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from toolhive_apply.interop.kubernetes_model import FieldRenderer, RenderContext, RenderError, WorkloadOut
from toolhive_apply.interop.kubernetes_names import SECRET_DATA_KEY, dns_label, secret_name
from toolhive_apply.manifest.auth_checks import effective_oidc
from toolhive_apply.manifest.auth_files import is_url, loopback_host, read_authz
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.observability import audit_of, telemetry_of

AUDIT_ONLY_FIELD: Final = "enabled"
"""`spec.audit` of MCPServer and MCPRemoteProxy has this one property."""
EMPTY_ENTITIES: Final = "[]"
"""The CRD's default of `authzConfig.inline.entitiesJson`."""


def secret_key_ref(out: WorkloadOut, ctx: RenderContext, key: str, what: str) -> dict[str, str]:
    """`{name, key}` of the Kubernetes Secret holding manifest secret `key`; noted as a need. With the Vault
    provider, a warning: these CRDs read a Kubernetes Secret, not the injector's files."""
    name = secret_name(key)
    ctx.need(key, f"Secret {name} key {SECRET_DATA_KEY}")
    if ctx.manifest.settings.secret_provider == "vault":
        ctx.warn(
            out.resource,
            f"{what}: the operator reads it from a Kubernetes Secret ({name}), not from Vault: "
            "sync it there (e.g. Vault Secrets Operator)",
        )
    return {"name": name, "key": SECRET_DATA_KEY}


# --- oidc -------------------------------------------------------------------------------------------------------
def _oidc(out: WorkloadOut, ctx: RenderContext) -> None:
    effective = effective_oidc(out.workload, ctx.manifest)
    if effective is None:
        return
    oidc = effective.config
    where = format_path(effective.path)
    if oidc.audience is None:  # validate refuses it too; the CRD requires oidcConfigRef.audience
        msg = f"{out.resource}: {where} needs audience (oidcConfigRef.audience is required, unique per server)"
        raise RenderError(msg, hint="set the audience the issuer puts in this server's tokens")
    inline: dict[str, Any] = {"issuer": oidc.issuer}
    urls = [oidc.issuer]
    if oidc.jwks_url is not None and is_url(oidc.jwks_url):
        inline["jwksUrl"] = oidc.jwks_url
        urls.append(oidc.jwks_url)
    elif oidc.jwks_url is not None:
        ctx.warn(
            out.resource,
            f"{where}.jwks_url is a local JWKS file: MCPOIDCConfig fetches keys from a URL only, so it is "
            "rendered without jwksUrl (the issuer's discovery document names the keys); publish the JWKS "
            "at a URL the cluster reaches and set it there",
        )
    if oidc.introspection_url is not None:
        inline["introspectionUrl"] = oidc.introspection_url
        urls.append(oidc.introspection_url)
    if oidc.client_id is not None:
        inline["clientId"] = oidc.client_id
    if oidc.client_secret is not None:
        inline["clientSecretRef"] = secret_key_ref(out, ctx, oidc.client_secret, f"{where}.client_secret")
    if any(urlsplit(u).scheme == "http" for u in urls):
        inline["insecureAllowHTTP"] = True
    loopback = [u for u in urls if loopback_host(urlsplit(u).hostname)]
    if loopback:
        ctx.warn(
            out.resource,
            f"{where}: {', '.join(loopback)} names a loopback address, which in the cluster is the "
            "proxy's own pod: point it at the identity provider's cluster address",
        )
    shared = effective.path[0] == "settings"
    name = f"{dns_label(ctx.manifest.settings.stack)}-oidc" if shared else f"{out.name}-oidc"
    ctx.add_shared("MCPOIDCConfig", name, {"type": "inline", "inline": inline})
    ref: dict[str, Any] = {"name": name, "audience": oidc.audience}
    if oidc.scopes:
        ref["scopes"] = list(oidc.scopes)
    out.spec["oidcConfigRef"] = ref


# --- authz_config -----------------------------------------------------------------------------------------------
def _authz(out: WorkloadOut, ctx: RenderContext) -> None:
    w = out.workload
    if w.authz_config is None:
        return
    field = format_path(("workloads", w.index, "authz_config"))
    document, issues = read_authz(w.authz_config, w.base_dir, w.origin, field)
    if document is None:
        first = issues[0] if issues else f"{field}: cannot be read"
        raise RenderError(f"{out.resource}: {first}", hint="toolhive-apply validate reports every problem")
    inline: dict[str, Any] = {"policies": list(document.policies)}
    if document.entities_json.strip() != EMPTY_ENTITIES:
        inline["entitiesJson"] = document.entities_json
    out.spec["authzConfig"] = {"type": "inline", "inline": inline}


# --- audit_config -----------------------------------------------------------------------------------------------
def _audit(out: WorkloadOut, ctx: RenderContext) -> None:
    audit = audit_of(out.workload, ctx.manifest)
    if audit is None:
        return
    enabled = bool(audit.get(AUDIT_ONLY_FIELD, False))
    out.spec["audit"] = {AUDIT_ONLY_FIELD: enabled}
    rest = sorted(set(audit) - {AUDIT_ONLY_FIELD})
    if enabled and rest:
        ctx.warn(
            out.resource,
            f"audit_config {', '.join(rest)}: the operator's audit has only `enabled` (events go to the "
            "proxy runner's log with ToolHive's defaults); these keys are not rendered",
        )


# --- telemetry_config -------------------------------------------------------------------------------------------
def sampling_rate(value: object) -> str:
    """ToolHive's string form of a 0..1 rate (the CRD's pattern has no exponent: 1e-05 is written 0.00001)."""
    if isinstance(value, str):
        return value
    text = f"{float(str(value)):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _signals(telemetry: Mapping[str, Any]) -> dict[str, Any]:
    """openTelemetry's endpoint, tracing, metrics and resource attributes."""
    otel: dict[str, Any] = {}
    if telemetry.get("endpoint"):
        otel["enabled"] = True
        otel["endpoint"] = str(telemetry["endpoint"])
    if "insecure" in telemetry:
        otel["insecure"] = bool(telemetry["insecure"])
    tracing: dict[str, Any] = {}
    if "tracingEnabled" in telemetry:
        tracing["enabled"] = bool(telemetry["tracingEnabled"])
    if "samplingRate" in telemetry:
        tracing["samplingRate"] = sampling_rate(telemetry["samplingRate"])
    if tracing:
        otel["tracing"] = tracing
    if "metricsEnabled" in telemetry:
        otel["metrics"] = {"enabled": bool(telemetry["metricsEnabled"])}
    attributes = {str(k): str(v) for k, v in (telemetry.get("customAttributes") or {}).items()}
    if telemetry.get("serviceVersion"):  # no field of its own: the OpenTelemetry resource attribute it sets
        attributes["service.version"] = str(telemetry["serviceVersion"])
    if attributes:
        otel["resourceAttributes"] = attributes
    return otel


def _headers(telemetry: Mapping[str, Any], out: WorkloadOut, ctx: RenderContext) -> dict[str, Any]:
    """Plain headers by value, secret ones as sensitiveHeaders (a Secret reference each)."""
    plain: dict[str, str] = {}
    sensitive = []
    for header, value in sorted((telemetry.get("headers") or {}).items()):
        if isinstance(value, Mapping):
            ref = secret_key_ref(out, ctx, str(value["secret"]), f"telemetry_config.headers.{header}")
            sensitive.append({"name": header, "secretKeyRef": ref})
        else:
            plain[header] = str(value)
    found: dict[str, Any] = {}
    if plain:
        found["headers"] = plain
    if sensitive:
        found["sensitiveHeaders"] = sensitive
    return found


def telemetry_spec(telemetry: Mapping[str, Any], out: WorkloadOut, ctx: RenderContext) -> dict[str, Any]:
    """MCPTelemetryConfig's spec from ToolHive's telemetry_config keys (the manifest's)."""
    otel = {**_signals(telemetry), **_headers(telemetry, out, ctx)}
    spec: dict[str, Any] = {}
    if otel:
        spec["openTelemetry"] = otel
    if "enablePrometheusMetricsPath" in telemetry:
        spec["prometheus"] = {"enabled": bool(telemetry["enablePrometheusMetricsPath"])}
    return spec


def _telemetry(out: WorkloadOut, ctx: RenderContext) -> None:
    telemetry = telemetry_of(out.workload, ctx.manifest)
    if telemetry is None:
        return
    shared = out.workload.telemetry_config is None
    name = f"{dns_label(ctx.manifest.settings.stack)}-telemetry" if shared else f"{out.name}-telemetry"
    ctx.add_shared("MCPTelemetryConfig", name, telemetry_spec(telemetry, out, ctx))
    # serviceName is per server in the CRD; ours defaults to the workload's name (the operator's to thv-NAME)
    service = str(telemetry.get("serviceName") or out.workload.name)
    out.spec["telemetryConfigRef"] = {"name": name, "serviceName": service}


AUTH_FIELDS: Final[tuple[FieldRenderer, ...]] = (_oidc, _authz, _audit, _telemetry)
