"""The CLI end to end for manifests that must be refused (issue #13): mounts of the host however spelled, env() of
the tool's own credentials, templates that would exhaust the machine, names that collide with our own objects.

Each is one positioned message per problem on stderr, exit 1, never a traceback, and nothing reaches Docker:
DOCKER_HOST points nowhere, so a plan that got past validation would fail differently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent.sock"}


def _manifest(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text("apiVersion: toolhive-apply/v1\nsettings: {stack: refusals}\n" + body, encoding="utf-8")
    return path


def _refused(path: Path, *expected: str, command: str = "validate", env: dict[str, str] | None = None) -> str:
    result = run_cli(command, str(path), env={**NO_DOCKER, **(env or {})})
    assert result.code == 1, result
    assert result.stdout == ""
    for line in expected:
        assert f"{path}:{line}" in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_mount_of_the_host_is_refused_however_it_is_spelled(tmp_path: Path, command: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "sock").symlink_to("/var/run/docker.sock")
    path = _manifest(
        tmp_path,
        "workloads:\n"
        "  - name: a\n"
        "    image: x\n"
        "    volumes: ['/var/run/docker.sock://x', './sock:/s:ro', 'data:/d', './data:/d2:ro,rw']\n"
        "    permission_profile:\n"
        "      write: ['//var/run//docker.sock/://x', 'file:///etc:/etc']\n"
        "      read: ['./data/../sock:/s2', '/:/host']\n",
    )
    _refused(  # each at the list item it judges
        path,
        "6:15: workloads[0].volumes[0]: mounting the Docker socket would hand the server the whole host",
        "6:43: workloads[0].volumes[1]: mounting the Docker socket",
        "6:59: workloads[0].volumes[2]: 'data' would be a named Docker volume",
        "6:70: workloads[0].volumes[3]: Docker would refuse mode 'ro,rw'",
        "8:15: workloads[0].permission_profile.write[0]: mounting the Docker socket",
        "8:46: workloads[0].permission_profile.write[1]: resource URI mounts (scheme://...) are not supported",
        "9:14: workloads[0].permission_profile.read[0]: mounting the Docker socket",
        "9:36: workloads[0].permission_profile.read[1]: mounting / would expose the host itself",
        command=command,
    )


CANARY = "canary-credential-5f1e"


@pytest.mark.parametrize("variable", ["VAULT_TOKEN", "TOOLHIVE_SECRETS_PASSWORD", "VAULT_SECRET_ID"])
def test_env_of_the_tools_own_credential_is_refused_and_never_printed(tmp_path: Path, variable: str) -> None:
    path = _manifest(
        tmp_path,
        f"workloads:\n  - name: a\n    image: x\n    env_vars: {{COPY: \"{{{{ env('{variable}') }}}}\"}}\n",
    )
    for command in ("validate", "plan"):
        stderr = _refused(
            path,
            f"6:16: workloads[0].env_vars.COPY: template error: env('{variable}') is refused",
            command=command,
            env={variable: CANARY},
        )
        assert CANARY not in stderr


def test_a_credentials_value_is_scrubbed_from_output_whatever_prints_it(tmp_path: Path) -> None:
    """No env() at all: the value just happens to be written in the manifest, and the schema error quotes it."""
    path = _manifest(tmp_path, f"workloads:\n  - {{name: a, image: x, transport: {CANARY}}}\n")
    for variable in ("TOOLHIVE_SECRETS_PASSWORD", "VAULT_TOKEN", "TOOLHIVE_SECRET_api"):
        result = run_cli("validate", str(path), "--output", "json", env={**NO_DOCKER, variable: CANARY})
        assert result.code == 1, result
        assert "workloads[0].transport" in result.stdout
        assert CANARY not in result.output


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x'.center(10**9) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{{ ((2**64)**64)**64 }}",
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    ],
)
def test_a_template_that_would_exhaust_the_machine_is_refused_by_the_sandbox(tmp_path: Path, template: str) -> None:
    path = _manifest(tmp_path, f'workloads:\n  - name: a\n    image: x\n    env_vars: {{BIG: "{template}"}}\n')
    _refused(path, "6:16: workloads[0].env_vars.BIG: template error: refused by the sandbox: ")


def test_names_that_collide_with_our_own_objects_are_refused(tmp_path: Path) -> None:
    path = _manifest(
        tmp_path,
        "workloads:\n"
        "  - {name: x, image: img}\n"
        "  - {name: x-proxy, image: img}\n"
        "  - {name: x-egress, image: img}\n"
        "  - {name: toolhive-apply-lock.other, image: img}\n"
        "  - {name: y-replaced-0a1b2c, image: img}\n",
    )
    _refused(
        path,
        "5:6: workloads[1].name: 'x-proxy' is the name of workload 'x''s proxy container",
        "6:6: workloads[2].name: 'x-egress' is the name of workload 'x''s egress container",
        "7:6: workloads[3].name: names beginning 'toolhive-apply' are toolhive-apply's own",
        "8:6: workloads[4].name: a name holding '-replaced-' is how a replace sets containers aside",
    )
