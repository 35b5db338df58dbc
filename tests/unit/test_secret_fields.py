"""A declared secret's value in a plain field is refused, positioned, naming the secret and the field only."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from toolhive_apply.engine.plan import Plan
from toolhive_apply.engine.resource import DesiredResource, Kind, ResourceId
from toolhive_apply.errors import ManifestError, ToolhiveApplyError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.providers.secret_fields import (
    check_desired_values,
    check_manifest_values,
    check_plan_file,
    declared_values,
)
from toolhive_apply.redact import SecretValue

HEADER = "apiVersion: toolhive-apply/v1\nsettings: {stack: demo}\n"


def manifest_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def refusal(tmp_path: Path, body: str, environ: dict[str, str]) -> list[str]:
    manifest = load_manifest([manifest_file(tmp_path, body)], environ=environ)
    with pytest.raises(ManifestError) as caught:
        check_manifest_values(manifest, environ)
    return caught.value.lines()


def test_env_of_a_secret_source_in_a_field_is_refused_with_position_secret_and_field(tmp_path: Path) -> None:
    value = f"tok-{uuid.uuid4().hex}"
    # env() of the secret's own source is refused outright (a credential the manifest names); the same value
    # under another name is what this check is for
    environ = {"TOKEN_SOURCE": value, "TOKEN_COPY": value}
    body = (
        "secrets: [{key: api, from: {env: TOKEN_SOURCE}}]\n"
        "workloads:\n"
        "  - name: w\n"
        "    image: mcp/x:1\n"
        "    env_vars: {AUTH: \"Bearer {{ env('TOKEN_COPY') }}\"}\n"
        "    secrets: [{name: api, target: API}]\n"
    )
    lines = refusal(tmp_path, body, environ)
    assert len(lines) == 1
    assert lines[0].startswith(f"{tmp_path / 'stack.yaml'}:5:")
    assert (
        "workloads[0].env_vars.AUTH: the value of secret 'api' appears in field workloads[0].env_vars.AUTH" in lines[0]
    )
    assert value not in "\n".join(lines)


def test_a_file_sourced_multi_line_value_is_found_line_by_line(tmp_path: Path) -> None:
    key_line = f"MIIE{uuid.uuid4().hex}"
    (tmp_path / "key.pem").write_text(f"-----BEGIN PRIVATE KEY-----\n{key_line}\n-----END PRIVATE KEY-----\n")
    body = (
        "secrets: [{key: tls, from: {file: ./key.pem}}]\n"
        "clients: [{name: cursor}]\n"
        f"workloads: [{{name: w, image: mcp/x:1, description: 'key {key_line}'}}]\n"
    )
    lines = refusal(tmp_path, body, {})
    assert any("secret 'tls' appears in field workloads[0].description" in line for line in lines)


def test_a_secrets_description_holding_a_value_is_refused_but_an_inline_value_is_not(tmp_path: Path) -> None:
    value = f"tok-{uuid.uuid4().hex}"
    body = (
        f"secrets: [{{key: a, value: {value}, insecure: true}},"
        f" {{key: b, from: {{env: B}}, description: 'was {value}'}}]\n"
        "workloads: [{name: w, image: mcp/x:1}]\n"
    )
    lines = refusal(tmp_path, body, {"B": f"other-{uuid.uuid4().hex}"})
    assert len(lines) == 1 and "secret 'a' appears in field secrets[1].description" in lines[0]


def test_vars_secrets_and_short_values_are_not_refused(tmp_path: Path) -> None:
    long = f"tok-{uuid.uuid4().hex}"
    environ = {"LONG": long, "LONG_COPY": long, "SHORT": "ab"}
    body = (
        "vars: {copy: \"{{ env('LONG_COPY') }}\"}\n"
        "secrets: [{key: long, from: {env: LONG}}, {key: short, from: {env: SHORT}},"
        " {key: missing, from: {env: NOT_SET}}, {key: gone, from: {file: ./nothing}}]\n"
        "workloads: [{name: w, image: mcp/x:1, env_vars: {A: ab, B: xaby}}]\n"
    )
    manifest = load_manifest([manifest_file(tmp_path, body)], environ=environ)
    check_manifest_values(manifest, environ)  # nothing raised
    assert set(declared_values(manifest, environ)) == {"long", "short"}


def test_a_store_value_in_a_resource_spec_is_refused_at_plan_time(tmp_path: Path) -> None:
    value = f"from-store-{uuid.uuid4().hex}"
    manifest = load_manifest([manifest_file(tmp_path, "workloads: [{name: w, image: mcp/x:1}]\n")])
    desired = [
        DesiredResource(ResourceId(Kind.WORKLOAD, "w"), {"env_vars": {"X": value}, "secret_digests": {"s": "ab12"}}),
        DesiredResource(ResourceId(Kind.SECRET, "s"), {"key": "s", "digest": "hmac-sha256:ab12"}),
    ]
    with pytest.raises(ManifestError) as caught:
        check_desired_values(manifest, desired, {"s": SecretValue(value)})
    assert caught.value.lines() == [
        "workload/w.env_vars.X: the value of secret 's' appears in field workload/w.env_vars.X; a plain field is "
        "stored and shown in clear: deliver the secret through the workload's secrets ({name, target}) instead"
    ]
    check_desired_values(manifest, desired[1:], {"s": SecretValue("ab12")})  # a digest is no copy of a value


def test_a_plan_holding_a_registered_value_is_not_saved() -> None:
    value = f"credential-{uuid.uuid4().hex}"
    SecretValue(value)
    change_free = Plan("demo", (), (), "fp", "md", warnings=("fine",))
    check_plan_file(change_free)
    with pytest.raises(ToolhiveApplyError, match=r"refusing to save the plan: .*\(warnings\[0\]\)") as caught:
        check_plan_file(Plan("demo", (), (), "fp", "md", warnings=(f"oops {value}",)))
    assert value not in str(caught.value)
