"""export --format kubernetes on data: live state (as export --as-manifest writes it) renders as the manifest it came
from renders, so a stack moved to Kubernetes from a running host is the stack that was declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.unit.test_export_manifest import every_section, live_of
from toolhive_apply.cli.export import _export_kubernetes
from toolhive_apply.interop.commands import render_to
from toolhive_apply.manifest import load_manifest
from toolhive_apply.views.manifest import as_manifest


def _documents(directory: Path) -> dict[str, Any]:
    found = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in directory.glob("*.yaml")}
    for document in found.values():
        document.get("spec", {}).pop("proxyPort", None)  # live state states the port the manifest left to derivation
    return found


def test_live_state_renders_as_the_manifest_it_came_from(tmp_path: Path, capsys: Any) -> None:
    original = load_manifest([every_section(tmp_path)], environ={"TOKEN_VALUE": "token-value-0123456789"})
    live, declared = tmp_path / "live", tmp_path / "declared"
    _export_kubernetes(as_manifest(live_of(original, tmp_path / "home")), live, "mcp")
    render_to(original, declared, "mcp")
    live_documents, declared_documents = _documents(live), _documents(declared)
    assert sorted(live_documents) == sorted(declared_documents)
    for name, document in live_documents.items():
        assert document == declared_documents[name], name
    assert "Rendered" in capsys.readouterr().out
    assert all("token-value" not in p.read_text(encoding="utf-8") for p in live.iterdir())
