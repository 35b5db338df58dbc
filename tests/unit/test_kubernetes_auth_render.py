"""render kubernetes of endpoint security, observability and vMCP: oidc -> MCPOIDCConfig + oidcConfigRef,
authz_config -> inline authzConfig, audit_config -> audit.enabled, telemetry_config -> MCPTelemetryConfig +
telemetryConfigRef, a group's vmcp -> VirtualMCPServer. Expected values are written from the v1beta1 CRDs'
openAPIV3Schema (field names, required keys, enums), and every document is validated against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_cli as run_subprocess
from toolhive_apply.interop.crd_validate import crd_schemas, validate_document
from toolhive_apply.interop.kubernetes_auth import sampling_rate
from toolhive_apply.interop.kubernetes_model import Rendering
from toolhive_apply.interop.kubernetes_render import check_rendering, render_manifest
from toolhive_apply.manifest import load_manifest

POLICY = 'permit(principal, action == Action::"call_tool", resource == Tool::"search");'
PUBLIC_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
ENTITIES = '[{"uid": {"type": "Client", "id": "alice"}, "attrs": {}, "parents": []}]'


def crd_node(kind: str, *path: str) -> dict[str, Any]:
    """A node of the shipped CRD's v1beta1 schema (as the validator reads it), to assert against the CRD itself."""
    node = crd_schemas()[("toolhive.stacklok.dev/v1beta1", kind)]
    for part in path:
        node = node["properties"][part]
    return node


def _render(tmp_path: Path, body: dict[str, Any], files: dict[str, str] | None = None) -> Rendering:
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump({"apiVersion": "toolhive-apply/v1", **body}), encoding="utf-8")
    rendering = render_manifest(load_manifest([tmp_path / "stack.yaml"], environ={}), "mcp")
    assert check_rendering(rendering) == []  # every document against its CRD (unknown fields are errors)
    return rendering


def _docs(rendering: Rendering) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d.kind, d.name): dict(d.body) for d in rendering.documents}


def _warnings(rendering: Rendering) -> list[str]:
    return [str(w) for w in rendering.warnings]


OIDC = {"issuer": "https://idp.example/realms/mcp", "audience": "web", "jwks_url": "https://idp.example/certs"}


def test_oidc_is_an_mcpoidcconfig_and_the_server_references_it_with_its_audience(tmp_path: Path) -> None:
    # MCPOIDCConfig: spec.type (enum inline|kubernetesServiceAccount) + spec.inline{issuer, jwksUrl, ...};
    # the per-server audience (required) and scopes are on MCPServer.spec.oidcConfigRef
    assert crd_node("MCPOIDCConfig", "spec", "type")["enum"] == ["kubernetesServiceAccount", "inline"]
    assert sorted(crd_node("MCPServer", "spec", "oidcConfigRef")["required"]) == ["audience", "name"]
    rendering = _render(tmp_path, {
        "settings": {"stack": "sec"},
        "secrets": [{"key": "idp-client", "present": True}],
        "workloads": [
            {"name": "web", "image": "example/web:1", "transport": "streamable-http",
             "oidc": {**OIDC, "introspection_url": "https://idp.example/introspect", "client_id": "web-proxy",
                      "client_secret": "idp-client", "scopes": ["openid", "mcp"]}},
            {"name": "docs", "url": "https://mcp.example.com/mcp", "oidc": {**OIDC, "audience": "docs"}},
        ],
    })  # fmt: skip
    docs = _docs(rendering)
    assert docs[("MCPOIDCConfig", "web-oidc")]["spec"] == {
        "type": "inline",
        "inline": {
            "issuer": "https://idp.example/realms/mcp",
            "jwksUrl": "https://idp.example/certs",
            "introspectionUrl": "https://idp.example/introspect",
            "clientId": "web-proxy",
            "clientSecretRef": {"name": "idp-client", "key": "value"},
        },
    }
    assert docs[("MCPServer", "web")]["spec"]["oidcConfigRef"] == {
        "name": "web-oidc", "audience": "web", "scopes": ["openid", "mcp"]}  # fmt: skip
    # MCPRemoteProxy has the same oidcConfigRef field
    assert "oidcConfigRef" in crd_node("MCPRemoteProxy", "spec")["properties"]
    assert docs[("MCPRemoteProxy", "docs")]["spec"]["oidcConfigRef"] == {"name": "docs-oidc", "audience": "docs"}
    assert [n.where for n in rendering.needs] == ["Secret idp-client key value"]


def test_the_stacks_default_oidc_is_one_shared_config_and_a_local_jwks_file_a_warning(tmp_path: Path) -> None:
    rendering = _render(
        tmp_path,
        {
            "settings": {"stack": "sec", "auth": {"oidc": {**OIDC, "audience": "stack", "jwks_url": "jwks.json"}}},
            "workloads": [
                {"name": "a", "image": "example/a:1", "transport": "streamable-http"},
                {"name": "b", "image": "example/b:1", "transport": "streamable-http"},
                {"name": "open", "image": "example/o:1", "transport": "streamable-http", "auth": "anonymous"},
            ],
        },
        files={
            "jwks.json": json.dumps(
                {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}
            )
        },
    )
    docs = _docs(rendering)
    configs = [key for key in docs if key[0] == "MCPOIDCConfig"]
    assert configs == [("MCPOIDCConfig", "sec-oidc")]
    # MCPOIDCConfig.inline has jwksUrl (a URL) and caBundleRef, but no JWKS-from-ConfigMap field
    assert "jwksUrl" in crd_node("MCPOIDCConfig", "spec", "inline")["properties"]
    assert docs[configs[0]]["spec"] == {"type": "inline", "inline": {"issuer": "https://idp.example/realms/mcp"}}
    for name in ("a", "b"):
        assert docs[("MCPServer", name)]["spec"]["oidcConfigRef"] == {"name": "sec-oidc", "audience": "stack"}
    assert "oidcConfigRef" not in docs[("MCPServer", "open")]["spec"]
    warnings = _warnings(rendering)
    assert any("workload/a" in w and "local JWKS file" in w for w in warnings), warnings


def test_a_loopback_http_issuer_allows_http_and_is_a_warning(tmp_path: Path) -> None:
    assert crd_node("MCPOIDCConfig", "spec", "inline", "insecureAllowHTTP")["type"] == "boolean"
    oidc = {"issuer": "http://127.0.0.1:9000", "audience": "w", "jwks_url": "http://127.0.0.1:9000/jwks"}
    rendering = _render(tmp_path, {"workloads": [{"name": "w", "image": "x:1", "oidc": oidc}]})
    inline = _docs(rendering)[("MCPOIDCConfig", "w-oidc")]["spec"]["inline"]
    assert inline["insecureAllowHTTP"] is True
    assert any("workload/w" in w and "loopback" in w for w in _warnings(rendering))


def _cli_refuses(tmp_path: Path, workload: dict[str, Any]) -> str:
    (tmp_path / "stack.yaml").write_text(
        yaml.safe_dump({"apiVersion": "toolhive-apply/v1", "workloads": [workload]}), encoding="utf-8"
    )
    result = run_subprocess("render", "kubernetes", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.code == 1, result
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    return result.stderr


def test_oidc_without_audience_is_one_clear_error(tmp_path: Path) -> None:
    oidc = {"issuer": "https://idp.example", "jwks_url": "https://idp.example/certs"}
    stderr = _cli_refuses(tmp_path, {"name": "w", "image": "x:1", "oidc": oidc})
    assert "workloads[0].oidc: needs audience" in stderr


def test_authz_config_inline_or_from_a_file_is_the_inline_authz_config(tmp_path: Path) -> None:
    # authzConfig: type (enum configMap|inline) with inline{policies (minItems 1), entitiesJson (default "[]")}
    assert crd_node("MCPServer", "spec", "authzConfig", "type")["enum"] == ["configMap", "inline"]
    assert crd_node("MCPServer", "spec", "authzConfig", "inline")["required"] == ["policies"]
    authz = {"version": "1.0", "type": "cedarv1", "cedar": {"policies": [POLICY], "entities_json": ENTITIES}}
    rendering = _render(
        tmp_path,
        {"workloads": [
            {"name": "inline", "image": "x:1", "oidc": OIDC, "authz_config": authz},
            {"name": "file", "image": "x:1", "oidc": OIDC, "authz_config": "authz.yaml"},
            {"name": "remote", "url": "https://mcp.example.com/mcp", "oidc": OIDC, "authz_config": "authz.yaml"},
        ]},
        files={"authz.yaml": yaml.safe_dump({**authz, "cedar": {"policies": [POLICY]}})},
    )  # fmt: skip
    docs = _docs(rendering)
    assert docs[("MCPServer", "inline")]["spec"]["authzConfig"] == {
        "type": "inline", "inline": {"policies": [POLICY], "entitiesJson": ENTITIES}}  # fmt: skip
    assert docs[("MCPServer", "file")]["spec"]["authzConfig"] == {"type": "inline", "inline": {"policies": [POLICY]}}
    assert docs[("MCPRemoteProxy", "remote")]["spec"]["authzConfig"] == {
        "type": "inline", "inline": {"policies": [POLICY]}}  # fmt: skip


def test_an_unreadable_authz_config_is_one_clear_error_through_the_cli(tmp_path: Path) -> None:
    stderr = _cli_refuses(tmp_path, {"name": "w", "image": "x:1", "oidc": OIDC, "authz_config": "missing.yaml"})
    assert "workloads[0].authz_config: cannot read" in stderr


def test_audit_config_is_audit_enabled_and_what_it_cannot_carry_is_a_warning(tmp_path: Path) -> None:
    assert list(crd_node("MCPServer", "spec", "audit")["properties"]) == ["enabled"]
    rendering = _render(tmp_path, {
        "settings": {"audit_config": {"enabled": True}},
        "workloads": [
            {"name": "a", "image": "x:1"},
            {"name": "b", "image": "x:1", "audit_config": {"includeRequestData": True, "maxDataSize": 4096}},
            {"name": "off", "image": "x:1", "audit_config": {"enabled": False}},
            {"name": "r", "url": "https://mcp.example.com/mcp"},
        ],
    })  # fmt: skip
    docs = _docs(rendering)
    assert docs[("MCPServer", "a")]["spec"]["audit"] == {"enabled": True}
    assert docs[("MCPServer", "b")]["spec"]["audit"] == {"enabled": True}
    assert docs[("MCPServer", "off")]["spec"]["audit"] == {"enabled": False}
    assert docs[("MCPRemoteProxy", "r")]["spec"]["audit"] == {"enabled": True}
    warnings = _warnings(rendering)
    assert any("workload/b" in w and "includeRequestData, maxDataSize" in w for w in warnings), warnings
    assert not any("workload/a" in w and "audit" in w for w in warnings), warnings


def test_telemetry_config_is_an_mcptelemetryconfig_shared_unless_the_workload_changes_it(tmp_path: Path) -> None:
    # MCPTelemetryConfig.spec: openTelemetry{enabled, endpoint, insecure, headers, sensitiveHeaders[{name,
    # secretKeyRef{name,key}}], resourceAttributes, tracing{enabled, samplingRate (string)}, metrics{enabled}},
    # prometheus{enabled}; MCPServer.spec.telemetryConfigRef{name (required), serviceName}
    assert crd_node("MCPTelemetryConfig", "spec", "openTelemetry", "tracing", "samplingRate")["type"] == "string"
    assert crd_node("MCPServer", "spec", "telemetryConfigRef")["required"] == ["name"]
    stack_telemetry = {
        "endpoint": "otel-collector.observability:4318", "insecure": True, "tracingEnabled": True,
        "samplingRate": 0.25, "metricsEnabled": False, "customAttributes": {"team": "research"},
        "serviceVersion": "2.1", "headers": {"X-Tenant": "research", "Authorization": {"secret": "otel-token"}},
    }  # fmt: skip
    rendering = _render(tmp_path, {
        "settings": {"stack": "obs", "telemetry_config": stack_telemetry},
        "secrets": [{"key": "otel-token", "present": True}],
        "workloads": [
            {"name": "a", "image": "x:1"},
            {"name": "r", "url": "https://mcp.example.com/mcp"},
            {"name": "own", "image": "x:1",
             "telemetry_config": {"serviceName": "own-svc", "enablePrometheusMetricsPath": True}},
        ],
    })  # fmt: skip
    docs = _docs(rendering)
    shared_otel = {
        "enabled": True,
        "endpoint": "otel-collector.observability:4318",
        "insecure": True,
        "tracing": {"enabled": True, "samplingRate": "0.25"},
        "metrics": {"enabled": False},
        "resourceAttributes": {"team": "research", "service.version": "2.1"},
        "headers": {"X-Tenant": "research"},
        "sensitiveHeaders": [{"name": "Authorization", "secretKeyRef": {"name": "otel-token", "key": "value"}}],
    }
    assert docs[("MCPTelemetryConfig", "obs-telemetry")]["spec"] == {"openTelemetry": shared_otel}
    assert docs[("MCPTelemetryConfig", "own-telemetry")]["spec"] == {
        "openTelemetry": shared_otel, "prometheus": {"enabled": True}}  # fmt: skip
    assert docs[("MCPServer", "a")]["spec"]["telemetryConfigRef"] == {"name": "obs-telemetry", "serviceName": "a"}
    assert docs[("MCPRemoteProxy", "r")]["spec"]["telemetryConfigRef"] == {"name": "obs-telemetry", "serviceName": "r"}
    assert docs[("MCPServer", "own")]["spec"]["telemetryConfigRef"] == {
        "name": "own-telemetry", "serviceName": "own-svc"}  # fmt: skip
    assert [n.where for n in rendering.needs] == ["Secret otel-token key value"]


@pytest.mark.parametrize(("value", "text"), [(0.05, "0.05"), (1, "1"), (0, "0"), (0.00001, "0.00001"), ("0.3", "0.3")])
def test_a_sampling_rate_is_written_as_the_crds_pattern_takes_it(value: object, text: str) -> None:
    import re

    pattern = crd_node("MCPTelemetryConfig", "spec", "openTelemetry", "tracing", "samplingRate")["pattern"]
    assert sampling_rate(value) == text
    assert re.match(pattern, text)


def _vmcp_manifest(aggregation: dict[str, Any]) -> dict[str, Any]:
    return {
        "groups": [{"name": "research", "vmcp": {"port": 4483, "aggregation": aggregation}}],
        "workloads": [
            {"name": "fetch", "image": "x:1", "transport": "streamable-http", "group": "research"},
            {"name": "Git_Hub", "image": "y:1", "transport": "streamable-http", "group": "research"},
            {"name": "other", "image": "z:1", "transport": "streamable-http"},
        ],
    }


def test_a_groups_vmcp_is_a_virtualmcpserver_over_its_mcpgroup(tmp_path: Path) -> None:
    # VirtualMCPServer.spec: groupRef{name} and incomingAuth{type: anonymous|oidc} required; outgoingAuth.source
    # discovered|inline; config.aggregation{conflictResolution prefix|priority|manual, conflictResolutionConfig
    # {prefixFormat, priorityOrder}, tools[{workload, filter, overrides}]}
    spec_node = crd_node("VirtualMCPServer", "spec")
    assert sorted(spec_node["required"]) == ["groupRef", "incomingAuth"]
    assert crd_node("VirtualMCPServer", "spec", "incomingAuth", "type")["enum"] == ["anonymous", "oidc"]
    aggregation_node = crd_node("VirtualMCPServer", "spec", "config", "aggregation")
    assert aggregation_node["properties"]["conflictResolution"]["enum"] == ["prefix", "priority", "manual"]
    rendering = _render(tmp_path, _vmcp_manifest({"conflict_resolution_config": {"prefix_format": "{workload}."}}))
    docs = _docs(rendering)
    assert docs[("VirtualMCPServer", "research")]["spec"] == {
        "groupRef": {"name": "research"},
        "incomingAuth": {"type": "anonymous"},
        "outgoingAuth": {"source": "discovered"},
        "config": {"aggregation": {"conflictResolution": "prefix",
                                   "conflictResolutionConfig": {"prefixFormat": "{workload}."}}},
    }  # fmt: skip
    assert ("MCPGroup", "research") in docs
    warnings = _warnings(rendering)
    assert any("group/research" in w and "anonymous" in w for w in warnings), warnings
    assert any("group/research" in w and "Git_Hub" in w and "prefix" in w for w in warnings), warnings
    assert not any("not rendered yet" in w for w in warnings), warnings


def test_priority_lists_every_member_by_its_kubernetes_name_and_tools_map_per_workload(tmp_path: Path) -> None:
    rendering = _render(tmp_path, _vmcp_manifest({
        "conflict_resolution": "priority",
        "conflict_resolution_config": {"priority_order": ["Git_Hub"]},
        "tools": [{"workload": "fetch", "filter": ["fetch", "head"],
                   "overrides": {"fetch": {"name": "get", "description": "Fetch a URL"}}}],
    }))  # fmt: skip
    aggregation = _docs(rendering)[("VirtualMCPServer", "research")]["spec"]["config"]["aggregation"]
    assert aggregation == {
        "conflictResolution": "priority",
        "conflictResolutionConfig": {"prefixFormat": "{workload}_", "priorityOrder": ["git-hub", "fetch"]},
        "tools": [{"workload": "fetch", "filter": ["fetch", "head"],
                   "overrides": {"fetch": {"name": "get", "description": "Fetch a URL"}}}],
    }  # fmt: skip


def test_what_the_operator_has_no_field_for_stays_a_warning_per_resource(tmp_path: Path) -> None:
    rendering = _render(tmp_path, {
        "groups": [{"name": "g", "vmcp": {"port": 4483}}],
        "workloads": [{
            "name": "w", "image": "x:1", "transport": "streamable-http", "group": "g", "serve": "vmcp-only",
            "allowed_origins": ["https://app.example"], "strict_protocol_validation": True, "session_ttl": "30m",
        }],
    })  # fmt: skip
    warnings = [w for w in _warnings(rendering) if "workload/w" in w]
    for field in ("allowed_origins", "strict_protocol_validation", "session_ttl", "serve: vmcp-only"):
        assert any(field in w and "no operator equivalent" in w for w in warnings), (field, warnings)
    assert not any("not rendered yet" in w for w in warnings), warnings
    server = _docs(rendering)[("MCPServer", "w")]
    assert validate_document(server, "w") == []


def test_secret_canaries_of_oidc_and_telemetry_never_reach_rendered_output(tmp_path: Path) -> None:
    """In a real subprocess: the values exist only in the environment the secrets are declared from."""
    canary = "canary-5d1e0a77-auth-value-never-rendered"
    manifest = tmp_path / "m" / "stack.yaml"
    manifest.parent.mkdir()
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "toolhive-apply/v1", "settings": {"stack": "canary", "telemetry_config": {
            "endpoint": "otel:4318", "headers": {"Authorization": {"secret": "otel"}}}},
        "secrets": [{"key": "idp", "from": {"env": "CANARY"}}, {"key": "otel", "from": {"env": "CANARY"}}],
        "workloads": [{"name": "a", "image": "x:1", "oidc": {**OIDC, "introspection_url": "https://idp.example/i",
                                                             "client_id": "a", "client_secret": "idp"}}],
    }), encoding="utf-8")  # fmt: skip
    out = tmp_path / "out"
    result = run_subprocess("render", "kubernetes", str(manifest.parent), "--out", str(out), env={"CANARY": canary})
    assert result.code == 0, result
    assert canary not in result.output
    texts = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()}
    assert {"mcpoidcconfig-a-oidc.yaml", "mcptelemetryconfig-canary-telemetry.yaml"} <= set(texts)
    assert all(canary not in t for t in texts.values())
    oidc = yaml.safe_load(texts["mcpoidcconfig-a-oidc.yaml"])
    assert oidc["spec"]["inline"]["clientSecretRef"] == {"name": "idp", "key": "value"}
    kustomization = yaml.safe_load(texts["kustomization.yaml"])
    assert sorted(kustomization["resources"]) == sorted(n for n in texts if n != "kustomization.yaml")


def test_with_vault_the_oidc_and_telemetry_secrets_are_still_kubernetes_secrets_and_say_so(tmp_path: Path) -> None:
    """MCPOIDCConfig.clientSecretRef and sensitiveHeaders[].secretKeyRef name a Kubernetes Secret: the Vault
    injector's files cannot feed them, so each is a warning naming the Secret to sync."""
    assert crd_node("MCPOIDCConfig", "spec", "inline", "clientSecretRef")["required"] == ["key", "name"]
    rendering = _render(tmp_path, {
        "settings": {"secrets": {"provider": "vault", "vault": {"address": "https://vault.example.com:8200"}},
                     "telemetry_config": {"endpoint": "otel:4318", "headers": {"X-Key": {"secret": "otel"}}}},
        "secrets": [{"key": "idp", "present": True}, {"key": "otel", "present": True}],
        "workloads": [{"name": "a", "image": "x:1", "oidc": {**OIDC, "introspection_url": "https://idp.example/i",
                                                             "client_id": "a", "client_secret": "idp"}}],
    })  # fmt: skip
    docs = _docs(rendering)
    assert docs[("MCPOIDCConfig", "a-oidc")]["spec"]["inline"]["clientSecretRef"] == {"name": "idp", "key": "value"}
    warnings = _warnings(rendering)
    for what, secret in (("oidc.client_secret", "(idp)"), ("telemetry_config.headers.X-Key", "(otel)")):
        assert any("workload/a" in w and what in w and secret in w and "not from Vault" in w for w in warnings), (
            what, warnings)  # fmt: skip
