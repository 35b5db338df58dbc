"""`export group NAME --vmcp-config`: a group gateway's live spec as a ToolHive vMCP configuration file.

The shape is ToolHive's ``pkg/vmcp/config.Config`` as ``vmcp serve --config`` reads it (camelCase keys: ``name``,
``groupRef``, static ``backends`` with ``outgoingAuth.source: inline``, ``incomingAuth``, ``aggregation``). JSON is
printed, which is YAML too. Nothing secret is in a gateway's spec (an OIDC client secret is a secret's name there,
and an environment variable's name here), so nothing needs scrubbing beyond the usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolhive_apply.providers.workload.endpoint import (
    CLIENT_SECRET_ENV,
    ENDPOINT_KEY,
    endpoint_manifest,
    resource_url,
)
from toolhive_apply.providers.workload.spec_model import WorkloadSpec


def _aggregation(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's snake-case aggregation block in ToolHive's camelCase."""
    result: dict[str, Any] = {"conflictResolution": raw.get("conflict_resolution", "prefix")}
    settings = raw.get("conflict_resolution_config") or {}
    config: dict[str, Any] = {}
    if result["conflictResolution"] == "prefix":
        config["prefixFormat"] = settings.get("prefix_format", "{workload}_")
    if settings.get("priority_order"):
        config["priorityOrder"] = list(settings["priority_order"])
    if config:
        result["conflictResolutionConfig"] = config
    tools = []
    for item in raw.get("tools") or ():
        entry: dict[str, Any] = {"workload": item["workload"]}
        if item.get("filter") is not None:
            entry["filter"] = list(item["filter"])
        if item.get("overrides"):
            entry["overrides"] = {tool: dict(o) for tool, o in item["overrides"].items()}
        tools.append(entry)
    if tools:
        result["tools"] = tools
    return result


def _incoming_auth(spec: Mapping[str, Any]) -> dict[str, Any]:
    """ToolHive vMCP's incomingAuth of the gateway's endpoint: oidc (with Cedar authz) or anonymous. A local JWKS
    file has no field there (ToolHive fetches keys by URL): its path stands in ``jwksUrl`` for a human to fix."""
    endpoint = spec.get(ENDPOINT_KEY) or {}
    if endpoint.get("auth") != "oidc":
        return {"type": "anonymous"}
    oidc = endpoint["oidc"]
    block: dict[str, Any] = {"issuer": oidc["issuer"]}
    names = (("client_id", "clientId"), ("audience", "audience"), ("introspection_url", "introspectionUrl"))
    for ours, theirs in names:
        if oidc.get(ours):
            block[theirs] = oidc[ours]
    if oidc.get("jwks_url") or oidc.get("jwks_file"):
        block["jwksUrl"] = oidc.get("jwks_url") or oidc.get("jwks_file")
    if oidc.get("client_secret"):
        block["clientSecretEnv"] = CLIENT_SECRET_ENV  # the variable's name; the value stays in the secret store
    if oidc.get("scopes"):
        block["scopes"] = list(oidc["scopes"])
    block["resource"] = resource_url(WorkloadSpec.from_document(spec))
    result: dict[str, Any] = {"type": "oidc", "oidc": block}
    if endpoint.get("authz"):
        result["authz"] = {"type": "cedar", "policies": list(endpoint["authz"]["policies"])}
    return result


def _backend(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A static backend. A stdio server served vmcp-only (reached through its docker gate's volume) has no URL:
    ToolHive's vMCP reaches stdio servers only through a proxy, so the entry says stdio and leaves the URL out
    rather than name one that does not exist."""
    if "gate_volume" in entry:
        return {"name": entry["name"], "transport": "stdio"}
    return {"name": entry["name"], "url": entry["url"], "transport": "streamable-http"}


def vmcp_config(spec: Mapping[str, Any]) -> dict[str, Any]:
    """ToolHive's vMCP configuration of the gateway whose spec is ``spec`` (see gateways.gateway_spec)."""
    vmcp = spec["vmcp"]
    return {
        "name": str(spec["name"]),
        "groupRef": str(spec["group"]),
        "backends": [_backend(b) for b in vmcp["backends"]],
        "incomingAuth": _incoming_auth(spec),
        "outgoingAuth": {"source": "inline", "default": {"type": "unauthenticated"}},
        "aggregation": _aggregation(vmcp.get("aggregation") or {}),
    }


def group_vmcp_entry(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's ``groups[].vmcp`` block that plans exactly this gateway (export --as-manifest)."""
    vmcp = spec["vmcp"]
    entry: dict[str, Any] = {"port": spec["proxy_port"], "host": spec["host"]}
    if vmcp.get("name"):
        entry["name"] = vmcp["name"]
    if vmcp.get("aggregation"):
        entry["aggregation"] = dict(vmcp["aggregation"])
    incoming = {
        k: v
        for k, v in endpoint_manifest(WorkloadSpec.from_document(spec)).items()
        if k != "strict_protocol_validation"
    }
    if incoming:
        entry["incoming_auth"] = incoming
    return entry


def with_gateways(groups: list[dict[str, Any]], gateways: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``groups`` (export --as-manifest's entries) with the ``vmcp`` block of each group that has a gateway."""
    return [{**g, "vmcp": group_vmcp_entry(gateways[g["name"]])} if g["name"] in gateways else g for g in groups]
