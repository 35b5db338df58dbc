"""The manifest pipeline on files: positions, merging, templating, schema and semantic errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest, parse_var_options

HEADER = "apiVersion: toolhive-apply/v1\n"


def write(tmp_path: Path, text: str, name: str = "stack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(paths: list[Path], **kwargs: object) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(paths, **kwargs)  # type: ignore[arg-type]
    return caught.value.lines()


def test_a_valid_manifest_becomes_a_typed_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "settings: {stack: demo}\n"
        + "groups: [{name: research}]\n"
        + "workloads:\n"
        + "  - name: time\n    image: mcp/time:latest\n    group: research\n    env_vars: {TZ: UTC, N: 3}\n",
    )
    manifest = load_manifest([path])
    assert manifest.settings.stack == "demo"
    workload = manifest.workload("time")
    assert workload is not None
    assert workload.group == "research"
    assert workload.env_vars == {"TZ": "UTC", "N": "3"}
    assert workload.origin is not None and workload.origin.line == 5


def test_the_stack_defaults_to_the_manifest_directory_name(tmp_path: Path) -> None:
    directory = tmp_path / "Team Tools"
    directory.mkdir()
    path = write(directory, HEADER + "workloads: []\n")
    assert load_manifest([path]).settings.stack == "team-tools"


def test_an_unknown_key_is_reported_with_its_line_column_and_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "workloads:\n  - name: a\n    imag: x\n")
    lines = problems([path])
    assert any(
        line.startswith(f"{path}:4:5: workloads[0].imag: unknown key 'imag'") and "did you mean 'image'" in line
        for line in lines
    ), lines


def test_every_problem_is_reported_at_once_sorted_by_position(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "workloads:\n  - name: a\n    image: x\n    transport: stdo\n  - name: b\n    image: y\n    proxy_port: 0\n",
    )
    lines = problems([path])
    assert len(lines) == 2
    assert ":5:5: workloads[0].transport:" in lines[0]
    assert ":8:5: workloads[1].proxy_port:" in lines[1]


def test_a_duplicate_key_is_an_error_not_a_silent_overwrite(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "workloads:\n  - name: a\n    image: x\n    image: y\n")
    lines = problems([path])
    assert any("5:5: workloads[0].image: duplicate key 'image' (first defined at 4:5)" in line for line in lines)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"# only a comment\n", "file is empty"),
        (b"\xff\xfe\x00garbage", "not valid UTF-8"),
        (b"- a\n- b\n", "must be a mapping"),
        (b"just a string\n", "must be a mapping"),
        (b"apiVersion: [\n", "YAML syntax error"),
        (b"workloads: []\n", "apiVersion: toolhive-apply/v1 is required"),
        (b"apiVersion: toolhive-apply/v9\n", "unsupported apiVersion"),
    ],
)
def test_bad_files_get_a_clear_positioned_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    lines = problems([path])
    assert any(line.startswith(str(path)) and message in line for line in lines), lines


def test_a_yaml_bomb_is_refused_without_being_expanded(tmp_path: Path) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for index in range(1, 9):
        prev = chr(ord("a") + index - 1)
        cur = chr(ord("a") + index)
        levels.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    path = write(tmp_path, HEADER + "\n".join(levels) + "\n")
    lines = problems([path])
    assert any("refused: more than" in line for line in lines)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "vars: " + "[" * 100 + "]" * 100 + "\n")
    assert any("nested deeper than" in line for line in problems([path]))


def test_a_directory_merges_its_files_and_names_both_places_of_a_duplicate(tmp_path: Path) -> None:
    write(tmp_path, HEADER + "settings: {stack: demo}\nworkloads:\n  - {name: a, image: x}\n", "a.yaml")
    write(tmp_path, HEADER + "workloads:\n  - {name: b, image: y}\n  - {name: a, image: z}\n", "b.yaml")
    lines = problems([tmp_path])
    assert len(lines) == 1
    assert str(tmp_path / "b.yaml") + ":4:6: workloads[2].name: 'a' is defined twice" in lines[0]  # at the name itself
    assert str(tmp_path / "a.yaml") + ":4:5" in lines[0]


def test_merged_files_keep_list_positions_for_later_errors(tmp_path: Path) -> None:
    write(tmp_path, HEADER + "workloads:\n  - {name: a, image: x}\n", "a.yaml")
    write(tmp_path, HEADER + "workloads:\n  - {name: b, image: y, group: ghost}\n", "b.yaml")
    lines = problems([tmp_path])
    assert lines == [f"{tmp_path / 'b.yaml'}:3:25: workloads[1].group: unknown group 'ghost' (declared: default)"]


def test_settings_set_in_two_files_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, HEADER + "settings: {stack: one}\n", "a.yaml")
    write(tmp_path, HEADER + "settings: {stack: two}\n", "b.yaml")
    lines = problems([tmp_path])
    assert any("settings.stack: set in more than one file" in line for line in lines)


def test_references_must_resolve(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "clients: [{name: cursor, groups: [nowhere]}]\n"
        + "workloads:\n"
        + "  - name: a\n    server: fetch\n    registry: missing\n"
        + "    secrets: [{name: token, target: TOKEN}]\n",
    )
    text = "\n".join(problems([path]))
    assert "clients[0].groups[0]: unknown group 'nowhere'" in text
    assert "workloads[0].registry: unknown registry 'missing'" in text
    assert "workloads[0].secrets[0].name: unknown secret 'token'" in text


def test_a_workload_needs_exactly_one_source(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "workloads:\n  - {name: a, image: x, url: 'https://x.example/mcp'}\n")
    assert any("needs exactly one of image, server" in line for line in problems([path]))


def test_two_workloads_on_the_same_host_port_collide(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER + "workloads:\n  - {name: a, image: x, proxy_port: 18000}\n  - {name: b, image: y, proxy_port: 18000}\n",
    )
    assert any("port 18000 on 127.0.0.1 is already used by workload 'a'" in line for line in problems([path]))


def test_a_plaintext_secret_value_needs_insecure(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "secrets:\n  - {key: k, value: hunter2}\n")
    assert any(
        "secrets[0].value: a plaintext value in the manifest needs insecure: true" in line for line in problems([path])
    )
    path = write(tmp_path, HEADER + "secrets:\n  - {key: k, value: hunter2, insecure: true}\n")
    manifest = load_manifest([path])
    assert any("plaintext secret value" in str(w) for w in manifest.warnings)


def test_privileged_needs_an_acknowledgement(tmp_path: Path) -> None:
    body = "workloads:\n  - {name: a, image: x, permission_profile: {privileged: true}}\n"
    assert any("allow_privileged: true" in line for line in problems([write(tmp_path, HEADER + body)]))


def test_mounting_the_docker_socket_is_refused(tmp_path: Path) -> None:
    body = "workloads:\n  - {name: a, image: x, volumes: ['/var/run/docker.sock:/sock']}\n"
    assert any("Docker socket" in line for line in problems([write(tmp_path, HEADER + body)]))


def test_profile_mounts_are_checked_and_named_by_file_line_and_field(tmp_path: Path) -> None:
    body = "workloads:\n  - name: a\n    image: x\n    permission_profile: {read: ['./nope:/n']}\n"
    found = problems([write(tmp_path, HEADER + body)])
    # at the mount itself, not at the workload
    assert any(":5:33:" in line and "permission_profile.read[0]" in line and "does not exist" in line for line in found)
    acknowledged = body + "    allow_host_paths: [./nope]\n"
    manifest = load_manifest([write(tmp_path, HEADER + acknowledged)])
    assert manifest.workloads[0].allow_host_paths == ("./nope",)


def test_network_isolation_needs_a_container_on_bridge_networking(tmp_path: Path) -> None:
    body = (
        "workloads:\n"
        "  - {name: a, url: 'https://x.example/mcp', network_isolation: true}\n"
        "  - {name: b, image: x, network_isolation: true, permission_profile: {network: {mode: host}}}\n"
        "  - {name: c, image: x, network_isolation: true, permission_profile: none}\n"
    )
    found = problems([write(tmp_path, HEADER + body)])
    assert len(found) == 2, found
    assert "runs no container" in found[0] and "workloads[0].network_isolation" in found[0]
    assert "bridge networking" in found[1] and "workloads[1].network_isolation" in found[1]


def test_templates_render_vars_env_and_cli_vars_with_native_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "vars: {port: 18123, tz: \"{{ env('TZ_UNDER_TEST', 'UTC') }}\", name: alpha}\n"
        + "workloads:\n"
        + '  - name: "{{ name }}-srv"\n    image: x\n    proxy_port: "{{ port }}"\n'
        + '    env_vars: {TZ: "{{ tz }}", WHO: "{{ name | upper }} team"}\n',
    )
    manifest = load_manifest([path], {"name": "beta"}, environ={"TZ_UNDER_TEST": "Europe/Paris"})
    workload = manifest.workloads[0]
    assert workload.name == "beta-srv"
    assert workload.proxy_port == 18123
    assert workload.env_vars == {"TZ": "Europe/Paris", "WHO": "BETA team"}


def test_a_template_cannot_inject_yaml_structure(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEADER + 'vars: {evil: "x\\nimage: injected"}\nworkloads:\n  - {name: a, image: "{{ evil }}"}\n'
    )
    manifest = load_manifest([path])
    assert manifest.workloads[0].image == "x\nimage: injected"


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ env.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ range.__self__ }}",
        "{{ 'x' * 10**9 }}",
        "{{ 2 ** 100000 }}",
        "{{ 1 / 0 }}",
        "{% for i in range(10**9) %}{% endfor %}",
    ],
)
def test_sandbox_escapes_are_refused_with_a_positioned_error(tmp_path: Path, expression: str) -> None:
    path = write(tmp_path, HEADER + f'vars: {{x: "{expression}"}}\n')
    lines = problems([path])
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}:2:") and "vars.x: template error" in lines[0]


def test_an_undefined_variable_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + 'workloads:\n  - name: a\n    image: "{{ missing_image }}"\n')
    assert problems([path]) == [
        f"{path}:4:5: workloads[0].image: template error: 'missing_image' is undefined "
        "(define it under vars, with --var or --var-file)"
    ]


def test_env_without_default_must_be_set(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "vars: {a: \"{{ env('SURELY_NOT_SET_VAR') }}\"}\n")
    assert any("SURELY_NOT_SET_VAR is not set" in line for line in problems([path], environ={}))


def test_var_options_parse_files_and_pairs(tmp_path: Path) -> None:
    var_file = write(tmp_path, "a: 1\nb: two\n", "vars.yaml")
    assert parse_var_options(["b=three", "c=x=y"], [var_file]) == {"a": 1, "b": "three", "c": "x=y"}
    with pytest.raises(ManifestError):
        parse_var_options(["novalue"], [])


def test_the_examples_are_valid() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    for directory in sorted(p for p in examples.iterdir() if p.is_dir() and any(p.glob("*.yaml"))):
        load_manifest([directory])


def test_a_number_too_long_to_read_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER + "settings: {stack: demo}\nworkloads:\n  - name: a\n    image: i\n    proxy_port: " + "9" * 5000 + "\n",
    )
    lines = problems([path])
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}:6:17: workloads[0].proxy_port: a number too long to read")
