"""render kubernetes: every example renders, every document validates against the CRD we ship (unknown fields
are errors), secrets are references only, and the worked example's checked-in output is what render writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, CliResult
from tests.conftest import run_cli as run_subprocess
from toolhive_apply.interop.crd_validate import to_json_schema, validate_core, validate_document
from toolhive_apply.interop.kubernetes_render import render_manifest
from toolhive_apply.manifest import load_manifest
from toolhive_apply.registry.resolve import resolve_registries


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI in process (its error boundary and exit codes included): a subprocess per render is seconds."""
    from toolhive_apply.cli.app import main

    def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err, captured.err
        return CliResult(int(exited.value.code or 0), captured.out, captured.err)

    return run


EXAMPLES = sorted(d for d in (ROOT / "examples").iterdir() if d.is_dir() and any(d.glob("*.yaml")))


def _render(path: Path, namespace: str | None = "mcp") -> Any:
    return render_manifest(resolve_registries(load_manifest([path], environ={})).manifest, namespace)


def _read_dir(directory: Path) -> dict[str, Any]:
    return {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.yaml"))}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_renders_and_every_written_document_validates(
    run_cli: Any, example: Path, tmp_path: Path
) -> None:
    result = run_cli("render", "kubernetes", str(example), "--out", str(tmp_path), "--namespace", "mcp")
    assert result.code == 0, result
    written = _read_dir(tmp_path)
    kustomization = written.pop("kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(written)
    assert written
    for name, document in written.items():
        check = validate_core if document["kind"] == "ConfigMap" else validate_document
        assert check(document, name) == [], name
        assert document["metadata"]["namespace"] == "mcp"


def test_the_validator_refuses_what_the_api_server_would_prune_or_reject() -> None:
    good = {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer", "metadata": {"name": "a"},
            "spec": {"image": "x", "transport": "stdio"}}  # fmt: skip
    assert validate_document(good, "a") == []
    cases = {
        "spec: Additional properties": {**good, "spec": {"image": "x", "imgae": "y"}},
        "spec.transport": {**good, "spec": {"image": "x", "transport": "websocket"}},
        "spec.proxyPort": {**good, "spec": {"image": "x", "proxyPort": 70000}},
        "spec: 'image' is a required property": {**good, "spec": {}},
        "metadata.name": {**good, "metadata": {"name": "Upper_Case"}},
        "spec.env[0]": {**good, "spec": {"image": "x", "env": [{"name": "A", "value": "b", "extra": 1}]}},
    }
    for expected, document in cases.items():
        problems = [str(p) for p in validate_document(document, "doc")]
        assert any(expected.split(":")[0] in p and expected.split(": ", 1)[-1][:20] in p for p in problems), (
            expected, problems)  # fmt: skip
    wrong_version = {**good, "apiVersion": "toolhive.stacklok.dev/v2"}
    assert "no shipped CRD" in str(validate_document(wrong_version, "doc")[0])


def test_kubernetes_extensions_change_validation_as_the_api_server_does() -> None:
    schema = to_json_schema(
        {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "maybe": {"type": "string", "nullable": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "count": {"type": "integer", "format": "int32"},
            },
        }
    )
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"port": 8080, "maybe": None, "free": {"anything": [1]}, "count": 3})
    assert validator.is_valid({"port": "http"})
    assert not validator.is_valid({"port": 1.5})
    assert not validator.is_valid({"count": 2**31})
    assert not validator.is_valid({"other": 1})


def test_a_secret_canary_never_reaches_rendered_output(tmp_path: Path) -> None:
    """In a real subprocess: nothing in process has registered the value for scrubbing beforehand."""
    canary = "canary-9f3b2c7e-value-never-rendered"
    manifest = tmp_path / "m" / "stack.yaml"
    manifest.parent.mkdir()
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "toolhive-apply/v1", "settings": {"stack": "canary"},
        "secrets": [{"key": "tok", "from": {"env": "CANARY_TOKEN"}}, {"key": "hdr", "from": {"env": "CANARY_TOKEN"}}],
        "workloads": [
            {"name": "a", "image": "x:1", "secrets": [{"name": "tok", "target": "TOKEN"}]},
            {"name": "r", "url": "https://mcp.example.com/mcp", "headers": [{"name": "X-Key", "secret": "hdr"}]},
        ],
    }), encoding="utf-8")  # fmt: skip
    out = tmp_path / "out"
    result = run_subprocess(
        "render", "kubernetes", str(manifest.parent), "--out", str(out), env={"CANARY_TOKEN": canary}
    )
    assert result.code == 0, result
    assert canary not in result.output
    texts = [p.read_text(encoding="utf-8") for p in out.iterdir()]
    assert texts and all(canary not in t for t in texts)
    server = yaml.safe_load((out / "mcpserver-a.yaml").read_text(encoding="utf-8"))
    assert server["spec"]["secrets"] == [{"name": "tok", "key": "value", "targetEnvName": "TOKEN"}]


def test_vault_secrets_become_the_injector_annotations_toolhive_documents() -> None:
    rendering = _render(ROOT / "examples" / "gitops")
    server = next(d for d in rendering.documents if d.kind == "MCPServer").body
    assert "secrets" not in server["spec"]
    notes = server["spec"]["resourceOverrides"]["proxyDeployment"]["podTemplateMetadataOverrides"]["annotations"]
    path = "secret/data/toolhive/gitops-demo/github-token"
    assert notes["vault.hashicorp.com/agent-inject"] == "true"
    assert notes["vault.hashicorp.com/agent-inject-secret-github-token-0"] == path
    template = notes["vault.hashicorp.com/agent-inject-template-github-token-0"]
    assert f'with secret "{path}"' in template
    assert "GITHUB_PERSONAL_ACCESS_TOKEN={{ .Data.data.value }}" in template
    assert all(len(k.split("/", 1)[1]) <= 63 for k in notes)


def test_what_the_operator_cannot_take_is_a_warning_per_resource() -> None:
    warnings = [str(w) for w in _render(ROOT / "examples" / "full").warnings]
    for resource, words in [
        ("workload/github", "egress allow-list"),
        ("workload/files", "as a file"),
        ("workload/files", "must exist on the node"),
        ("client/cursor", "client config files"),
        ("registry/company", "static URL"),
    ]:
        assert any(resource in w and words in w for w in warnings), (resource, words, warnings)


def test_the_worked_example_is_checked_in_as_render_writes_it(run_cli: Any, tmp_path: Path) -> None:
    """Golden files: each field of examples/kubernetes/rendered was checked against the v1beta1 CRDs."""
    example = ROOT / "examples" / "kubernetes"
    result = run_cli("render", "kubernetes", str(example), "--out", str(tmp_path), "--namespace", "mcp-tools")
    assert result.code == 0, result
    rendered = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.yaml")}
    checked_in = {p.name: p.read_text(encoding="utf-8") for p in (example / "rendered").glob("*.yaml")}
    assert rendered == checked_in
    assert "Needs: secret github-token: Secret github-token key value" in result.stderr


def test_a_second_render_removes_files_of_resources_that_left_the_manifest(run_cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out).mkdir()
    (out / "keep-me.yaml").write_text("# not ours\n", encoding="utf-8")
    assert run_cli("render", "kubernetes", str(ROOT / "examples" / "full"), "--out", str(out)).code == 0
    assert (out / "mcpserver-files.yaml").exists()
    assert run_cli("render", "kubernetes", str(ROOT / "examples" / "minimal"), "--out", str(out)).code == 0
    assert not (out / "mcpserver-files.yaml").exists()
    assert (out / "keep-me.yaml").exists()


def test_a_remote_bearer_token_is_an_external_auth_config_reading_a_secret() -> None:
    documents = {(d.kind, d.name): d.body for d in _render(ROOT / "examples" / "full").documents}
    auth = documents[("MCPExternalAuthConfig", "docs-bearer")]["spec"]
    assert auth == {"type": "bearerToken", "bearerToken": {"tokenSecretRef": {"name": "docs-token", "key": "value"}}}
    assert documents[("MCPRemoteProxy", "docs")]["spec"]["externalAuthConfigRef"] == {"name": "docs-bearer"}


def test_the_ci_example_renders_with_the_command_the_golden_test_runs() -> None:
    workflow = ROOT / "examples" / "kubernetes" / ".github" / "workflows" / "render.yml"
    steps = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]["render"]["steps"]
    commands = [s["run"] for s in steps if "run" in s]
    assert (
        "toolhive-apply render kubernetes examples/kubernetes --out examples/kubernetes/rendered --namespace mcp-tools"
        in commands
    )
    assert "git diff --exit-code -- examples/kubernetes/rendered" in commands


def test_two_workloads_that_fold_to_one_kubernetes_name_are_one_clear_error(run_cli: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "stack.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "toolhive-apply/v1",
        "workloads": [{"name": "Echo", "image": "x:1"}, {"name": "echo", "image": "x:1"}],
    }), encoding="utf-8")  # fmt: skip
    result = run_cli("render", "kubernetes", str(manifest), "--out", str(tmp_path / "out"))
    assert result.code == 1
    assert "two MCPServer resources would both be named 'echo'" in result.stderr
    assert not (tmp_path / "out").exists()
