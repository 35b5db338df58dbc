"""What the engine gives the proxy and the containers: session TTL and Host from the manifest, bounded logs, limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.model import duration_seconds
from toolhive_apply.providers.workload.create_args import (
    HELPER_MEMORY_LIMIT,
    HELPER_PIDS_LIMIT,
    gate_host_config_args,
    helper_host_config_args,
    host_config_args,
    proxy_config,
    proxy_host_config_args,
)
from toolhive_apply.providers.workload.spec import workload_spec
from toolhive_apply.proxy.config import DEFAULT_SESSION_TTL, load_config


def spec_of(tmp_path: Path, extra: str) -> dict[str, object]:
    manifest_file = tmp_path / "toolhive.yaml"
    manifest_file.write_text(
        f"apiVersion: toolhive-apply/v1\nworkloads:\n  - name: web\n    image: example/web:1\n{extra}", encoding="utf-8"
    )
    manifest = load_manifest([manifest_file])
    return workload_spec(manifest.workloads[0], manifest, 18080, None)


@pytest.mark.parametrize(("text", "seconds"), [("2h", 7200), ("30m", 1800), ("1h30m", 5400), ("90s", 90)])
def test_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


def test_session_ttl_reaches_the_proxy_config_and_is_absent_from_specs_that_do_not_set_it(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, "    session_ttl: 1h30m\n")
    config = proxy_config(spec)
    assert config["session_ttl"] == 5400
    assert load_config(json.dumps(config), {}).session_ttl == 5400
    plain = spec_of(tmp_path, "")
    assert "session_ttl" not in plain and "session_ttl" not in proxy_config(plain)  # hashes of old specs unchanged
    assert load_config(json.dumps(proxy_config(plain)), {}).session_ttl == DEFAULT_SESSION_TTL


@pytest.mark.parametrize("bad", ["0s", "0h0m", "2 h", "2d", "-1h", "1.5h", "h", ""])
def test_a_bad_session_ttl_is_a_positioned_manifest_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ManifestError, match="session_ttl"):
        spec_of(tmp_path, f"    session_ttl: '{bad}'\n")


def test_the_proxy_accepts_the_workloads_own_host_besides_loopback(tmp_path: Path) -> None:
    assert "allowed_hosts" not in proxy_config(spec_of(tmp_path, ""))  # 127.0.0.1: loopback is always accepted
    config = proxy_config(spec_of(tmp_path, "    host: 192.168.10.5\n    auth: anonymous\n"))
    assert config["allowed_hosts"] == ["192.168.10.5"]
    assert load_config(json.dumps(config), {}).allowed_hosts == ("192.168.10.5",)


def test_every_container_gets_a_bounded_log_and_helpers_bounded_memory_and_processes(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, "")
    log = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    server = host_config_args(spec, "net")
    assert server["log_config"] == log and "mem_limit" not in server and "pids_limit" not in server
    gate = gate_host_config_args(("/var/run/docker.sock", None), "p")
    for helper in (helper_host_config_args("net"), proxy_host_config_args(spec, "net"), gate):
        assert helper["log_config"] == log
        assert helper["mem_limit"] == helper["memswap_limit"] == HELPER_MEMORY_LIMIT
        assert helper["pids_limit"] == HELPER_PIDS_LIMIT
