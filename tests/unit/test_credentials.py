"""The tool's own credentials: refused in env() with a positioned error, their values scrubbed from all output."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolhive_apply import credentials
from toolhive_apply.credentials import is_credential, manifest_credential_names, register_credentials
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.redact import REDACTED, redact


@pytest.mark.parametrize(
    "name",
    [
        "TOOLHIVE_SECRETS_PASSWORD",
        "toolhive_secrets_password",
        "VAULT_TOKEN",
        "Vault_Token",
        "VAULT_SECRET_ID",
        "VAULT_ROLE_ID",
        "VAULT_CLIENT_KEY",
        "VAULT_WRAPPED_TOKEN",  # any VAULT_* that is not a known setting
        "BAO_TOKEN",
        "TOOLHIVE_SECRET_github",
        "TOOLHIVE_APPLY_HMAC_KEY",
        "CI_JOB_TOKEN",
        "CI_JOB_JWT_V2",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "DOCKER_AUTH_CONFIG",
    ],
)
def test_credential_names_are_refused(name: str) -> None:
    assert is_credential(name)


@pytest.mark.parametrize("name", ["VAULT_ADDR", "VAULT_NAMESPACE", "VAULT_CACERT", "BAO_ADDR", "HOME", "TZ", "VAULT"])
def test_settings_and_ordinary_variables_are_not(name: str) -> None:
    assert not is_credential(name)


def test_the_stores_read_their_variables_from_the_one_vocabulary() -> None:
    from toolhive_apply.stores import environment, toolhive_format, vault_settings

    assert toolhive_format.PASSWORD_ENV is credentials.PASSWORD_ENV
    assert environment.PREFIX in credentials.CREDENTIAL_PREFIXES
    assert vault_settings.DEFAULT_SECRET_ID_ENV in credentials.CREDENTIAL_VARIABLES


def test_registered_values_are_scrubbed_but_settings_are_not() -> None:
    register_credentials(
        {"VAULT_TOKEN": "hvs.canary-token-1", "TOOLHIVE_SECRET_x": "env-secret-1", "VAULT_FORMAT": "json"},
        named={"MY_JWT"},
    )
    register_credentials({"MY_JWT": "eyJ.canary.jwt"}, named={"my_jwt"})
    assert redact("a hvs.canary-token-1 b env-secret-1 c eyJ.canary.jwt d json") == (
        f"a {REDACTED} b {REDACTED} c {REDACTED} d json"
    )


def _manifest(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text("apiVersion: toolhive-apply/v1\n" + body, encoding="utf-8")
    return path


def _problems(path: Path, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ManifestError) as raised:
        load_manifest([path], environ=environ)
    return raised.value.lines()


@pytest.mark.parametrize(
    "expression",
    [
        "env('VAULT_TOKEN')",
        "env('VAULT_TOKEN', 'fallback')",
        "env('vault_token')",
        "env('VAULT_' ~ 'TOKEN')",
        "env('TOOLHIVE_SECRETS_PASSWORD')",
        "env('TOOLHIVE_SECRET_' ~ 'api')",
    ],
)
def test_env_of_a_credential_is_a_positioned_error_and_never_its_value(tmp_path: Path, expression: str) -> None:
    path = _manifest(
        tmp_path, f'workloads:\n  - name: a\n    image: x\n    env_vars: {{COPY: "{{{{ {expression} }}}}"}}\n'
    )
    environ = {"VAULT_TOKEN": "hvs.do-not-print", "TOOLHIVE_SECRETS_PASSWORD": "pw-do-not-print"}
    [problem] = _problems(path, environ)
    assert problem.startswith(f"{path}:5:") and "workloads[0].env_vars.COPY: template error: env(" in problem
    assert "is refused" in problem and "do-not-print" not in problem


def test_variables_the_manifest_names_as_credentials_are_refused_too(tmp_path: Path) -> None:
    body = (
        "settings:\n"
        "  secrets:\n"
        "    provider: vault\n"
        "    vault: {address: 'https://vault.example', auth: {method: jwt, role: r, jwt_env: \"{{ jwt_var }}\"}}\n"
        "vars: {jwt_var: CI_ID_TOKEN, copied: \"{{ env('CI_ID_TOKEN') }}\"}\n"
        "secrets:\n"
        "  - {key: gh, from: {env: GH_PAT}}\n"
        "workloads:\n"
        "  - {name: a, image: x, env_vars: {T: \"{{ env('GH_PAT') }}\", OK: \"{{ env('TZ') }}\"}}\n"
    )
    problems = _problems(_manifest(tmp_path, body), {"CI_ID_TOKEN": "jwt-value", "GH_PAT": "ghp-value", "TZ": "UTC"})
    assert len(problems) == 2, problems
    assert any("vars.copied: template error: env('CI_ID_TOKEN') is refused" in p for p in problems)
    assert any("workloads[0].env_vars.T: template error: env('GH_PAT') is refused" in p for p in problems)
    assert redact("jwt-value ghp-value") == f"{REDACTED} {REDACTED}"


def test_manifest_credential_names_reads_only_plain_strings() -> None:
    data = {
        "settings": {"secrets": {"vault": {"auth": {"secret_id_env": "MY_SECRET_ID", "jwt_env": ["x"]}}}},
        "secrets": [{"key": "k", "from": {"env": "SRC"}}, "junk", {"from": "junk"}],
    }
    assert manifest_credential_names(data) == {"MY_SECRET_ID", "SRC"}
    assert manifest_credential_names({"settings": "junk", "secrets": {}}) == set()
