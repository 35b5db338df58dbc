"""A workload's endpoint security as spec, as THV_PROXY_CONFIG keys, and as ToolHive's RunConfig fields.

One home for the vocabulary: the spec's `endpoint` block (hashed, shown attribute by attribute in plans: issuer,
audience, the content hash and key ids of a JWKS file, the policies and the content hash of an authz file), the
proxy's `auth` / `strict_protocol_validation` / `allowed_origins` keys (BRIEF's agreed interface) and the RunConfig's
`oidc_config` / `authz_config` / `allowed_origins` / `strict_protocol_validation`. The JWKS document itself rides in
the soft `endpoint_documents` field: its digest and key ids are what a plan shows, the document is what the proxy gets.
The client secret is a secret name here and an environment variable name in the proxy's config, never a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from toolhive_apply.engine.resource import Spec, canonical_json
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest.auth_checks import effective_oidc, explicitly_anonymous
from toolhive_apply.manifest.auth_files import document_digest, is_url, read_authz, read_jwks
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import Manifest, Workload
from toolhive_apply.providers.docker.labels import LABEL_ENDPOINT
from toolhive_apply.providers.fields import WORKLOAD_FIELDS
from toolhive_apply.providers.workload.spec_model import SecretRef, WorkloadSpec, thaw

ENDPOINT_KEY: Final = "endpoint"
DOCUMENTS_KEY: Final = "endpoint_documents"
CLIENT_SECRET_ENV: Final = "THV_OIDC_CLIENT_SECRET"
"""The proxy's environment variable holding the introspection client secret (filled from the secret store)."""


def endpoint_spec(workload: Workload, manifest: Manifest) -> dict[str, Any]:
    """`{"endpoint": ..., "endpoint_documents": ...}` to merge into the workload's spec; empty when the workload
    says nothing about its endpoint (so specs and hashes of existing workloads stay as they were)."""
    endpoint: dict[str, Any] = {}
    documents: dict[str, Any] = {}
    effective = effective_oidc(workload, manifest)
    if effective is not None:
        oidc = effective.config
        block: dict[str, Any] = {
            "issuer": oidc.issuer,
            "audience": oidc.audience,
            "jwks_url": oidc.jwks_url if oidc.jwks_url and is_url(oidc.jwks_url) else None,
            "introspection_url": oidc.introspection_url,
            "client_id": oidc.client_id,
            "client_secret": oidc.client_secret,
            "scopes": list(oidc.scopes),
        }
        if oidc.jwks_url and not is_url(oidc.jwks_url):
            jwks, problem = read_jwks(effective.base_dir / oidc.jwks_url)
            if jwks is None:
                raise ManifestError.single(workload.origin, format_path((*effective.path, "jwks_url")), str(problem))
            block["jwks_file"] = oidc.jwks_url
            block["jwks_sha256"] = document_digest(jwks)
            block["jwks_kids"] = sorted(str(k.get("kid", "")) for k in jwks["keys"])
            documents["jwks"] = jwks
        endpoint["auth"] = "oidc"
        endpoint["oidc"] = block
    elif explicitly_anonymous(workload, manifest):
        endpoint["auth"] = "anonymous"
    if workload.authz_config is not None:
        field = format_path(("workloads", workload.index, "authz_config"))
        doc, issues = read_authz(workload.authz_config, workload.base_dir, workload.origin, field)
        if doc is None:
            raise ManifestError(issues)
        documents["authz_source"] = doc.source  # where it was read: shown in plan reasons, not part of the hash
        endpoint["authz"] = {
            "sha256": document_digest(doc.as_config()),
            "policies": list(doc.policies),
            "entities_json": doc.entities_json,
        }
    if workload.allowed_origins is not None:
        endpoint["allowed_origins"] = [o.rstrip("/") for o in workload.allowed_origins]
    if workload.strict_protocol_validation is not None:
        endpoint["strict_protocol_validation"] = workload.strict_protocol_validation
    result: dict[str, Any] = {}
    if endpoint:
        result[ENDPOINT_KEY] = endpoint
    if documents:
        result[DOCUMENTS_KEY] = documents
    return result


def proxy_secret_refs(spec: WorkloadSpec) -> list[SecretRef]:
    """Every secret the proxy (not the server) needs: the OIDC client secret and what observability.py puts in
    `proxy_secrets` (collector headers, values audit data is scrubbed of). The one list the digests, the
    dependencies and the proxy's environment are made from."""
    refs = list(spec.proxy_secrets or ())
    oidc = (spec.endpoint or {}).get("oidc") or {}
    if oidc.get("client_secret"):
        refs.append(SecretRef(str(oidc["client_secret"]), CLIENT_SECRET_ENV, "env"))
    return refs


def resource_url(spec: WorkloadSpec) -> str:
    """The public URL of the endpoint (RFC 9728 `resource`): what a client on this machine connects to."""
    from toolhive_apply.providers.workload.spec import workload_url

    return workload_url(spec).split("#", 1)[0]


def endpoint_proxy_config(spec: WorkloadSpec) -> dict[str, Any]:
    """The THV_PROXY_CONFIG keys of the endpoint (BRIEF: `auth`, `strict_protocol_validation`, `allowed_origins`)."""
    endpoint = spec.endpoint or {}
    config: dict[str, Any] = {}
    if endpoint.get("auth") == "oidc":
        oidc = endpoint["oidc"]
        jwks = thaw((spec.endpoint_documents or {}).get("jwks")) if oidc.get("jwks_file") else None
        authz = endpoint.get("authz")
        config["auth"] = {
            "mode": "oidc",
            "oidc": {
                "issuer": oidc["issuer"],
                "audience": oidc.get("audience"),
                "jwks": jwks,
                "jwks_url": oidc.get("jwks_url"),
                "introspection_url": oidc.get("introspection_url"),
                "client_id": oidc.get("client_id"),
                "client_secret_env": CLIENT_SECRET_ENV if oidc.get("client_secret") else None,
                "scopes": list(oidc.get("scopes") or ()),
                "resource_url": resource_url(spec),
            },
            "authz": _authz_config(authz) if authz else None,
        }
    elif endpoint.get("auth") == "anonymous":
        config["auth"] = {"mode": "anonymous"}
    if "strict_protocol_validation" in endpoint:
        config["strict_protocol_validation"] = bool(endpoint["strict_protocol_validation"])
    if "allowed_origins" in endpoint:
        config["allowed_origins"] = list(endpoint["allowed_origins"])
    return config


def _authz_config(authz: Spec) -> dict[str, Any]:
    cedar = {"policies": list(authz["policies"]), "entities_json": authz["entities_json"]}
    return {"version": "1.0", "type": "cedarv1", "cedar": cedar}


def endpoint_runconfig(spec: WorkloadSpec) -> dict[str, Any]:
    """ToolHive's RunConfig fields (toolhive-facts §1.1; auth.TokenValidatorConfig's camelCase keys). A local JWKS
    file has no RunConfig field (ToolHive fetches keys by URL): its path is given as `jwksurl` for a human to fix."""
    endpoint = spec.endpoint or {}
    config: dict[str, Any] = {}
    if endpoint.get("auth") == "oidc":
        oidc = endpoint["oidc"]
        validator: dict[str, Any] = {"issuer": oidc["issuer"]}
        for ours, theirs in (
            ("audience", "audience"),
            ("introspection_url", "introspectionURL"),
            ("client_id", "clientID"),
        ):
            if oidc.get(ours):
                validator[theirs] = oidc[ours]
        jwks = oidc.get("jwks_url") or oidc.get("jwks_file")
        if jwks:
            validator["jwksurl"] = jwks
        if oidc.get("scopes"):
            validator["scopes"] = list(oidc["scopes"])
        validator["resourceURL"] = resource_url(spec)
        config["oidc_config"] = validator
    if endpoint.get("authz"):
        config["authz_config"] = _authz_config(endpoint["authz"])
    if endpoint.get("allowed_origins"):
        config["allowed_origins"] = list(endpoint["allowed_origins"])
    if endpoint.get("strict_protocol_validation"):
        config["strict_protocol_validation"] = True
    if spec.session_ttl:
        config["session_ttl"] = go_duration(float(spec.session_ttl))
    return config


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration string that time.ParseDuration reads (`2h`, `1h30m`, `1m30s`)."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


# -- a unit whose endpoint alone changed replaces its proxy alone ------------------------------------------------
# The server container records the spec without the endpoint block (its labels cannot change after creation); the
# proxy records the endpoint block. Observation puts them together again, so the unit's hash covers both, and a
# plan whose only changes are endpoint fields (a rotated JWKS file, an edited policy file) replaces just the proxy.


def server_part(spec: WorkloadSpec) -> Spec:
    """What the server container's labels record: the spec's document without the proxy's endpoint (a remote
    workload's one container is its proxy: it records everything)."""
    doc = spec.document()
    if spec.remote:
        return doc
    return {k: v for k, v in doc.items() if k not in (ENDPOINT_KEY, DOCUMENTS_KEY)}


def endpoint_label(spec: WorkloadSpec) -> dict[str, str]:
    """The proxy container's record of the endpoint block (absent when there is none)."""
    if spec.remote or spec.endpoint is None:
        return {}
    return {LABEL_ENDPOINT: canonical_json(thaw(spec.endpoint))}


def merge_endpoint(
    spec: dict[str, Any], recorded_hash: str | None, proxy: Mapping[str, str]
) -> tuple[dict[str, Any], str | None]:
    """The unit's spec and hash from the server's record and its proxy's: the endpoint block joins the spec, and
    the hash is recomputed only over a record that matches its own hash (anything else stays a mismatch)."""
    text = proxy.get(LABEL_ENDPOINT)
    if not text or spec.get("remote"):
        return spec, recorded_hash
    try:
        endpoint = json.loads(text)
    except ValueError:
        return spec, None
    merged = {**spec, ENDPOINT_KEY: endpoint}
    if recorded_hash is None or WORKLOAD_FIELDS.hash(spec) != recorded_hash:
        return merged, None
    return merged, WORKLOAD_FIELDS.hash(merged)


def endpoint_only(paths: Iterable[str]) -> bool:
    """True when every changed field is part of the endpoint block (and there is at least one)."""
    found = list(paths)
    return bool(found) and all(p == ENDPOINT_KEY or p.startswith(f"{ENDPOINT_KEY}.") for p in found)


def endpoint_explain(spec: WorkloadSpec) -> dict[str, str]:
    """Where the plan's endpoint fields come from (the files whose content hash changed), for its reasons."""
    endpoint = spec.endpoint or {}
    explain: dict[str, str] = {}
    jwks_file = (endpoint.get("oidc") or {}).get("jwks_file")
    if jwks_file:
        explain.update({f"{ENDPOINT_KEY}.oidc.{k}": str(jwks_file) for k in ("jwks_file", "jwks_sha256", "jwks_kids")})
    source = (spec.endpoint_documents or {}).get("authz_source")
    if source and source != "inline":
        explain.update({f"{ENDPOINT_KEY}.authz.{k}": str(source) for k in ("sha256", "policies", "entities_json")})
    return explain


def endpoint_manifest(spec: WorkloadSpec) -> dict[str, Any]:
    """The manifest fields that give this spec's endpoint back (export --as-manifest): the policies inline, a
    local JWKS file by the path it was written with (relative to the original manifest's directory), the client
    secret by its secret's name."""
    endpoint = spec.endpoint or {}
    fields: dict[str, Any] = {}
    if endpoint.get("auth") == "oidc":
        oidc = endpoint["oidc"]
        block = {"issuer": oidc["issuer"], "jwks_url": oidc.get("jwks_url") or oidc.get("jwks_file")}
        for key in ("audience", "introspection_url", "client_id", "client_secret"):
            block[key] = oidc.get(key)
        block["scopes"] = list(oidc.get("scopes") or ()) or None
        fields["oidc"] = {k: v for k, v in block.items() if v is not None}
    elif endpoint.get("auth") == "anonymous":
        fields["auth"] = "anonymous"
    if endpoint.get("authz"):
        fields["authz_config"] = _authz_config(endpoint["authz"])
    for key in ("allowed_origins", "strict_protocol_validation"):
        if key in endpoint:
            fields[key] = thaw(endpoint[key])
    return fields
