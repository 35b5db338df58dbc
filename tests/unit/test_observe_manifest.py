"""audit_config and telemetry_config from the manifest to the proxy: merged with the stack default, judged at their
field, carried on the spec (so planned), parsed by the proxy's own config loader, exported in ToolHive's shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.providers.workload.create_args import proxy_config, proxy_host_config_args
from toolhive_apply.providers.workload.observability import AUDIT_DIR
from toolhive_apply.providers.workload.spec import workload_spec
from toolhive_apply.proxy.config import load_config
from toolhive_apply.views.manifest import _optional_fields
from toolhive_apply.views.workloads import runconfig


def manifest_at(tmp_path: Path, workload: dict[str, Any], settings: dict[str, Any] | None = None) -> Path:
    data: dict[str, Any] = {
        "apiVersion": "toolhive-apply/v1",
        "secrets": [{"key": "otel-token", "present": True}, {"key": "gh", "present": True}],
        "workloads": [{"name": "web", "image": "x", **workload}],
    }
    if settings:
        data["settings"] = settings
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def spec_of(path: Path) -> dict[str, Any]:
    manifest = load_manifest([path])
    return workload_spec(manifest.workloads[0], manifest, 18080, None)


TELEMETRY = {
    "endpoint": "otel.example:4318",
    "tracingEnabled": True,
    "metricsEnabled": True,
    "samplingRate": 0.00001,
    "serviceName": "web-svc",
    "customAttributes": {"team": "a"},
    "enablePrometheusMetricsPath": True,
    "headers": {"X-Plain": "yes", "Authorization": {"secret": "otel-token"}},
}


def test_the_stack_default_and_the_workloads_keys_reach_the_proxy_as_it_parses_them(tmp_path: Path) -> None:
    (tmp_path / "audit").mkdir()
    settings = {"audit_config": {"enabled": True, "logFile": "./audit/web.jsonl", "maxDataSize": 10}}
    workload = {
        "secrets": [{"name": "gh", "target": "GITHUB_TOKEN"}],
        "audit_config": {"includeResponseData": True, "maxDataSize": 2048},
        "telemetry_config": TELEMETRY,
    }
    spec = spec_of(manifest_at(tmp_path, workload, settings))
    assert spec["audit"] == {
        "enabled": True,
        "includeResponseData": True,
        "logFile": str((tmp_path / "audit" / "web.jsonl").resolve()),
        "maxDataSize": 2048,
    }
    assert spec["telemetry"]["samplingRate"] == "0.00001"
    assert spec["telemetry"]["header_secrets"] == {"Authorization": "otel-token"}
    assert spec["proxy_secrets"] == [
        {"name": "otel-token", "target": "THV_OTEL_HEADER_0"},
        {"name": "gh", "target": "THV_SCRUB_0"},  # response data may carry the server's own token
    ]
    written = proxy_config(spec)
    assert written["audit"]["logFile"] == f"{AUDIT_DIR}/web.jsonl"
    assert written["audit"]["scrub_env"] == ["THV_SCRUB_0"]
    assert written["telemetry"]["headers_env"] == {"Authorization": "THV_OTEL_HEADER_0"}
    assert "otel-token" not in json.dumps(written["telemetry"]["headers"])
    environ = {"THV_OTEL_HEADER_0": "Bearer t0ken-value", "THV_SCRUB_0": "ghp_secretvalue"}
    parsed = load_config(json.dumps(written), environ)
    assert parsed.audit is not None and parsed.audit.scrub_values == ("ghp_secretvalue",)
    assert parsed.audit.log_file == f"{AUDIT_DIR}/web.jsonl" and parsed.audit.component == "web"
    assert parsed.telemetry is not None and parsed.telemetry.traces_url == "https://otel.example:4318/v1/traces"
    assert parsed.telemetry.headers == {"X-Plain": "yes", "Authorization": "Bearer t0ken-value"}
    assert parsed.telemetry.sampling_rate == pytest.approx(0.00001)
    binds = proxy_host_config_args(spec, "net")["binds"]
    assert binds == [f"{(tmp_path / 'audit').resolve()}:{AUDIT_DIR}:rw"]


def test_export_carries_both_configs_in_toolhives_shape_without_secret_headers(tmp_path: Path) -> None:
    (tmp_path / "audit").mkdir()
    workload = {"audit_config": {"enabled": True, "logFile": "audit/web.jsonl"}, "telemetry_config": TELEMETRY}
    spec = spec_of(manifest_at(tmp_path, workload))
    exported = runconfig(spec, "s")
    assert exported["audit_config"] == {"enabled": True, "logFile": str((tmp_path / "audit/web.jsonl").resolve())}
    telemetry = exported["telemetry_config"]
    assert telemetry["headers"] == {"X-Plain": "yes"} and telemetry["samplingRate"] == "0.00001"
    assert telemetry["endpoint"] == "otel.example:4318" and telemetry["enablePrometheusMetricsPath"] is True
    assert "header_secrets" not in telemetry and "headers_env" not in telemetry
    as_manifest = _optional_fields(spec)
    assert as_manifest["telemetry_config"]["headers"]["Authorization"] == {"secret": "otel-token"}


def test_a_workload_can_switch_off_the_stack_default_and_specs_without_them_are_unchanged(tmp_path: Path) -> None:
    settings = {"audit_config": {"enabled": True}}
    spec = spec_of(manifest_at(tmp_path, {"audit_config": {"enabled": False}}, settings))
    assert "audit" not in spec and "telemetry" not in spec and "proxy_secrets" not in spec
    assert "audit" not in proxy_config(spec)
    assert "binds" not in proxy_host_config_args(spec, "net")


@pytest.mark.parametrize(
    ("workload", "field", "message"),
    [
        ({"audit_config": {"enabled": True, "logFile": "./missing/a.jsonl"}}, "audit_config.logFile", "missing"),
        ({"audit_config": {"enabled": True, "logFile": "a.jsonl"}}, "audit_config.logFile", "directory of its own"),
        ({"audit_config": {"enabled": True, "logFile": "./logs/"}}, "audit_config.logFile", "names a file"),
        ({"telemetry_config": {"headers": {"A": {"secret": "nope"}}}}, "telemetry_config.headers.A.secret", "nope"),
        ({"audit_config": {"eventTypes": ["mcp_tool_calls"]}}, "audit_config.eventTypes", "mcp_tool_calls"),
        ({"audit_config": {"enable": True}}, "audit_config", "enable"),
        ({"telemetry_config": {"samplingRate": "2"}}, "telemetry_config.samplingRate", "2"),
        (
            {
                "secrets": [{"name": "gh", "target": "GH_TOKEN"}],
                "telemetry_config": {"environmentVariables": ["GH_TOKEN"]},
            },
            "telemetry_config.environmentVariables[0]",
            "target of secret 'gh'",
        ),
        ({"telemetry_config": {"environmentVariables": ["a-b"]}}, "telemetry_config.environmentVariables", "a-b"),
        ({"telemetry_config": {"protocol": "grpc"}}, "telemetry_config.protocol", "grpc"),
    ],
)
def test_bad_observability_settings_are_refused_at_their_field(
    tmp_path: Path, workload: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest([manifest_at(tmp_path, workload)])
    text = str(caught.value)
    assert f"workloads[0].{field}" in text and message in text
    assert "stack.yaml:" in text


def test_environment_variables_carry_the_workloads_plain_values_and_never_a_secrets(tmp_path: Path) -> None:
    telemetry = {**TELEMETRY, "environmentVariables": ["DEPLOY_ENV", "UNSET_ONE"], "protocol": "http/json"}
    workload = {"env_vars": {"DEPLOY_ENV": "staging", "OTHER": "x"}, "telemetry_config": telemetry}
    spec = spec_of(manifest_at(tmp_path, workload))
    assert spec["telemetry"]["environmentVariables"] == ["DEPLOY_ENV", "UNSET_ONE"]
    written = proxy_config(spec)["telemetry"]
    assert written["environment_values"] == {"DEPLOY_ENV": "staging"} and written["protocol"] == "http/json"
    parsed = load_config(json.dumps(proxy_config(spec)), {"THV_OTEL_HEADER_0": "Bearer t0ken-value"}).telemetry
    assert parsed is not None and parsed.protocol == "http/json"
    assert parsed.environment == {"environment.DEPLOY_ENV": "staging", "environment.UNSET_ONE": ""}
    exported = runconfig(spec, "s")["telemetry_config"]
    assert exported["environmentVariables"] == ["DEPLOY_ENV", "UNSET_ONE"] and "protocol" not in exported
    assert "environment_values" not in exported
    assert _optional_fields(spec)["telemetry_config"]["protocol"] == "http/json"


def test_a_stack_default_naming_a_workloads_secret_target_is_refused_at_that_workload(tmp_path: Path) -> None:
    settings = {"telemetry_config": {"environmentVariables": ["DEPLOY_ENV", "GITHUB_TOKEN"]}}
    workload = {"secrets": [{"name": "gh", "target": "GITHUB_TOKEN"}]}
    with pytest.raises(ManifestError) as caught:
        load_manifest([manifest_at(tmp_path, workload, settings)])
    text = str(caught.value)
    assert "workloads[0].telemetry_config" in text and "from settings.telemetry_config" in text
    assert "GITHUB_TOKEN" in text and "DEPLOY_ENV" not in text and "stack.yaml:" in text
