"""Registries: both formats, file/URL/API sources over a real HTTP server on 127.0.0.1, and resolution."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import ROOT, run_cli, write_manifest
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.registry import sources
from toolhive_apply.registry.formats import RegistryError, parse_catalogue
from toolhive_apply.registry.resolve import resolve_registries
from toolhive_apply.registry.sources import FetchPolicy

UPSTREAM = json.loads((ROOT / "examples" / "registry" / "registry.json").read_text())
LEGACY = json.loads((ROOT / "tests" / "fixtures" / "registries" / "legacy.json").read_text())
SWAGGER = json.loads((ROOT / "tests" / "fixtures" / "toolhive-api.components.json").read_text())

LOOPBACK = FetchPolicy(allow_private_ip=True)  # these registries are served on 127.0.0.1


class RegistryHandler(BaseHTTPRequestHandler):
    hits: ClassVar[dict[str, int]] = {}

    def log_message(self, *args: Any) -> None:
        return None

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            self.wfile.write(body)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        self.hits[path] = self.hits.get(path, 0) + 1
        if path == "/registry.json":
            if self.headers.get("If-None-Match") == '"v1"':
                self._send(304, b"")
            else:
                self._send(200, json.dumps(UPSTREAM).encode(), {"ETag": '"v1"'})
        elif path == "/slow.json":
            time.sleep(3)
            self._send(200, b"{}")
        elif path == "/broken.json":
            self._send(500, b"boom")
        elif path == "/invalid.json":
            self._send(200, b"{not json")
        elif path == "/big.json":
            self._send(200, b"[" + b"0," * 40_000 + b"0]")
        elif path == "/api/v0.1/servers":
            servers = UPSTREAM["data"]["servers"]
            if "cursor=page2" in query:
                self._send(200, json.dumps({"servers": [{"server": servers[1]}], "metadata": {}}).encode())
            else:
                body = {"servers": [{"server": servers[0]}], "metadata": {"nextCursor": "page2"}}
                self._send(200, json.dumps(body).encode())
        else:
            self._send(404, b"")


@pytest.fixture
def http_base(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), RegistryHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RegistryHandler.hits.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_both_formats_are_read_into_one_catalogue() -> None:
    upstream = parse_catalogue("u", UPSTREAM)
    legacy = parse_catalogue("l", LEGACY)
    echo = upstream.find("echo")
    assert echo is not None and echo.image == "toolhive-apply-test/http:latest" and echo.target_port == 8080
    assert [v.name for v in echo.env_vars if v.required] == ["GREETING"]
    assert upstream.find("io.github.toolhive-apply/time") is not None
    assert legacy.find("echo") is not None and legacy.find("docs") is not None
    docs = legacy.find("docs")
    assert docs is not None and docs.is_remote and docs.url == "https://docs.example.com/mcp"


def test_an_invalid_document_names_the_registry_the_server_and_the_field() -> None:
    broken = json.loads(json.dumps(UPSTREAM))
    broken["data"]["servers"][0]["packages"][0]["transport"] = {"type": 42}
    expected = (
        r"registry 'mine' is not a valid upstream registry: server 'io.github.toolhive-apply/echo', "
        r"field data.servers\[0\].packages\[0\].transport"
    )
    with pytest.raises(RegistryError, match=expected):
        parse_catalogue("mine", broken)
    with pytest.raises(RegistryError, match="neither the upstream MCP registry format"):
        parse_catalogue("mine", {"hello": "world"})


def test_a_url_source_is_fetched_once_cached_and_revalidated_with_its_etag(http_base: str) -> None:
    first = sources.load_remote(f"url:{http_base}/registry.json", "r", ttl=3600, policy=LOOPBACK)
    again = sources.load_remote(f"url:{http_base}/registry.json", "r", ttl=3600, policy=LOOPBACK)
    assert first.document == again.document == UPSTREAM
    assert RegistryHandler.hits["/registry.json"] == 1  # the second read came from the fresh cache
    stale = sources.load_remote(f"url:{http_base}/registry.json", "r", ttl=0, policy=LOOPBACK)
    assert stale.document == UPSTREAM and stale.warning is None
    assert RegistryHandler.hits["/registry.json"] == 2  # revalidated: 304 with If-None-Match


def test_an_api_source_follows_cursor_paging(http_base: str) -> None:
    fetched = sources.load_remote(f"api:{http_base}/api", "r", ttl=0, policy=LOOPBACK)
    catalogue = parse_catalogue("r", fetched.document)
    assert sorted(s.name for s in catalogue.servers) == [
        "io.github.toolhive-apply/echo",
        "io.github.toolhive-apply/time",
    ]
    assert RegistryHandler.hits["/api/v0.1/servers"] == 2


@pytest.mark.parametrize(
    ("path", "message"),
    [("/broken.json", "HTTP 500"), ("/invalid.json", "not valid JSON"), ("/big.json", "larger than")],
)
def test_bad_remote_sources_fail_clearly(
    http_base: str, monkeypatch: pytest.MonkeyPatch, path: str, message: str
) -> None:
    monkeypatch.setattr(sources, "MAX_BYTES", 50_000)
    with pytest.raises(RegistryError, match=message):
        sources.load_remote(f"url:{http_base}{path}", "r", ttl=0, policy=LOOPBACK)


def test_a_slow_source_hits_the_timeout(http_base: str) -> None:
    with pytest.raises(RegistryError, match="unreachable"):
        sources.load_remote(f"url:{http_base}/slow.json", "r", ttl=0, timeout=0.5, policy=LOOPBACK)


def test_an_unreachable_source_falls_back_to_the_cache_with_a_warning(http_base: str) -> None:
    sources.load_remote(f"url:{http_base}/registry.json", "r", ttl=0, policy=LOOPBACK)
    key = f"url:{http_base}/registry.json"
    data_path, _ = sources._cache_paths(key)
    down = "http://127.0.0.1:9/registry.json"  # discard port: nothing listens
    sources._write_cache(*sources._cache_paths(f"url:{down}"), UPSTREAM, {"fetched_at": 0})
    fetched = sources.load_remote(f"url:{down}", "r", ttl=0, timeout=1, policy=LOOPBACK)
    assert fetched.document == UPSTREAM
    assert fetched.warning is not None and "using the cached copy" in fetched.warning
    assert data_path.exists()
    with pytest.raises(RegistryError, match="unreachable"):
        sources.load_remote("url:http://127.0.0.1:9/never-cached.json", "r", ttl=0, timeout=1, policy=LOOPBACK)


def _manifest(tmp_path: Path, workload: dict[str, Any], registry_file: str = "legacy.json") -> Path:
    shutil.copy(ROOT / "tests" / "fixtures" / "registries" / "legacy.json", tmp_path / "legacy.json")
    shutil.copy(ROOT / "examples" / "registry" / "registry.json", tmp_path / "upstream.json")
    return write_manifest(
        tmp_path,
        "reg",
        [workload],
        registries=[{"name": "cat", "local_path": f"./{registry_file}"}],
        secrets=[{"key": "token", "present": True}],
    )


def test_a_required_secret_variable_must_come_from_a_secret(tmp_path: Path) -> None:
    path = _manifest(tmp_path, {"name": "w", "registry": "cat", "server": "echo"})
    with pytest.raises(ManifestError) as missing:
        resolve_registries(load_manifest([path]))
    assert "requires environment variable API_TOKEN; add secrets: [{name: ..., target: API_TOKEN}]" in str(
        missing.value.lines()
    )
    path = _manifest(tmp_path, {"name": "w", "registry": "cat", "server": "echo", "env_vars": {"API_TOKEN": "x"}})
    with pytest.raises(ManifestError) as plain:
        resolve_registries(load_manifest([path]))
    assert "API_TOKEN is a secret for server 'echo'" in plain.value.lines()[0]
    path = _manifest(
        tmp_path,
        {"name": "w", "registry": "cat", "server": "echo", "secrets": [{"name": "token", "target": "API_TOKEN"}]},
    )
    resolved = resolve_registries(load_manifest([path]))
    workload = resolved.manifest.workloads[0]
    assert workload.image == "toolhive-apply-test/http:latest" and workload.transport == "streamable-http"
    assert workload.env_vars == {"GREETING": "hello from legacy"}  # the default applied
    assert resolved.explain["w"]["image"] == "registry cat/echo"


def test_workload_values_win_over_the_registry_and_tools_are_checked(tmp_path: Path) -> None:
    entry = {"name": "w", "registry": "cat", "server": "echo", "target_port": 9090, "env_vars": {"GREETING": "mine"}}
    path = _manifest(tmp_path, entry, "upstream.json")
    workload = resolve_registries(load_manifest([path])).manifest.workloads[0]
    assert workload.target_port == 9090 and workload.env_vars["GREETING"] == "mine"
    path = _manifest(tmp_path, {**entry, "tools": ["echo", "nonexistent"]}, "upstream.json")
    with pytest.raises(ManifestError, match=r"tool 'nonexistent' is not offered"):
        resolve_registries(load_manifest([path]))
    path = _manifest(tmp_path, {"name": "w", "registry": "cat", "server": "nope"}, "upstream.json")
    with pytest.raises(ManifestError, match="'nope' in registry 'cat': not found"):
        resolve_registries(load_manifest([path]))


def _schema_props(name: str) -> set[str]:
    return set(SWAGGER["components"]["schemas"][name]["properties"])


@pytest.mark.docker
def test_registry_workloads_apply_export_and_a_registry_change_replaces_dependents(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    registry = json.loads(json.dumps(UPSTREAM))
    (tmp_path / "registry.json").write_text(json.dumps(registry))
    path = write_manifest(
        tmp_path,
        stack,
        [
            {"name": f"{stack}-echo", "registry": "local", "server": "echo", "env_vars": {"GREETING": "hi"}},
            {"name": f"{stack}-time", "registry": "local", "server": "time"},
        ],
        registries=[{"name": "local", "local_path": "./registry.json"}],
    )
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied
    assert "registry/local: recorded" in applied.stdout

    listing = json.loads(run_cli("export", "registries", "--stack", stack).stdout)["registries"]
    assert listing == [
        {
            "name": "local",
            "version": "1.0.0",
            "last_updated": "2026-11-29T00:00:00Z",
            "server_count": 2,
            "type": "file",
            "source": str(tmp_path / "registry.json"),
        }
    ]
    assert set(listing[0]) <= _schema_props("pkg_api_v1.registryInfo")
    details = json.loads(run_cli("export", "registry", "local", "--stack", stack).stdout)
    assert set(details) <= _schema_props("pkg_api_v1.getRegistryResponse")
    assert set(details["registry"]) <= _schema_props("registry.Registry")
    servers = json.loads(run_cli("export", "registry", "local", "servers", "--stack", stack).stdout)
    assert set(servers) == _schema_props("pkg_api_v1.listServersResponse")
    assert all(set(s) <= _schema_props("registry.ImageMetadata") for s in servers["servers"])
    one = json.loads(run_cli("export", "registry", "local", "server", "echo", "--stack", stack).stdout)
    assert one["is_remote"] is False and one["server"]["image"] == "toolhive-apply-test/http:latest"

    exported = run_cli("export", "--as-manifest", "--stack", stack)
    assert exported.code == 0, exported
    assert json.loads(exported.stdout)["registries"] == [
        {"name": "local", "local_path": str(tmp_path / "registry.json")}
    ]
    copy = tmp_path / "exported" / "stack.yaml"
    copy.parent.mkdir()
    copy.write_text(exported.stdout)
    round_trip = run_cli("plan", str(copy), "--detailed-exitcode")
    assert round_trip.code == 0, round_trip

    docker_api.tag("toolhive-apply-test/http:latest", "toolhive-apply-test/http", f"{stack}")
    try:
        server = registry["data"]["servers"][0]
        server["packages"][0]["identifier"] = f"toolhive-apply-test/http:{stack}"
        extensions = server["_meta"]["io.modelcontextprotocol.registry/publisher-provided"]["io.github.stacklok"]
        extensions[f"toolhive-apply-test/http:{stack}"] = extensions.pop("toolhive-apply-test/http:latest")
        (tmp_path / "registry.json").write_text(json.dumps(registry))
        plan = run_cli("plan", str(path), "--detailed-exitcode")
        assert plan.code == 2, plan
        reason = "config changed: image (from registry local/io.github.toolhive-apply/echo)"
        assert f"workload/{stack}-echo must be replaced ({reason})" in plan.stdout
        assert f"workload/{stack}-time" not in plan.stdout
    finally:
        docker_api.remove_image(f"toolhive-apply-test/http:{stack}")
