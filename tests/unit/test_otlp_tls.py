"""telemetry_config.caCertPath end to end: a manifest names a CA bundle the test made, the spec carries its digest,
the proxy's configuration its text, and the real proxy exports spans of real SDK calls to an https collector on
loopback whose certificate only that CA vouches for; without the bundle (or with another CA) nothing is sent."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.loopback import Handler, make_tls, serving
from tests.support.mcp_client import call_tool
from tests.unit.test_observe_manifest import manifest_at, spec_of
from tests.unit.test_proxy_observe import DEADLINE, base_config, proxy, upstream_server
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.providers.workload.create_args import container_labels, proxy_config
from toolhive_apply.proxy.config import load_config
from toolhive_apply.proxy.metrics import DROPPED, Metrics
from toolhive_apply.proxy.otlp import Exporter
from toolhive_apply.proxy.tracing import Span, SpanContext
from toolhive_apply.views.manifest import _optional_fields
from toolhive_apply.views.workloads import runconfig


def ok(handler: Handler) -> None:
    handler.answer(200, b"", {"Content-Type": "application/x-protobuf"})


def telemetry_for(port: int, **extra: Any) -> dict[str, Any]:
    return {"endpoint": f"https://127.0.0.1:{port}", "tracingEnabled": True, "samplingRate": "1", **extra}


def test_spans_reach_an_https_collector_trusted_through_the_manifests_ca_bundle(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    with serving({"/v1/traces": ok}, tls) as collector, upstream_server() as upstream:
        workload = {"telemetry_config": telemetry_for(collector.port, caCertPath="./tls/ca.pem")}
        spec = spec_of(manifest_at(tmp_path, workload))
        assert spec["telemetry"]["caCertPath"] == str((tmp_path / "tls" / "ca.pem").resolve())
        assert len(spec["telemetry"]["caCertSha256"]) == 64
        assert "BEGIN CERTIFICATE" not in json.dumps(spec["telemetry"])
        assert "BEGIN CERTIFICATE" not in json.dumps(container_labels(spec, "s"))  # the text is in no label
        section = proxy_config(spec)["telemetry"]
        assert section["ca_pem"] == tls.ca.read_text()
        assert "caCertPath" not in section and "caCertSha256" not in section
        with proxy(base_config(upstream.port, telemetry=section), {}) as port:
            assert call_tool(f"http://127.0.0.1:{port}/mcp", "echo", {"text": "over tls"}) == "over tls"
            deadline = time.monotonic() + DEADLINE
            while not any(b"tools/call echo" in r.body for r in collector.received):
                assert time.monotonic() < deadline, "no span reached the https collector"
                time.sleep(0.05)
    posted = next(r for r in collector.received if b"tools/call echo" in r.body)
    assert posted.headers["Content-Type"] == "application/x-protobuf"
    names = [
        s.name
        for rs in ExportTraceServiceRequest.FromString(posted.body).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert "tools/call echo" in names
    exported = runconfig(spec, "s")["telemetry_config"]
    assert "caCertPath" not in exported and "caCertSha256" not in exported  # not ToolHive RunConfig keys
    assert _optional_fields(spec)["telemetry_config"]["caCertPath"] == spec["telemetry"]["caCertPath"]


@pytest.mark.parametrize("trust", ["system store", "another CA"])
def test_without_the_bundle_the_collectors_certificate_is_refused_and_the_batch_dropped(
    tmp_path: Path, trust: str
) -> None:
    tls = make_tls(tmp_path / "tls")
    other = make_tls(tmp_path / "other")
    extra = {"ca_pem": other.ca.read_text()} if trust == "another CA" else {}
    with serving({"/v1/traces": ok}, tls) as collector:
        raw = base_config(1, telemetry=telemetry_for(collector.port, **extra))
        config = load_config(json.dumps(raw), {}).telemetry
        assert config is not None and config.ca_pem == extra.get("ca_pem")
        metrics = Metrics("obs")
        exporter = Exporter(config, metrics)
        exporter.submit(Span("tools/call echo", SpanContext("ab" * 16, "cd" * 8, True), None, 1, 2))
        exporter.close(DEADLINE)
    assert collector.received == []  # the handshake failed before any request
    assert metrics.snapshot().counters[DROPPED] == {(("server", "obs"), ("signal", "spans")): 1}


@pytest.mark.parametrize(
    ("telemetry", "files", "message"),
    [
        ({"endpoint": "https://c:4318", "caCertPath": "./missing.pem"}, {}, "cannot read"),
        ({"endpoint": "https://c:4318", "caCertPath": "./key.pem"}, {"key.pem": "KEY"}, "private key"),
        ({"endpoint": "https://c:4318", "caCertPath": "./junk.pem"}, {"junk.pem": "hello"}, "no PEM certificate"),
        ({"endpoint": "c:4318", "insecure": True, "caCertPath": "./ca.pem"}, {"ca.pem": "CA"}, "https collector"),
        ({"endpoint": "http://c:4318", "caCertPath": "./ca.pem"}, {"ca.pem": "CA"}, "https collector"),
    ],
)
def test_a_ca_bundle_the_proxy_could_not_use_is_refused_at_its_field(
    tmp_path: Path, telemetry: dict[str, Any], files: dict[str, str], message: str
) -> None:
    tls = make_tls(tmp_path / "tls")
    contents = {"KEY": tls.ca.read_text() + tls.key.read_text(), "CA": tls.ca.read_text()}
    for name, content in files.items():
        (tmp_path / name).write_text(contents.get(content, content))
    with pytest.raises(ManifestError) as caught:
        load_manifest([manifest_at(tmp_path, {"telemetry_config": telemetry})])
    text = str(caught.value)
    assert "workloads[0].telemetry_config.caCertPath" in text and message in text and "stack.yaml:" in text
    assert "PRIVATE" not in text and "BEGIN" not in text


def test_a_local_jwks_and_a_collector_ca_both_reach_the_proxy(tmp_path: Path) -> None:
    from tests.unit.test_endpoint_auth import oidc

    tls = make_tls(tmp_path / "tls")
    workload = {
        "host": "0.0.0.0",
        "oidc": oidc(tmp_path),
        "telemetry_config": telemetry_for(4318, caCertPath="tls/ca.pem"),
    }
    written = proxy_config(spec_of(manifest_at(tmp_path, workload)))
    assert written["auth"]["oidc"]["jwks"]["keys"][0]["kid"] == "k1"
    assert written["telemetry"]["ca_pem"] == tls.ca.read_text()
