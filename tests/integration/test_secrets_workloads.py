"""Secrets end to end against Docker with the embedded encrypted store: injection, rotation, and a canary.

The canary is a unique value pushed through every command and failure path; afterwards stdout, stderr, every
file the tool wrote, every saved plan and every container label are searched for it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, private_env, run_cli, write_manifest
from tests.support.mcp_client import call_tool
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.encrypted import EncryptedStore
from toolhive_apply.stores.toolhive_format import default_path

pytestmark = pytest.mark.docker


@pytest.fixture
def secret_env(tmp_path: Path) -> dict[str, str]:
    """A private encrypted store (ToolHive's format) and state/cache directories the canary search covers."""
    return private_env(tmp_path)


def http_with_secret(name: str, secret: str, target: str = "API_TOKEN", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "secrets": [{"name": secret, "target": target}],
        **extra,
    }


def url_of(stack: str, name: str, env: dict[str, str]) -> str:
    listing = json.loads(run_cli("export", "workloads", "--stack", stack, env=env).stdout)["workloads"]
    return next(w["url"] for w in listing if w["name"] == name)


def test_a_workload_gets_its_secret_and_rotation_replaces_only_its_users(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], secret_env: dict[str, str]
) -> None:
    env = {**secret_env, "TOKEN_UNDER_TEST": "first-value-1234"}
    workloads = [
        http_with_secret(f"{stack}-user", "token"),
        {"name": f"{stack}-other", "image": HTTP_IMAGE, "transport": "streamable-http"},
    ]
    path = write_manifest(tmp_path, stack, workloads, secrets=[{"key": "token", "from": {"env": "TOKEN_UNDER_TEST"}}])
    applied = run_cli("apply", str(path), "--yes", env=env)
    assert applied.code == 0, applied
    assert call_tool(url_of(stack, f"{stack}-user", env), "get_env", {"name": "API_TOKEN"}) == "first-value-1234"
    ids = {c["Names"][0]: c["Id"] for c in docker_api.containers(filters={"label": [f"toolhive-apply.stack={stack}"]})}

    assert run_cli("plan", str(path), "--detailed-exitcode", env=env).code == 0
    rotated = {**env, "TOKEN_UNDER_TEST": "second-value-5678"}
    plan = run_cli("plan", str(path), "--detailed-exitcode", env=rotated)
    assert plan.code == 2, plan
    assert "secret/token must be replaced" in plan.stdout or "secret/token will be updated" in plan.stdout
    assert f"workload/{stack}-user must be replaced (secret rotated: token)" in plan.stdout
    assert "(sensitive value will change)" in plan.stdout
    assert f"workload/{stack}-other" not in plan.stdout
    assert "second-value-5678" not in plan.output and "first-value-1234" not in plan.output

    assert run_cli("apply", str(path), "--yes", env=rotated).code == 0
    assert call_tool(url_of(stack, f"{stack}-user", rotated), "get_env", {"name": "API_TOKEN"}) == "second-value-5678"
    after = {
        c["Names"][0]: c["Id"] for c in docker_api.containers(filters={"label": [f"toolhive-apply.stack={stack}"]})
    }
    assert after[f"/{stack}-other"] == ids[f"/{stack}-other"]
    assert after[f"/{stack}-user"] != ids[f"/{stack}-user"]
    assert run_cli("plan", str(path), "--detailed-exitcode", env=rotated).code == 0


def test_a_secret_delivered_as_a_file_is_not_in_the_container_config(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], secret_env: dict[str, str]
) -> None:
    value = f"file-secret-{uuid.uuid4().hex}"
    (tmp_path / "token.txt").write_text(value + "\n")
    workload = {
        "name": f"{stack}-files",
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "secrets": [{"name": "filetoken", "target": "/tmp/token", "as": "file"}],
    }
    path = write_manifest(tmp_path, stack, [workload], secrets=[{"key": "filetoken", "from": {"file": "./token.txt"}}])
    assert run_cli("apply", str(path), "--yes", env=secret_env).code == 0
    inspected = docker_api.inspect_container(f"{stack}-files")
    assert value not in json.dumps(inspected)
    check = docker_api.exec_create(
        f"{stack}-files",
        [
            "python3.11",
            "-c",
            "import os; print(oct(os.stat('/tmp/token').st_mode & 0o777)); print(open('/tmp/token').read())",
        ],
    )
    output = docker_api.exec_start(check["Id"]).decode()
    assert output.split() == ["0o400", value]


def test_a_secret_missing_from_the_store_fails_the_plan_naming_it(
    tmp_path: Path, stack: str, test_images: dict[str, str], secret_env: dict[str, str]
) -> None:
    path = write_manifest(
        tmp_path, stack, [http_with_secret(f"{stack}-w", "elsewhere")], secrets=[{"key": "elsewhere", "present": True}]
    )
    result = run_cli("plan", str(path), env=secret_env)
    assert result.code == 1
    assert "present: true, but 'elsewhere' is not in the encrypted store" in result.stderr


def test_a_missing_password_is_a_clear_error_not_a_prompt(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], secret_env: dict[str, str]
) -> None:
    env = {k: v for k, v in secret_env.items() if k != "TOOLHIVE_SECRETS_PASSWORD"}
    env["TOKEN_UNDER_TEST"] = "x"
    # An existing store (a new one would get a random password of its own, kept in a key file: #22.11)
    existing = EncryptedStore(default_path(secret_env), secret_env)
    existing.write("other", SecretValue("y"), expected_version=None, stack="someone", digest="d")
    path = write_manifest(
        tmp_path,
        stack,
        [http_with_secret(f"{stack}-w", "t")],
        secrets=[{"key": "t", "from": {"env": "TOKEN_UNDER_TEST"}}],
    )
    result = run_cli("apply", str(path), "--yes", env=env)
    assert result.code == 1
    assert "TOOLHIVE_SECRETS_PASSWORD" in result.output
    assert "no password for" in result.output  # the existing store is read at plan time already
    assert docker_api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]}) == []


def _files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


class Canaries:
    """Secret values shaped like the ones that leak: one plain, a PEM key, one with JSON-special and non-ASCII
    characters (and U+2028, which str.splitlines() splits), a JSON credentials document; plus the tool's own
    credentials. Each carries unique fragments on each of its lines: a fragment found anywhere means a value,
    or a line of it, or an escaped spelling of it, leaked."""

    def __init__(self) -> None:
        tag = [uuid.uuid4().hex for _ in range(10)]
        self.plain = f"canary-{tag[0]}"
        self.pem = "\n".join(
            [
                "-----BEGIN PRIVATE KEY-----",
                f"MIIEv{tag[1]}QIBADANBgkqhkiG9w0BAQEFAASC",
                f"BKcw{tag[2]}ggSjAgEAAoIBAQC7",
                "-----END PRIVATE KEY-----",
            ]
        )
        self.special = f'q"uo\\te-{tag[3]}-é🔑\u2028{tag[4]}'
        document = {
            "type": "service_account",
            "private_key_id": tag[5],
            "client_email": f"ci-{tag[6]}@example.test",
            "private_key": f"-----BEGIN PRIVATE KEY-----\nMII{tag[7]}\n-----END PRIVATE KEY-----\n",
        }
        self.credentials = json.dumps(document, indent=2)
        self.password = f'pw-{tag[8]}-"é\\'
        self.vault_token = f"hvs.{tag[9]}"
        self.fragments = tag

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """Every CLI run: the declared secrets' sources and the tool's credentials, all canaries."""
        return {
            **base,
            "TOOLHIVE_SECRETS_PASSWORD": self.password,
            "VAULT_TOKEN": self.vault_token,
            "CANARY_PLAIN": self.plain,
            "CANARY_PEM": self.pem,
            "CANARY_SPECIAL": self.special,
            "CANARY_CREDENTIALS": self.credentials,
        }

    def leaked(self, text: str) -> list[str]:
        return [fragment for fragment in self.fragments if fragment in text]


CANARY_SECRETS = [
    {"key": "plain", "from": {"env": "CANARY_PLAIN"}},
    {"key": "pem", "from": {"env": "CANARY_PEM"}},
    {"key": "special", "from": {"env": "CANARY_SPECIAL"}},
    {"key": "credentials", "from": {"env": "CANARY_CREDENTIALS"}},
]
GOOD_TARGETS = {"plain": "API_TOKEN", "pem": "PEM", "special": "SPECIAL", "credentials": "CREDENTIALS"}


def _leaky(name: str, secrets: dict[str, str]) -> dict[str, Any]:
    """Prints its secrets to its log and dies: the log tail shown in the error (text and JSON) must be scrubbed."""
    prints = "; ".join(f"print('token is', os.environ[{target!r}])" for target in secrets.values())
    return {
        "name": name,
        "image": HTTP_IMAGE,
        "secrets": [{"name": key, "target": target} for key, target in secrets.items()],
        "cmd_arguments": ["python3.11", "-c", f"import os, sys; {prints}; sys.exit(2)"],
        "group": "leaky",  # the client below serves the default group only: it does not wait for these
    }


def _check_containers(docker_api: Any, stack: str, canaries: Canaries, intended: dict[str, dict[str, str]]) -> None:
    """Labels, command, config and env of every container of the stack hold no canary, except the env entries a
    workload was meant to receive."""
    values = {key: getattr(canaries, key) for key in GOOD_TARGETS}
    for summary in docker_api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]}):
        inspected = docker_api.inspect_container(summary["Id"])
        mine = intended.get(inspected["Name"].lstrip("/"), {})
        allowed = {f"{target}={values[key]}" for key, target in mine.items()}
        inspected["Config"]["Env"] = [e for e in inspected["Config"]["Env"] or [] if e not in allowed]
        assert not canaries.leaked(json.dumps(inspected)), inspected["Name"]
        assert not canaries.leaked(json.dumps(summary["Labels"])), inspected["Name"]


def test_the_canary_never_leaks(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], secret_env: dict[str, str]
) -> None:
    canaries = Canaries()
    env = canaries.env(secret_env)
    good = {
        "name": f"{stack}-ok",
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "secrets": [{"name": key, "target": target} for key, target in GOOD_TARGETS.items()],
    }
    leaky_pem = _leaky(f"{stack}-leaky-pem", {"pem": "PEM", "special": "SPECIAL"})
    leaky_json = _leaky(f"{stack}-leaky-json", {"plain": "CANARY", "credentials": "CREDENTIALS"})
    cursor = tmp_path / "home" / ".cursor" / "mcp.json"
    path = write_manifest(
        tmp_path / "m",
        stack,
        [good, leaky_pem, leaky_json],
        secrets=CANARY_SECRETS,
        groups=[{"name": "leaky"}],
        clients=[{"name": "cursor", "config_path": str(cursor), "create": True}],
    )
    saved = tmp_path / "plan.json"
    outputs = [
        run_cli("validate", str(path), env=env),
        run_cli("validate", str(path), "--output", "json", env=env),
        run_cli("plan", str(path), env=env),
        run_cli("plan", str(path), "-v", "--explain", env=env),
        run_cli("plan", str(path), "--output", "json", env=env),
        run_cli("plan", str(path), "--out", str(saved), env=env),
        run_cli("apply", str(saved), "--yes", env=env),
        run_cli("apply", str(path), "--yes", env=env),
        run_cli("apply", str(path), "--yes", "--output", "json", env=env),
        run_cli("plan", str(path), "-v", "--output", "json", env=env),
        run_cli("export", "workloads", "--all", "--stack", stack, env=env),
        run_cli("export", "workload", f"{stack}-ok", env=env),
        run_cli("export", "workload", f"{stack}-ok", "--runconfig", env=env),
        run_cli("export", "--as-manifest", "--stack", stack, env=env),
        run_cli("export", "secrets", str(path), env=env),
        run_cli("export", "clients", "--stack", stack, env=env),
        run_cli("plan", str(path), env={**env, "DOCKER_HOST": "unix:///nonexistent.sock"}),
        run_cli("plan", str(path), "--output", "json", env={**env, "DOCKER_HOST": "unix:///nonexistent.sock"}),
    ]
    assert outputs[7].code == 1 and outputs[8].code == 1  # the leaky workloads failed ...
    assert sum(o.output.count("token is") for o in outputs) >= 4  # ... and the errors really showed the log tails
    recap, _ = json.JSONDecoder().raw_decode(outputs[8].stdout)  # the recap, then the error
    assert "token is" in json.dumps(recap)  # the JSON recap carries the log tail, escaped: scrubbed first
    assert cursor.exists()
    for result in outputs:
        assert not canaries.leaked(result.output), result
    for file in [saved, *_files_under(tmp_path / "state", tmp_path / "cache", tmp_path / "data", tmp_path / "home")]:
        assert not canaries.leaked(file.read_bytes().decode("utf-8", "replace")), file
    intended = {f"{stack}-ok": GOOD_TARGETS, leaky_pem["name"]: {"pem": "PEM", "special": "SPECIAL"}}
    intended[leaky_json["name"]] = {"plain": "CANARY", "credentials": "CREDENTIALS"}
    _check_containers(docker_api, stack, canaries, intended)
    ok = call_tool(url_of(stack, f"{stack}-ok", env), "get_env", {"name": "SPECIAL"})
    assert ok == canaries.special  # the intended target did get the value, whole

    destroyed = run_cli("destroy", str(path), "--yes", "--output", "json", env=env)
    assert destroyed.code == 0, destroyed
    assert not canaries.leaked(destroyed.output)


@pytest.mark.parametrize("secret", ["plain", "pem", "special", "credentials"])
def test_a_secret_value_in_a_plain_field_is_refused_naming_secret_and_field(
    docker_api: Any, tmp_path: Path, stack: str, secret: str, secret_env: dict[str, str]
) -> None:
    """env() of a declared secret's source puts its value in a field that is stored in clear (spec label, saved
    plan): refused at validate and plan, positioned, naming the secret and the field, never showing the value."""
    canaries = Canaries()
    env = canaries.env(secret_env)
    source = next(s["from"]["env"] for s in CANARY_SECRETS if s["key"] == secret)
    # env() of the secret's own source is refused outright (a credential the manifest names: #13.5); the same
    # value under another name is what this check exists for
    alias = f"COPY_OF_{source}"
    env[alias] = env[source]
    workload = {
        "name": f"{stack}-w",
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "env_vars": {"COPIED": f"prefix {{{{ env('{alias}') }}}}"},
        "labels": {"note": f"{{{{ env('{alias}') }}}}"},
    }
    path = write_manifest(tmp_path, stack, [workload], secrets=CANARY_SECRETS)
    saved = tmp_path / "plan.json"
    results = [
        run_cli("validate", str(path), env=env),
        run_cli("validate", str(path), "--output", "json", env=env),
        run_cli("plan", str(path), "--out", str(saved), env=env),
        run_cli("plan", str(path), "--output", "json", env=env),
        run_cli("apply", str(path), "--yes", env=env),
    ]
    for result in results:
        assert result.code == 1, result
        assert not canaries.leaked(result.output), result
    assert "stack.yaml:" in results[0].stderr
    for field in ("workloads[0].env_vars.COPIED", "workloads[0].labels.note"):
        assert f"the value of secret {secret!r} appears in field {field}" in results[0].stderr
    assert not saved.exists()
    assert docker_api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]}) == []


def test_an_error_quoting_a_bad_field_is_scrubbed_even_before_the_manifest_is_valid(
    tmp_path: Path, stack: str, secret_env: dict[str, str]
) -> None:
    """A schema error quotes the offending value; when that value is a secret's, it must be scrubbed although
    the manifest never got far enough for the secrets to be read."""
    canaries = Canaries()
    env = canaries.env(secret_env)
    workload = {"name": f"{stack}-w", "image": HTTP_IMAGE, "proxy_port": "{{ env('CANARY_SPECIAL') }}"}
    path = write_manifest(tmp_path, stack, [workload], secrets=CANARY_SECRETS)
    for args in (("validate",), ("validate", "--output", "json"), ("plan",)):
        result = run_cli(*args, str(path), env=env)
        assert result.code == 1, result
        assert "proxy_port" in result.output
        assert not canaries.leaked(result.output), result


@pytest.mark.parametrize("variable", ["VAULT_TOKEN", "TOOLHIVE_SECRETS_PASSWORD"])
def test_env_of_the_tools_credentials_never_leaks(
    docker_api: Any, tmp_path: Path, stack: str, variable: str, secret_env: dict[str, str]
) -> None:
    canaries = Canaries()
    env = canaries.env(secret_env)
    workload = {
        "name": f"{stack}-w",
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "env_vars": {"COPIED": f"{{{{ env('{variable}') }}}}"},
        "secrets": [{"name": "plain", "target": "API_TOKEN"}],
    }
    path = write_manifest(tmp_path, stack, [workload], secrets=CANARY_SECRETS)
    saved = tmp_path / "plan.json"
    results = [
        run_cli("validate", str(path), env=env),
        run_cli("validate", str(path), "--output", "json", env=env),
        run_cli("plan", str(path), "--out", str(saved), env=env),
        run_cli("plan", str(path), "--output", "json", env=env),
        run_cli("apply", str(path), "--yes", "--output", "json", env=env),
    ]
    for result in results:
        assert not canaries.leaked(result.output), result
    assert results[0].code == 1 and variable in results[0].stderr
    assert not saved.exists()  # the refused plan is not saved
    for file in [*_files_under(tmp_path / "state", tmp_path / "cache", tmp_path / "home")]:
        assert not canaries.leaked(file.read_bytes().decode("utf-8", "replace")), file
    _check_containers(docker_api, stack, canaries, {f"{stack}-w": {"plain": "API_TOKEN"}})
