"""Package images without Docker: strict parsing of uvx:// npx:// go://, the checks of runtime_config and
settings.packages, the generated Dockerfile (exec form only, no user text outside JSON), and the build hash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest as load
from toolhive_apply.manifest.package_checks import image_reference_problem, index_url_problem, requirement_problem
from toolhive_apply.manifest.package_refs import PackageRef, PackageRefError, parse_package_ref
from toolhive_apply.preflight import preflight
from toolhive_apply.providers.workload.package_build_model import PackageBuild, package_build
from toolhive_apply.providers.workload.package_specs import container_image, package_fields
from toolhive_apply.providers.workload.spec_model import WorkloadSpec


@pytest.mark.parametrize(
    ("text", "expected", "pinned"),
    [
        ("uvx://mcp-server-time", PackageRef("uvx", "mcp-server-time", None), False),
        ("uvx://mcp-server-time@2026.10.19", PackageRef("uvx", "mcp-server-time", "2026.10.19"), True),
        ("uvx://Mcp_Server.Time@1.0.0-rc1", PackageRef("uvx", "Mcp_Server.Time", "1.0.0rc1"), True),
        ("npx://@modelcontextprotocol/server-filesystem@2025.8.21", None, True),
        ("npx://server-everything@latest", PackageRef("npx", "server-everything", "latest"), False),
        ("npx://@scope/pkg", PackageRef("npx", "@scope/pkg", None), False),
        ("go://github.com/acme/mcp/cmd/server/v2@v2.1.0", None, True),
        ("go://github.com/acme/server@latest", PackageRef("go", "github.com/acme/server", None), False),
    ],
)
def test_package_refs_parse_as_their_ecosystems_name_them(text: str, expected: PackageRef | None, pinned: bool) -> None:
    ref = parse_package_ref(text)
    if expected is not None:
        assert ref == expected
    assert ref.pinned is pinned
    assert parse_package_ref(ref.text) == ref  # the canonical spelling parses back to itself


def test_executables_and_requirements_follow_toolhive() -> None:
    assert parse_package_ref("uvx://mcp-server-time@1.2").requirement == "mcp-server-time==1.2"
    assert parse_package_ref("npx://@a/b@1.2.3").requirement == "@a/b@1.2.3"
    go = parse_package_ref("go://github.com/acme/mcp/cmd/server/v2@v2.1.0")
    assert go.executable == "server" and go.requirement == "github.com/acme/mcp/cmd/server/v2@v2.1.0"
    assert parse_package_ref("go://github.com/acme/server").requirement == "github.com/acme/server@latest"


@pytest.mark.parametrize(
    "text",
    [
        "pip://x",
        "uvx://",
        "uvx:// x",
        'uvx://x"; rm -rf /',
        "uvx://x$(id)",
        "uvx://-e",
        "uvx://--index-url=http://evil",
        "uvx://x[extra]",
        "uvx://x @ https://evil/x.whl",
        "uvx://x@1.0;python_version<'4'",
        "uvx://x@>=1",
        "uvx://x@1.0\nRUN id",
        "uvx://ﬁle",  # a compatibility ligature NFKC would fold to "file"
        "npx://UpperCase",
        "npx://@scope",
        "npx://.hidden",
        "npx://x@^1.2.0",
        "npx://x@1.x",
        "npx://x@`id`",
        "npx://x@$(id)",
        "go://server",
        "go://github.com/a/../b",
        "go://github.com/a/b@1.2.3",
        "go://-x.com/a",
        "go://github.com/a/b c",
        "uvx://x@" + "1" * 80,
        "uvx://" + "a" * 300,
    ],
)
def test_anything_else_is_refused_before_it_reaches_a_dockerfile(text: str) -> None:
    with pytest.raises(PackageRefError):
        parse_package_ref(text)


def test_value_checks_refuse_what_could_break_out() -> None:
    assert image_reference_problem("python:3.13-slim") is None
    assert image_reference_problem("registry:5000/team/node:22@sha256:" + "a" * 64) is None
    for bad in ("python:3.13 AS x", "python\nRUN id", "Python:3", "x:$TAG", "--platform=x y"):
        assert image_reference_problem(bad) is not None, bad
    assert requirement_problem("mcp<2") is None and requirement_problem("pkg[extra]>=1.27,<2") is None
    for bad in ("mcp<2; os_name=='nt'", "x @ https://e/x.whl", "'x'", "x$(id)", "-r /etc/passwd"):
        assert requirement_problem(bad) is not None, bad
    assert index_url_problem("https://pypi.example/simple") is None
    assert "credentials" in str(index_url_problem("https://user:pw@pypi.example/simple"))
    assert index_url_problem("file:///etc") is not None and index_url_problem("https://x/ y") is not None


def _manifest(tmp_path: Path, workloads: list[dict[str, Any]], **settings: Any) -> Path:
    data = {"apiVersion": "toolhive-apply/v1", "settings": {"stack": "pk", **settings}, "workloads": workloads}
    path = tmp_path / "stack.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _issues(path: Path) -> list[str]:
    try:
        preflight(load([path]), offline=True)
    except ManifestError as error:
        return [str(issue) for issue in error.issues]
    return []


def test_bad_package_images_and_runtime_configs_are_errors_at_their_fields(tmp_path: Path) -> None:
    path = _manifest(
        tmp_path,
        [
            {"name": "a", "image": "uvx://x@>=1"},
            {"name": "b", "image": "npx://ok@1.0.0", "runtime_config": {"build_with": ["mcp<2"]}},
            {
                "name": "c",
                "image": "uvx://ok@1.0",
                "runtime_config": {
                    "builder_image": "python:3 AS evil",
                    "additional_packages": ["git"],
                    "build_with": ["mcp<2; os_name=='nt'"],
                    "runtime_env": {"PATH": "/x", "lower": "x", "OK": 'a"b', "FINE": "plain value"},
                },
            },
            {"name": "d", "image": "mcp/time:latest", "runtime_config": {"runtime_env": {"A": "b"}}},
        ],
    )
    issues = "\n".join(_issues(path))
    assert "workloads[0].image: '>=1' is not a PEP 440 version" in issues
    assert "workloads[1].runtime_config.build_with: build_with is not supported for npx://" in issues
    assert "workloads[2].runtime_config.builder_image: 'python:3 AS evil' is not a Docker image reference" in issues
    assert "workloads[2].runtime_config.additional_packages: not supported" in issues
    assert "workloads[2].runtime_config.build_with[0]:" in issues
    assert "workloads[2].runtime_config.runtime_env.PATH: PATH is reserved" in issues
    assert "workloads[2].runtime_config.runtime_env.lower:" in issues
    assert "workloads[2].runtime_config.runtime_env.OK:" in issues
    assert "FINE" not in issues
    assert "workloads[3].runtime_config: runtime_config applies to uvx://, npx:// and go:// only" in issues
    assert "stack.yaml:" in issues  # positioned in the file


def test_unpinned_is_a_warning_and_an_error_under_require_pinned(tmp_path: Path) -> None:
    workloads = [{"name": "a", "image": "uvx://mcp-server-time"}, {"name": "b", "image": "mcp/time:latest"}]
    resolved = preflight(load([_manifest(tmp_path, workloads)]), offline=True)
    assert any("uvx://mcp-server-time is not pinned" in w for w in resolved.warnings)
    strict = _manifest(tmp_path, workloads, images={"require_pinned": True})
    issues = "\n".join(_issues(strict))
    assert "workloads[0].image: uvx://mcp-server-time is not pinned" in issues
    assert "workloads[1].image: 'mcp/time:latest' has no digest" in issues
    pinned = [{"name": "b", "image": "mcp/time@sha256:" + "0" * 64}, {"name": "a", "image": "uvx://x@1.0"}]
    assert _issues(_manifest(tmp_path, pinned, images={"require_pinned": True})) == []


def test_settings_packages_are_checked(tmp_path: Path) -> None:
    workloads = [{"name": "a", "image": "uvx://x@1.0"}]
    packages = {
        "builder_images": {"uvx": "bad image"},
        "index_urls": {"uvx": "https://u:p@idx.example/simple"},
        "offline_dir": "missing",
    }
    issues = "\n".join(_issues(_manifest(tmp_path, workloads, packages=packages)))
    assert "settings.packages.builder_images.uvx: 'bad image' is not a Docker image reference" in issues
    assert "settings.packages.index_urls.uvx: credentials" in issues
    assert f"settings.packages.offline_dir: {tmp_path / 'missing'} is not a directory" in issues


def _build(tmp_path: Path, image: str, **runtime_config: Any) -> PackageBuild:
    (tmp_path / "wheels").mkdir(exist_ok=True)
    settings = {"packages": {"offline_dir": "wheels", "builder_images": {"uvx": "b:1"}}}
    workload = {"name": "a", "image": image, "runtime_config": runtime_config}
    manifest = load([_manifest(tmp_path, [workload], **settings)])
    return package_build(manifest.workloads[0], manifest.settings, {"b:1": "sha256:1"})


def test_every_instruction_is_exec_form_or_checked_literal(tmp_path: Path) -> None:
    build = _build(tmp_path, "uvx://mcp-server-time@1.0", build_with=["mcp<2"], runtime_env={"MODE": "a b"})
    dockerfile = build.dockerfile()
    for line in dockerfile.splitlines():
        instruction, _, rest = line.partition(" ")
        if instruction in ("RUN", "ENTRYPOINT"):
            assert isinstance(json.loads(rest), list), line  # exec form: no shell
    runs = [json.loads(line[4:]) for line in dockerfile.splitlines() if line.startswith("RUN ")]
    install = runs[-1]
    assert install[install.index("--") + 1 :] == ["mcp-server-time==1.0", "mcp<2"]  # after --: never options
    assert install[install.index("install") + 2 : install.index("--")] == ["--no-index", "--find-links", "/offline"]
    assert 'ENV MODE="a b"' in dockerfile
    assert dockerfile.startswith("FROM b:1 AS builder\n")
    for scheme, image in (("npx", "npx://@a/b@1.2.3"), ("go", "go://github.com/a/b@v1.0.0")):
        text = _build(tmp_path, image).dockerfile()
        assert all(json.loads(line[4:]) for line in text.splitlines() if line.startswith("RUN ")), scheme


def test_go_builds_need_nothing_but_go_in_the_builder(tmp_path: Path) -> None:
    """No `env` (or any tool but go) runs in the builder: a builder image of the Go distribution alone builds."""
    offline = _build(tmp_path, "go://github.com/a/b@v1.0.0").dockerfile()
    runs = [json.loads(line[4:]) for line in offline.splitlines() if line.startswith("RUN ")]
    assert {run[0] for run in runs} == {"go"}, runs
    assert runs[0] == ["go", "env", "-w", "GOPROXY=file:///offline/goproxy", "GOSUMDB=off"]
    assert runs[1] == ["go", "install", "--", "github.com/a/b@v1.0.0"]
    assert offline.index("COPY offline/") < offline.index('RUN ["go", "env"')
    networked = PackageBuild(
        scheme="go",
        name="github.com/a/b",
        version="v1.0.0",
        builder_image="golang:1",
        runtime_image="alpine:3",
        index_url="https://goproxy.example/$x",
    ).dockerfile()
    assert 'RUN ["go", "env", "-w", "GOPROXY=https://goproxy.example/$x"]' in networked  # in the array, literal
    assert "$x" not in networked.replace('"GOPROXY=https://goproxy.example/$x"', "")
    assert "GOSUMDB" not in networked and "/offline" not in networked


def test_the_hash_moves_with_every_input_and_names_the_image(tmp_path: Path) -> None:
    base = _build(tmp_path, "uvx://mcp-server-time@1.0")
    assert base.tag.startswith("toolhive-apply/pkg-uvx-mcp-server-time:") and base.tag.endswith(base.digest[:16])
    assert _build(tmp_path, "uvx://mcp-server-time@1.0").digest == base.digest  # deterministic
    assert _build(tmp_path, "uvx://mcp-server-time@1.1").digest != base.digest
    assert _build(tmp_path, "uvx://mcp-server-time@1.0", runtime_env={"A": "1"}).digest != base.digest
    assert _build(tmp_path, "uvx://mcp-server-time@1.0", builder_image="other:1").digest != base.digest
    (tmp_path / "wheels" / "x-1.0-py3-none-any.whl").write_bytes(b"wheel")
    assert _build(tmp_path, "uvx://mcp-server-time@1.0").digest != base.digest  # a new file in offline_dir
    again = PackageBuild.from_spec({k: v for k, v in base.as_spec().items()})
    assert again == base and again.digest == base.digest  # a saved plan rebuilds exactly this


def test_the_spec_keeps_the_users_image_and_runs_the_built_one(tmp_path: Path) -> None:
    path = _manifest(tmp_path, [{"name": "a", "image": "uvx://mcp-server-time@1.0"}])
    manifest = load([path])
    fields = package_fields(manifest.workloads[0], manifest.settings, {})
    spec = WorkloadSpec.from_document({"name": "a", "image": "uvx://mcp-server-time@1.0", **fields})
    assert container_image(spec) == fields["package"]["tag"]
    assert fields["package"]["builder_image"] == "python:3.14-slim"  # ToolHive's default
    assert fields["package"]["version"] == "1.0" and fields["package"]["ref"] == "uvx://mcp-server-time@1.0"
    assert container_image(WorkloadSpec.from_document({"name": "t", "image": "mcp/time:latest"})) == "mcp/time:latest"


def _upstream(servers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": "1.0.0", "meta": {"last_updated": "2026-01-01T00:00:00Z"}, "data": {"servers": servers}}


def _server(name: str, registry_type: str, identifier: str, version: str, **extra: Any) -> dict[str, Any]:
    package = {
        "registryType": registry_type,
        "identifier": identifier,
        "version": version,
        "transport": {"type": "stdio"},
        **extra,
    }
    return {"name": name, "description": name, "version": "1.0.0", "packages": [package]}


def test_upstream_npm_and_pypi_packages_resolve_to_package_images(tmp_path: Path) -> None:
    env = [
        {"name": "API_KEY", "isRequired": True, "isSecret": True},
        {"name": "MODE", "default": "fast"},
    ]
    document = _upstream(
        [
            _server("io.github.acme/time", "pypi", "mcp-server-time", "2026.10.19"),
            _server(
                "io.github.acme/files",
                "npm",
                "@modelcontextprotocol/server-filesystem",
                "2025.8.21",
                environmentVariables=env,
                packageArguments=[{"type": "positional", "value": "/data"}],
            ),
            _server("io.github.acme/ranged", "npm", "some-server", "^1.0.0"),
        ]
    )
    (tmp_path / "registry.json").write_text(json.dumps(document), encoding="utf-8")
    registries = [{"name": "up", "local_path": "registry.json"}]
    workloads: list[dict[str, Any]] = [
        {"name": "time", "registry": "up", "server": "time"},
        {"name": "files", "registry": "up", "server": "files", "secrets": [{"name": "k", "target": "API_KEY"}]},
    ]
    data = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "pk"},
        "registries": registries,
        "secrets": [{"key": "k", "present": True}],
        "workloads": workloads,
    }
    path = tmp_path / "stack.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    resolved = preflight(load([path]), offline=True).manifest
    by_name = {w.name: w for w in resolved.workloads}
    assert by_name["time"].image == "uvx://mcp-server-time@2026.10.19"
    files = by_name["files"]
    assert files.image == "npx://@modelcontextprotocol/server-filesystem@2025.8.21"
    assert files.cmd_arguments == ("/data",) and files.env_vars["MODE"] == "fast"

    del data["workloads"][1]["secrets"]  # a required secret variable: the same rule as for oci entries
    data["workloads"].append({"name": "ranged", "registry": "up", "server": "ranged"})
    path.write_text(json.dumps(data), encoding="utf-8")
    issues = "\n".join(_issues(path))
    assert "requires environment variable API_KEY" in issues
    data["workloads"][1]["secrets"] = [{"name": "k", "target": "API_KEY"}]
    path.write_text(json.dumps(data), encoding="utf-8")
    issues = "\n".join(_issues(path))
    assert "workloads[2].server: '^1.0.0' is neither an exact semver version" in issues


def test_header_forward_becomes_proxy_headers_with_secrets_only_by_reference(tmp_path: Path) -> None:
    from toolhive_apply.providers.workload.create_args import proxy_config
    from toolhive_apply.providers.workload.spec import workload_spec

    forward = {"add_plaintext_headers": {"X-Team": "tools"}, "add_headers_from_secret": {"Authorization": "tok"}}
    remote = {"name": "r", "url": "https://mcp.example/mcp", "header_forward": forward}
    data = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "pk"},
        "secrets": [{"key": "tok", "present": True}],
        "workloads": [remote],
    }
    path = tmp_path / "stack.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    manifest = preflight(load([path]), offline=True).manifest
    spec = workload_spec(manifest.workloads[0], manifest, 20000, None)
    config = proxy_config(spec)
    assert config["headers"] == {"X-Team": "tools"}
    env = config["header_env"]["Authorization"]
    assert {"name": "tok", "target": env, "as": "env"} in spec["secrets"]  # the value reaches the env only

    bad = {
        "add_plaintext_headers": {"Authorization": "Bearer x", "X-Api-Key": "k", "Bad Name": "v", "X-Ok": "a\r\nX: y"},
        "add_headers_from_secret": {"X-Other": "undeclared"},
    }
    container = {"name": "c", "image": "mcp/x:1", "header_forward": forward}
    data["workloads"] = [{**remote, "header_forward": bad}, container]
    path.write_text(json.dumps(data), encoding="utf-8")
    issues = "\n".join(_issues(path))
    assert "header_forward.add_plaintext_headers.Authorization: Authorization looks like a credential" in issues
    assert "add_plaintext_headers.X-Api-Key: X-Api-Key looks like a credential" in issues
    assert "'Bad Name' is not an HTTP header name" in issues
    assert "add_plaintext_headers.X-Ok: a header value may not hold control characters" in issues
    assert "add_headers_from_secret.X-Other: unknown secret 'undeclared'" in issues
    assert "workloads[1].header_forward: header_forward applies to remote workloads (url) only" in issues


def test_a_tampered_package_spec_is_refused_where_it_is_built(tmp_path: Path) -> None:
    from toolhive_apply.errors import ProviderError
    from toolhive_apply.providers.workload.package_specs import build_package

    build = _build(tmp_path, "uvx://mcp-server-time@1.0")
    evil = PackageBuild.from_spec({**build.as_spec(), "builder_image": "b:1\nRUN id"})
    package = {**evil.as_spec(), "tag": evil.tag}  # consistent hash: only the content check can refuse it
    with pytest.raises(ProviderError, match="refusing to build"):
        build_package(None, _with_package(package), "workload/a", "create", lambda _line: None)  # type: ignore[arg-type]
    wrong = {**build.as_spec(), "tag": build.tag, "version": "2.0"}
    with pytest.raises(ProviderError, match="does not match its recorded hash"):
        build_package(None, _with_package(wrong), "workload/a", "create", lambda _line: None)  # type: ignore[arg-type]


def _with_package(package: dict[str, Any]) -> WorkloadSpec:
    return WorkloadSpec.from_document({"name": "a", "package": package})


def test_build_output_is_scrubbed_of_terminal_controls() -> None:
    from toolhive_apply.providers.workload.package_images import _note

    output: list[str] = []
    made: list[str] = []
    _note("\x1b[91mERROR: no such package\x1b[0m\x07\x1b]0;owned\x07", output, made)
    _note("Removing intermediate container 0123456789ab", output, made)
    _note(" ---> 0123456789abcdef", output, made)
    assert output[0].startswith("ERROR: no such package") and "\x1b" not in output[0] and "\x07" not in output[0]
    assert made == ["0123456789abcdef"]  # an image this build made, to remove if it fails
