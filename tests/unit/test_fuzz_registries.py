"""Property: whatever a registry serves, toolhive-apply answers with a catalogue or its own error, never a crash.

Registries are input from someone else (a URL, an API, a file in a repository). Thousands of mutated documents in
both formats (random values in every field, byte flips and truncations), mutated MCP Registry API pages served
over HTTP on 127.0.0.1, and registry values that look like Jinja2 templates must end as a Catalogue, a resolved
manifest or a ToolhiveApplyError; a template in registry data is never rendered.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.mutations import paths, replaced
from tests.unit.test_fuzz_manifests import ESCAPES, values
from toolhive_apply.errors import ToolhiveApplyError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.ports import assign_ports
from toolhive_apply.providers.workload.spec import workload_spec
from toolhive_apply.registry import sources
from toolhive_apply.registry.formats import parse_catalogue
from toolhive_apply.registry.resolve import resolve_registries
from toolhive_apply.registry.sources import FetchPolicy
from toolhive_apply.views.registry import registry_details, server_view, servers_listing

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_TEXT = (ROOT / "examples" / "registry" / "registry.json").read_bytes()
UPSTREAM: dict[str, Any] = json.loads(UPSTREAM_TEXT)
LEGACY: dict[str, Any] = json.loads((ROOT / "tests" / "fixtures" / "registries" / "legacy.json").read_text())
SCRATCH = Path(tempfile.mkdtemp(prefix="thv-fuzz-registries-"))
atexit.register(shutil.rmtree, SCRATCH, True)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LOOPBACK = FetchPolicy(allow_private_ip=True)  # these registries are served on 127.0.0.1


SEEDS = [("upstream", UPSTREAM, p) for p in paths(UPSTREAM)] + [("legacy", LEGACY, p) for p in paths(LEGACY)]


def _use(catalogue: Any) -> None:
    """Everything the CLI does with a catalogue it got: the export views must work on whatever parsed."""
    json.dumps(registry_details("r", "file", "/x", catalogue))
    json.dumps(servers_listing(catalogue))
    for entry in catalogue.servers:
        json.dumps(server_view(entry))
        catalogue.find(entry.name)
        catalogue.find(entry.short_name)


@FUZZ
@given(seed=st.sampled_from(SEEDS), value=values)
def test_structural_mutations_of_a_registry_only_ever_raise_its_own_error(seed: Any, value: Any) -> None:
    _, document, path = seed
    mutated = replaced(document, path, value)
    try:
        catalogue = parse_catalogue("fuzzed", mutated)
    except ToolhiveApplyError as error:
        assert "fuzzed" in error.message  # names the registry
        return
    _use(catalogue)


@FUZZ
@given(
    position=st.integers(min_value=0, max_value=len(UPSTREAM_TEXT) - 1),
    replacement=st.binary(min_size=0, max_size=6),
    cut=st.booleans(),
)
def test_byte_mutations_of_a_registry_file_only_ever_raise_its_own_error(
    position: int, replacement: bytes, cut: bool
) -> None:
    data = UPSTREAM_TEXT[:position] if cut else UPSTREAM_TEXT[:position] + replacement + UPSTREAM_TEXT[position + 1 :]
    path = SCRATCH / "bytes.json"
    path.write_bytes(data)
    with contextlib.suppress(ToolhiveApplyError):
        _use(parse_catalogue("fuzzed", sources.load_file(path, "fuzzed").document))


# -- resolution: a manifest that uses a fuzzed registry -----------------------------------------------------------
WORKLOADS = {  # what each format's seed document offers
    "upstream": [
        {"name": "by-full-name", "registry": "cat", "server": "io.github.toolhive-apply/time"},
        {"name": "by-short-name", "registry": "cat", "server": "echo", "env_vars": {"GREETING": "hi"}},
    ],
    "legacy": [
        {"name": "echo", "registry": "cat", "server": "echo", "secrets": [{"name": "token", "target": "API_TOKEN"}]},
        {"name": "remote", "registry": "cat", "server": "docs"},
    ],
}


def _manifest(workloads: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "fuzz"},
        "registries": [{"name": "cat", "local_path": "./registry.json"}],
        "secrets": [{"key": "token", "present": True}],
        "workloads": workloads,
    }


def _resolve(kind: str, document: Any) -> None:
    """Resolve a manifest against `document`, then build what the plan builds from each resolved workload."""
    directory = SCRATCH / "resolve"
    directory.mkdir(exist_ok=True)
    (directory / "registry.json").write_text(json.dumps(document), encoding="utf-8")
    (directory / "stack.yaml").write_text(yaml.safe_dump(_manifest(WORKLOADS[kind])), encoding="utf-8")
    try:
        manifest = resolve_registries(load_manifest([directory / "stack.yaml"], environ={})).manifest
    except ToolhiveApplyError:
        return
    ports = assign_ports("fuzz", ((w.name, w.proxy_port) for w in manifest.workloads))
    for workload in manifest.workloads:
        json.dumps(workload_spec(workload, manifest, ports[workload.name], None).document())


@FUZZ
@given(seed=st.sampled_from(SEEDS), value=values)
def test_a_manifest_resolved_against_a_mutated_registry_ends_in_a_plan_input_or_its_own_error(
    seed: Any, value: Any
) -> None:
    kind, document, path = seed
    _resolve(kind, replaced(document, path, value))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=st.sampled_from(ESCAPES))
def test_templates_in_registry_data_are_never_rendered(template: str) -> None:
    """Only the manifest's own strings are templates: a registry's args, defaults and names are data."""
    document = json.loads(json.dumps(LEGACY))
    echo = document["servers"]["echo"]
    echo["args"] = ["--flag", template]
    echo["env_vars"][1]["default"] = template
    echo["description"] = template
    directory = SCRATCH / "templates"
    directory.mkdir(exist_ok=True)
    (directory / "registry.json").write_text(json.dumps(document), encoding="utf-8")
    (directory / "stack.yaml").write_text(yaml.safe_dump(_manifest(WORKLOADS["legacy"][:1])), encoding="utf-8")
    workload = resolve_registries(load_manifest([directory / "stack.yaml"], environ={})).manifest.workloads[0]
    assert list(workload.cmd_arguments) == ["--flag", template]
    assert workload.env_vars["GREETING"] == template


# -- an MCP Registry API that answers nonsense --------------------------------------------------------------------
class _PageHandler(BaseHTTPRequestHandler):
    pages: ClassVar[list[bytes]] = []

    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        body = self.pages.pop(0) if self.pages else b'{"servers": [], "metadata": {}}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def api_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


PAGE = {"servers": [{"server": UPSTREAM["data"]["servers"][0]}], "metadata": {"nextCursor": "page2"}}
PAGE_PATHS = paths(PAGE)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(PAGE_PATHS), value=values, raw=st.none() | st.binary(max_size=40))
def test_mutated_api_pages_only_ever_raise_its_own_error(
    api_base: str, monkeypatch: pytest.MonkeyPatch, path: tuple[Any, ...], value: Any, raw: bytes | None
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(SCRATCH / "cache"))
    first = raw if raw is not None else json.dumps(replaced(PAGE, path, value)).encode()
    _PageHandler.pages[:] = [first, json.dumps({"servers": [], "metadata": {}}).encode()]
    try:
        fetched = sources.load_remote(f"api:{api_base}", "fuzzed", ttl=0, timeout=5, policy=LOOPBACK)
        _use(parse_catalogue("fuzzed", fetched.document))
    except ToolhiveApplyError as error:
        assert "fuzzed" in error.message
