"""A workload's audit_config and telemetry_config: merged with the stack default, carried on the spec, handed to
the proxy (THV_PROXY_CONFIG ``audit``/``telemetry``, secrets as env) and read back for export in ToolHive's shape.

One home for the vocabulary: the container directory an audit logFile's host directory is mounted at, the env
variable names secrets reach the proxy under, and which keys go where. The spec holds names of secrets, never
values; a spec without either config has neither key (its hash is as before).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest.collector_ca import bundle_digest, read_collector_ca
from toolhive_apply.manifest.host_paths import resolve_host_path
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import Manifest, Workload
from toolhive_apply.manifest.observability import AUDIT_DIR, audit_of, collector_ca_path, telemetry_of
from toolhive_apply.providers.workload.endpoint import DOCUMENTS_KEY
from toolhive_apply.providers.workload.spec_model import WorkloadSpec, thaw

OTEL_HEADER_ENV: Final = "THV_OTEL_HEADER_{index}"
SCRUB_ENV: Final = "THV_SCRUB_{index}"
OWN_TELEMETRY_KEYS: Final = frozenset({"protocol", "caCertPath"})
"""telemetry_config keys of toolhive-apply's own, not in ToolHive's RunConfig (left out of export --runconfig)."""
CA_DIGEST: Final = "caCertSha256"
"""The spec's digest of the collector CA bundle (hashed: a new bundle replaces the proxy); the text itself goes in
the soft ``endpoint_documents`` (``otlp_ca``), so no container label carries it."""
CA_DOCUMENT: Final = "otlp_ca"


def spec_fields(workload: Workload, manifest: Manifest) -> dict[str, Any]:
    """The spec keys: ``audit`` (logFile made absolute on the host), ``telemetry`` (header secrets by name) and
    ``proxy_secrets`` (what the proxy's env gets from the store)."""
    fields: dict[str, Any] = {}
    audit = audit_of(workload, manifest)
    if audit is not None and audit.get("enabled"):
        audit = dict(audit)
        if audit.get("logFile"):
            audit["logFile"] = resolve_host_path(str(audit["logFile"]), workload.base_dir)
        fields["audit"] = dict(sorted(audit.items()))
    telemetry = telemetry_of(workload, manifest)
    if telemetry is not None:
        headers = telemetry.get("headers") or {}
        plain = {k: v for k, v in headers.items() if isinstance(v, str)}
        secret = {k: v["secret"] for k, v in headers.items() if isinstance(v, dict)}
        rest = {k: v for k, v in telemetry.items() if k != "headers"}
        if "samplingRate" in rest:
            rest["samplingRate"] = _rate_text(rest["samplingRate"])
        ca = _collector_ca(workload, telemetry)
        if ca is not None:
            rest.update({"caCertPath": ca[0], CA_DIGEST: bundle_digest(ca[1])})
            fields[DOCUMENTS_KEY] = {CA_DOCUMENT: ca[1]}
        fields["telemetry"] = dict(sorted({**rest, "headers": plain, "header_secrets": secret}.items()))
    secrets = _proxy_secrets(fields, workload)
    if secrets:
        fields["proxy_secrets"] = secrets
    return fields


def _collector_ca(workload: Workload, telemetry: Mapping[str, Any]) -> tuple[str, str] | None:
    """(absolute path, PEM text) of the collector CA bundle, read through the same check validate made."""
    path = collector_ca_path(workload, telemetry)
    if path is None:
        return None
    text, problem = read_collector_ca(path)
    if text is None:
        field = format_path(("workloads", workload.index, "telemetry_config", "caCertPath"))
        raise ManifestError.single(workload.origin, field, str(problem))
    return str(path), text


def _rate_text(rate: object) -> str:
    """ToolHive's RunConfig writes samplingRate as a decimal string ("0.05"), never in exponent form."""
    if isinstance(rate, str):
        return rate
    return f"{float(rate):.10f}".rstrip("0").rstrip(".") or "0"  # type: ignore[arg-type]


def _proxy_secrets(fields: Mapping[str, Any], workload: Workload) -> list[dict[str, str]]:
    refs = []
    telemetry = fields.get("telemetry") or {}
    for index, (_, name) in enumerate(sorted(telemetry.get("header_secrets", {}).items())):
        refs.append({"name": name, "target": OTEL_HEADER_ENV.format(index=index)})
    audit = fields.get("audit") or {}
    if audit.get("includeRequestData") or audit.get("includeResponseData"):
        # recorded messages may carry the server's own secrets: the proxy scrubs every value it is given
        names = sorted({ref.name for ref in workload.secrets})
        refs += [{"name": n, "target": SCRUB_ENV.format(index=i)} for i, n in enumerate(names)]
    return refs


def proxy_sections(spec: WorkloadSpec) -> dict[str, Any]:
    """THV_PROXY_CONFIG's ``audit`` and ``telemetry`` for this spec (the BRIEF's agreed shape)."""
    sections: dict[str, Any] = {}
    refs = spec.proxy_secrets or ()
    audit = thaw(spec.audit)
    if audit:
        section = {k: v for k, v in audit.items() if k != "logFile"}
        if audit.get("logFile"):
            section["logFile"] = posixpath.join(AUDIT_DIR, posixpath.basename(audit["logFile"]))
        scrub = [r.target for r in refs if r.target.startswith(SCRUB_ENV.split("{")[0])]
        if scrub:
            section["scrub_env"] = scrub
        sections["audit"] = section
    telemetry = thaw(spec.telemetry)
    if telemetry:
        section = {k: v for k, v in telemetry.items() if k not in ("header_secrets", "caCertPath", CA_DIGEST)}
        if telemetry.get(CA_DIGEST):
            section["ca_pem"] = (spec.endpoint_documents or {})[CA_DOCUMENT]
        by_name = sorted(telemetry.get("header_secrets", {}).items())
        section["headers_env"] = {header: OTEL_HEADER_ENV.format(index=i) for i, (header, _) in enumerate(by_name)}
        if telemetry.get("environmentVariables"):
            section["environment_values"] = _environment_values(spec, telemetry["environmentVariables"])
        sections["telemetry"] = section
    return sections


def _environment_values(spec: WorkloadSpec, names: list[str]) -> dict[str, str]:
    """ToolHive reads environmentVariables from the environment of the process that runs the proxy; here that is
    the workload's declared env_vars (what the server runs with), so the values are planned, not whatever shell
    ran apply. Secret targets were refused by the manifest checks, and secret values never reach env_vars."""
    plain = spec.env_vars
    return {name: str(plain[name]) for name in names if name in plain}


def audit_bind(spec: WorkloadSpec) -> str | None:
    """The bind of an audit logFile's host directory into the proxy (read-write), or None."""
    log_file = (spec.audit or {}).get("logFile")
    return f"{posixpath.dirname(log_file)}:{AUDIT_DIR}:rw" if log_file else None


def audit_dir_gid(spec: WorkloadSpec) -> int | None:
    """The group of the audit directory: the proxy (uid 65532) joins it, so a group-writable directory works."""
    bind = audit_bind(spec)
    if bind is None:
        return None
    try:
        return Path(bind.split(":")[0]).stat().st_gid
    except OSError:
        return None


def runconfig_fields(spec: WorkloadSpec) -> dict[str, Any]:
    """``audit_config`` and ``telemetry_config`` as ToolHive's RunConfig writes them. Collector headers that come
    from secrets are left out (the RunConfig has no secret reference for them, and values never leave)."""
    fields: dict[str, Any] = {}
    audit, telemetry_spec = thaw(spec.audit), thaw(spec.telemetry)
    if audit:
        fields["audit_config"] = audit
    if telemetry_spec:
        telemetry = {
            k: v
            for k, v in telemetry_spec.items()
            if k not in ("header_secrets", CA_DIGEST) and k not in OWN_TELEMETRY_KEYS
        }
        if not telemetry.get("headers"):
            telemetry.pop("headers", None)
        fields["telemetry_config"] = telemetry
    return fields


def manifest_fields(spec: WorkloadSpec) -> dict[str, Any]:
    """The workload's audit_config/telemetry_config as a manifest writes them (export --as-manifest)."""
    fields = runconfig_fields(spec)
    telemetry = thaw(spec.telemetry)
    if telemetry:
        secret = {h: {"secret": n} for h, n in telemetry.get("header_secrets", {}).items()}
        headers = {**telemetry.get("headers", {}), **secret}
        own = {k: v for k, v in telemetry.items() if k in OWN_TELEMETRY_KEYS}
        fields["telemetry_config"] = {**fields["telemetry_config"], **own, **({"headers": headers} if headers else {})}
    return fields
