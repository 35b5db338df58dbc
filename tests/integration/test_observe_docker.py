"""Audit and metrics from applied workloads on the real engine: one apply, an http server whose audit goes to a
logFile on the host (its directory mounted into the read-only proxy) and one whose audit goes to the proxy's
log (the stack default), read back with ``toolhive-apply logs``; a secret a tool returns is scrubbed in the
recorded response."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import HTTP_IMAGE, private_env, run_cli, write_manifest
from tests.support.mcp_client import call_tool, list_tools

pytestmark = pytest.mark.docker

SECRET = "obs-canary-7c1d2e3f4a5b"


def metrics_of(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=15)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        assert response.status == 200
        return {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    finally:
        connection.close()


def test_applied_workloads_audit_every_call_and_serve_metrics(
    tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    env = private_env(tmp_path, OBS_TOKEN=SECRET)
    audit_dir = tmp_path / "manifest" / "audit"
    audit_dir.mkdir(parents=True)
    audit_dir.chmod(0o777)  # the proxy runs as 65532; the directory's group (root here) is not joined
    web, clock = f"{stack}-web", f"{stack}-plain"
    workloads = [
        {
            "name": web,
            "image": HTTP_IMAGE,
            "transport": "streamable-http",
            "secrets": [{"name": "token", "target": "API_TOKEN"}],
            "audit_config": {"logFile": "./audit/web.jsonl", "includeResponseData": True},
            "telemetry_config": {"enablePrometheusMetricsPath": True},
            "ready_timeout": 300,  # a loaded CI machine: a bound, not a wait
        },
        {"name": clock, "image": HTTP_IMAGE, "transport": "streamable-http", "ready_timeout": 300},
    ]
    path = write_manifest(
        tmp_path / "manifest",
        stack,
        workloads,
        settings={"audit_config": {"enabled": True}},
        secrets=[{"key": "token", "from": {"env": "OBS_TOKEN"}}],
    )
    applied = run_cli("apply", str(path), "--yes", env=env, timeout=900)
    assert applied.code == 0, applied.stderr
    listing = json.loads(run_cli("export", "workloads", "--all", "--stack", stack, env=env).stdout)["workloads"]
    urls = {w["name"]: w["url"] for w in listing}
    assert {"echo", "get_env"} <= set(list_tools(urls[web]))
    assert call_tool(urls[web], "echo", {"text": "hi"}) == "hi"
    assert call_tool(urls[web], "get_env", {"name": "API_TOKEN"}) == SECRET
    assert call_tool(urls[clock], "add", {"a": 2, "b": 3}) == "5"

    events = [json.loads(line) for line in (audit_dir / "web.jsonl").read_text().splitlines()]
    calls = [e for e in events if e["type"] == "mcp_tool_call"]
    assert [(e["target"]["name"], e["outcome"], e["component"]) for e in calls] == [
        ("echo", "success", web),
        ("get_env", "success", web),
    ]
    assert calls[0]["data"]["response"]["result"]["content"][0]["text"] == "hi"
    assert SECRET not in (audit_dir / "web.jsonl").read_text()
    assert "(sensitive value)" in json.dumps(calls[1]["data"])

    logged = run_cli("logs", clock, "--audit", "--stack", stack, env=env)
    assert logged.code == 0, logged.stderr
    lines = [line.removeprefix("[audit] ") for line in logged.stdout.splitlines()]
    assert all(line.startswith("{") for line in lines)
    clock_calls = [json.loads(line) for line in lines if '"mcp_tool_call"' in line]
    assert [(e["target"]["name"], e["outcome"]) for e in clock_calls] == [("add", "success")]
    assert "data" not in clock_calls[0]  # request/response data only when asked for
    from_file = run_cli("logs", web, "--audit", "--since", "1h", "--stack", stack, env=env)
    assert from_file.stdout.count('"mcp_tool_call"') == 2 and SECRET not in from_file.stdout
    everything = run_cli("logs", web, "--stack", stack, env=env)
    assert "[proxy] " in everything.stdout and SECRET not in everything.stdout

    families = metrics_of(urls[web])
    counted = {
        s.labels["tool"]: s.value
        for s in families["toolhive_mcp_requests"].samples
        if s.labels["mcp_method"] == "tools/call" and s.labels["outcome"] == "success"
    }
    assert counted == {"echo": 1, "get_env": 1}

    runconfig = json.loads(run_cli("export", "workload", web, "--runconfig", "--stack", stack, env=env).stdout)
    assert runconfig["audit_config"] == {
        "enabled": True,
        "includeResponseData": True,
        "logFile": str((audit_dir / "web.jsonl").resolve()),
    }
    assert runconfig["telemetry_config"] == {"enablePrometheusMetricsPath": True, "headers": {}} or runconfig[
        "telemetry_config"
    ] == {"enablePrometheusMetricsPath": True}
    assert run_cli("plan", str(path), "--detailed-exitcode", env=env).code == 0
