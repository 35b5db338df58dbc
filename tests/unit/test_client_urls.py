"""One rule for where a client connects (client files, export, readiness), and one meaning per port constant."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from toolhive_apply.clients import get_client
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.model import DEFAULT_TARGET_PORT
from toolhive_apply.providers.client.provider import workload_entries
from toolhive_apply.providers.workload.create_args import container_labels
from toolhive_apply.providers.workload.spec import PROXY_LISTEN_PORT, client_host, workload_spec, workload_url
from toolhive_apply.providers.workload.spec_model import WorkloadSpec
from toolhive_apply.views.workloads import workload_entry


@pytest.mark.parametrize(
    ("host", "connect", "url"),
    [
        ("127.0.0.1", "127.0.0.1", "http://127.0.0.1:18080/mcp"),
        ("0.0.0.0", "127.0.0.1", "http://127.0.0.1:18080/mcp"),  # a wildcard: this machine's loopback reaches it
        ("::", "127.0.0.1", "http://127.0.0.1:18080/mcp"),
        ("192.168.1.5", "192.168.1.5", "http://192.168.1.5:18080/mcp"),  # only there: 127.0.0.1 would not answer
        ("::1", "::1", "http://[::1]:18080/mcp"),
    ],
)
def test_a_client_connects_where_the_port_is_published(host: str, connect: str, url: str) -> None:
    spec = WorkloadSpec.from_document(
        {"name": "web", "host": host, "proxy_port": 18080, "proxy_mode": "streamable-http"}
    )
    assert client_host(spec) == connect
    assert workload_url(spec) == url


def test_client_files_export_and_readiness_use_the_same_address(tmp_path: Path) -> None:
    data = {
        "apiVersion": "toolhive-apply/v1",
        "workloads": [{"name": "web", "image": "x", "host": "192.168.1.5", "proxy_port": 18080, "auth": "anonymous"}],
    }
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    manifest = load_manifest([path])
    entry = workload_entries(get_client("cursor"), ["default"], manifest)["web"]
    assert entry["url"] == "http://192.168.1.5:18080/mcp"
    spec = workload_spec(manifest.workloads[0], manifest, 18080, None)
    summary = {"Names": ["/web"], "Labels": container_labels(spec, "s"), "State": "running"}
    assert workload_entry(summary)["url"] == "http://192.168.1.5:18080/mcp"


def test_the_proxys_port_and_the_servers_default_port_are_different_numbers() -> None:
    """Two meanings, two numbers: code that used one for the other cannot pass the tests by coincidence."""
    assert PROXY_LISTEN_PORT != DEFAULT_TARGET_PORT
