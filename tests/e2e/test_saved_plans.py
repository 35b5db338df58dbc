"""Saved plans end to end, through the CLI against the real engine (and a real OpenBao for the vault store).

A saved plan is applied exactly as it was made or not at all: an edited file (image, privileged, host mounts,
action, stack, handle, MAC) is refused before anything reaches the engine. A saved plan is the approval, so the
GitOps flow (plan artefact, apply without a terminal) converges with every store, and destroy --prune-secrets
ends cleanly.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest

from tests.conftest import HTTP_IMAGE, TIME_IMAGE, TINY_MCP, private_env, remove_stack, run_cli, write_manifest
from tests.support.openbao import OpenBao, openbao_server
from toolhive_apply.engine.plan import plan_mac_key, seal
from toolhive_apply.providers.stack_key import stack_key
from toolhive_apply.providers.stack_record import record_name
from toolhive_apply.stores.factory import open_store

pytestmark = pytest.mark.docker

Document = dict[str, Any]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A private home, data, state and cache, and an encrypted store with a password: nothing of the developer's."""
    return private_env(tmp_path, SECRET_VALUE=f"value-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBao]:
    with openbao_server() as server:
        yield server


def owned(api: Any, stack: str) -> list[str]:
    found = api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]})
    return sorted(c["Names"][0].lstrip("/") for c in found)


def stdio_unit_and_record(stack: str) -> list[str]:
    """The containers a one-secret stack of one stdio workload owns: the unit of three and the stack record."""
    return sorted([f"{stack}-w", f"{stack}-w-gate", f"{stack}-w-proxy", record_name(stack)])


def stack_networks(api: Any, stack: str) -> list[str]:
    return sorted(n["Name"] for n in api.networks() if n["Name"].startswith(f"toolhive-apply.{stack}"))


def secret_stack(directory: Path, stack: str, **settings: Any) -> Path:
    workload = {"name": f"{stack}-w", "image": TIME_IMAGE, "cmd_arguments": TINY_MCP}
    workload["secrets"] = [{"name": "tok", "target": "TOK"}]
    secrets = [{"key": "tok", "from": {"env": "SECRET_VALUE"}}]
    return write_manifest(directory, stack, [workload], settings={"stack": stack, **settings}, secrets=secrets)


def saved_plan(path: Path, out: Path, env: dict[str, str]) -> Document:
    made = run_cli("plan", str(path), "--out", str(out), env=env)
    assert made.code == 0, made
    document: Document = json.loads(out.read_text(encoding="utf-8"))
    return document


def workload_change(document: Document) -> Document:
    change: Document = next(c for c in document["changes"] if c["kind"] == "workload")
    return change


def show(change: Document, path: str, value: object) -> None:
    """Make the displayed attribute lines say what the spec says, as a careful forger would."""
    change["fields"] = [f for f in change["fields"] if f["path"] != path]
    change["fields"].append({"path": path, "before": None, "after": value, "sensitive": False})


def image(document: Document, _: Document) -> str:
    spec = workload_change(document)["desired"]["spec"]
    spec["image"] = "toolhive-apply-test/python:latest"
    show(workload_change(document), "image", spec["image"])
    return "MAC does not match"


def privileged(document: Document, _: Document) -> str:
    spec = workload_change(document)["desired"]["spec"]
    spec["permission_profile"]["privileged"] = True
    spec["allow_privileged"] = True
    show(workload_change(document), "permission_profile.privileged", True)
    return "MAC does not match"


def host_mounts(document: Document, _: Document) -> str:
    spec = workload_change(document)["desired"]["spec"]
    spec["volumes"] = ["/:/host:rw", "/var/run/docker.sock:/var/run/docker.sock:rw"]
    spec["allow_host_paths"] = ["/", "/var/run/docker.sock"]
    show(workload_change(document), "volumes", spec["volumes"])
    return "MAC does not match"


def action(document: Document, _: Document) -> str:
    workload_change(document)["action"] = "start"
    return "MAC does not match"


def no_mac(document: Document, _: Document) -> str:
    del document["mac"]
    return "not signed"


def mac_of_another_stack(document: Document, other: Document) -> str:
    document["mac"] = other["mac"]
    return "MAC does not match"


def stack_renamed(document: Document, other: Document) -> str:
    document["stack"] = other["stack"]  # a stack whose key exists in the same store
    return "MAC does not match"


def docker_host(document: Document, _: Document) -> str:
    document["settings"]["docker_host"] = "unix:///nonexistent.sock"
    return "MAC does not match"


TAMPERS: list[Callable[[Document, Document], str]] = [
    image,
    privileged,
    host_mounts,
    action,
    no_mac,
    mac_of_another_stack,
    stack_renamed,
    docker_host,
]


def test_an_edited_saved_plan_is_refused_and_nothing_reaches_the_engine(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    other_stack = f"{stack}-b"
    try:
        document = saved_plan(secret_stack(tmp_path / "a", stack), tmp_path / "a.json", env)
        other = saved_plan(secret_stack(tmp_path / "b", other_stack), tmp_path / "b.json", env)
        for tamper in TAMPERS:
            edited = json.loads(json.dumps(document))
            expected = tamper(edited, other)
            path = tmp_path / f"{tamper.__name__}.json"
            path.write_text(json.dumps(edited, indent=2), encoding="utf-8")
            result = run_cli("apply", str(path), env=env)
            assert result.code == 1, (tamper.__name__, result)
            assert expected in result.stderr, (tamper.__name__, result)
            assert "RECAP" not in result.stdout, tamper.__name__  # refused before anything was shown or run
            assert owned(docker_api, stack) == [] and owned(docker_api, other_stack) == [], tamper.__name__
        untouched = run_cli("apply", str(tmp_path / "a.json"), env=env)
        assert untouched.code == 0, untouched  # the refusals were about the edits, not the plan
        assert owned(docker_api, stack) == stdio_unit_and_record(stack)
    finally:
        remove_stack(docker_api, other_stack)


def test_a_saved_plan_whose_specs_fail_the_manifests_checks_is_refused_even_with_a_valid_mac(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    """Defence in depth: even a plan signed with the stack's key (an older version's, a leaked key) must pass the
    manifest's checks on what it would run."""
    document = saved_plan(secret_stack(tmp_path / "m", stack), tmp_path / "plan.json", env)
    key = stack_key(open_store({"provider": "encrypted"}, env), stack, create=False)
    assert key is not None
    cases = {
        "socket": ("volumes", ["/var/run/docker.sock:/var/run/docker.sock:rw"], "mounting the Docker socket"),
        "privileged": ("permission_profile", {"privileged": True}, "needs allow_privileged: true"),
    }
    for name, (field, value, expected) in cases.items():
        edited = json.loads(json.dumps(document))
        change = workload_change(edited)
        change["desired"]["spec"][field] = value
        change["fields"] = []  # a create must show every attribute: this one now hides some
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(seal(edited, plan_mac_key(key, stack))), encoding="utf-8")
        result = run_cli("apply", str(path), env=env)
        assert result.code == 1, result
        assert expected in result.stderr, (name, result)
        assert "the plan shows another value than it would apply" in result.stderr, (name, result)
        assert owned(docker_api, stack) == []


def test_plan_out_writes_a_private_file_and_follows_no_planted_link(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    path = secret_stack(tmp_path / "m", stack)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n", encoding="utf-8")
    out = tmp_path / "plans" / "plan.json"
    out.parent.mkdir()
    out.symlink_to(victim)
    for name in (".plan.json.tmp", "plan.json.tmp"):  # the names an older version wrote through
        (out.parent / name).symlink_to(victim)
    assert run_cli("plan", str(path), "--out", str(out), env=env).code == 0
    assert victim.read_text(encoding="utf-8") == "untouched\n"
    assert not out.is_symlink() and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in out.parent.iterdir()) == [".plan.json.tmp", "plan.json", "plan.json.tmp"]
    key_file = Path(env["XDG_DATA_HOME"]) / "toolhive" / "secrets_encrypted"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # the store holding the stack's key
    assert run_cli("plan", str(path), "--out", str(tmp_path / "absent" / "plan.json"), env=env).code == 1


def test_a_plan_file_of_any_shape_is_a_clear_error_before_any_store_is_opened(
    tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    document = saved_plan(secret_stack(tmp_path / "m", stack), tmp_path / "plan.json", env)
    shapes: list[Any] = ["vault", {"provider": "vault", "vault": "x"}, {"provider": "nope"}, {"encrypted": []}]
    for secrets in shapes:
        edited = {**document, "settings": {**document["settings"], "secrets": secrets}}
        path = tmp_path / "odd.json"
        path.write_text(json.dumps(edited), encoding="utf-8")
        result = run_cli("apply", str(path), env=env)  # run_cli fails the test on any traceback
        assert result.code == 1 and "cannot read plan file: settings.secrets" in result.stderr, (secrets, result)
    odd_parallelism = {**document["settings"], "parallelism": "x"}
    for edited in ({**document, "changes": "x"}, {**document, "settings": odd_parallelism}):
        path.write_text(json.dumps(edited), encoding="utf-8")
        result = run_cli("apply", str(path), env=env)
        assert result.code == 1 and "MAC does not match" in result.stderr, result


def test_options_cannot_change_a_saved_plan(
    tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    out = tmp_path / "plan.json"
    saved_plan(secret_stack(tmp_path / "m", stack), out, env)
    for option in (["--target", "x"], ["--replace", "x"], ["--var", "a=b"], ["--allow-empty"], ["--prune-secrets"]):
        result = run_cli("apply", str(out), *option, env=env)
        assert result.code == 1 and "cannot change a saved plan" in result.stderr, (option, result)
    pinned = run_cli("apply", str(out), "--stack", "another-stack", env=env)  # a pipeline accepts its own stack only
    assert pinned.code == 1 and f"the plan is for stack {stack!r}, not 'another-stack'" in pinned.stderr, pinned


# -- the GitOps flow with every store ---------------------------------------------------------------------------


def gitops_round(docker_api: Any, tmp_path: Path, stack: str, path: Path, env: dict[str, str]) -> None:
    """Plan artefact, apply it without a terminal and without --yes, converge, destroy with --prune-secrets."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "plan.tfplan.json"
    planned = run_cli("plan", str(path), "--detailed-exitcode", "--out", str(out), env=env)
    assert planned.code == 2, planned
    applied = run_cli("apply", str(out), env=env)  # stdin is not a terminal (run_cli)
    assert applied.code == 0, applied
    assert "did not converge" not in applied.output
    assert owned(docker_api, stack) == stdio_unit_and_record(stack)
    container_env = docker_api.inspect_container(f"{stack}-w")["Config"]["Env"]
    assert f"TOK={env.get('SECRET_VALUE') or env.get('TOOLHIVE_SECRET_tok')}" in container_env
    assert run_cli("plan", str(path), "--detailed-exitcode", env=env).code == 0
    again = run_cli("apply", str(out), env=env)
    assert again.code == 1 and "stale" in again.stderr
    destroyed = run_cli("destroy", str(path), "--prune-secrets", "--yes", env=env)
    assert destroyed.code == 0, destroyed
    assert "did not converge" not in destroyed.output
    assert owned(docker_api, stack) == [] and stack_networks(docker_api, stack) == []


def test_the_gitops_flow_converges_with_the_encrypted_store(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    gitops_round(docker_api, tmp_path, stack, secret_stack(tmp_path / "m", stack), env)
    store = open_store({"provider": "encrypted"}, env)
    assert [s.key for s in store.list()] == []  # the secret and the stack key are gone: pruned


def test_the_gitops_flow_converges_with_the_vault_store(
    docker_api: Any, bao: OpenBao, tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    vault_env = {**env, "VAULT_TOKEN": bao.root_token, "VAULT_ADDR": bao.address}
    del vault_env["TOOLHIVE_SECRETS_PASSWORD"]
    settings = {"provider": "vault", "vault": {"address": bao.address, "mount": "secret", "path_prefix": stack}}
    gitops_round(docker_api, tmp_path, stack, secret_stack(tmp_path / "m", stack, secrets=settings), vault_env)
    for key in ("tok", f"toolhive-apply.hmac.{stack}"):
        with pytest.raises(hvac.exceptions.InvalidPath):
            bao.client().secrets.kv.v2.read_secret_metadata(f"{stack}/{key}", mount_point="secret")


def test_the_gitops_flow_converges_with_the_environment_store(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    path = tmp_path / "m"
    workload = {"name": f"{stack}-w", "image": TIME_IMAGE, "cmd_arguments": TINY_MCP}
    workload["secrets"] = [{"name": "tok", "target": "TOK"}]
    write_manifest(
        path,
        stack,
        [workload],
        settings={"stack": stack, "secrets": {"provider": "environment"}},
        secrets=[{"key": "tok", "present": True}],
    )
    ci_env = {k: v for k, v in env.items() if k != "SECRET_VALUE"}
    ci_env |= {"TOOLHIVE_SECRET_tok": "from-the-ci", "TOOLHIVE_APPLY_HMAC_KEY": uuid.uuid4().hex}
    gitops_round(docker_api, tmp_path / "with-key", stack, path / "stack.yaml", ci_env)
    # without TOOLHIVE_APPLY_HMAC_KEY the key is a random local file: the same machine verifies its own plans ...
    local_env = {k: v for k, v in ci_env.items() if k != "TOOLHIVE_APPLY_HMAC_KEY"}
    gitops_round(docker_api, tmp_path / "local", stack, path / "stack.yaml", local_env)
    key_file = Path(env["XDG_STATE_HOME"]) / "toolhive-apply" / "keys" / f"{stack}.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    # ... and a machine without the key refuses the plan, applying nothing
    out = tmp_path / "plan.json"
    assert run_cli("plan", str(path / "stack.yaml"), "--out", str(out), env=local_env).code == 0
    elsewhere = {**local_env, "XDG_STATE_HOME": str(tmp_path / "other-machine")}
    refused = run_cli("apply", str(out), env=elsewhere)
    assert refused.code == 1 and "has no key" in refused.stderr, refused
    assert owned(docker_api, stack) == []


def test_a_saved_vault_plan_is_applied_only_when_vault_addr_confirms_the_vault_it_names(
    docker_api: Any, bao: OpenBao, tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    vault_env = {**env, "VAULT_TOKEN": bao.root_token, "VAULT_ADDR": bao.address}
    settings = {"provider": "vault", "vault": {"address": bao.address, "mount": "secret", "path_prefix": stack}}
    out = tmp_path / "plan.json"
    saved_plan(secret_stack(tmp_path / "m", stack, secrets=settings), out, vault_env)
    without = {k: v for k, v in vault_env.items() if k != "VAULT_ADDR"}
    for applying in (without, {**vault_env, "VAULT_ADDR": "http://127.0.0.1:9"}):
        result = run_cli("apply", str(out), env=applying)
        assert result.code == 1 and "refusing to log in anywhere a plan file names" in result.stderr, result
        assert owned(docker_api, stack) == []
    assert run_cli("apply", str(out), env=vault_env).code == 0


# -- destroy -----------------------------------------------------------------------------------------------------


def test_destroy_after_a_failed_first_create_leaves_no_network_behind(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    crashing = {
        "name": f"{stack}-crash",
        "image": HTTP_IMAGE,
        "cmd_arguments": ["python3.11", "-c", "import sys; sys.exit(3)"],
        "ready_timeout": 5,
    }
    path = write_manifest(tmp_path, stack, [crashing])
    assert run_cli("apply", str(path), "--yes", env=env).code == 1
    assert owned(docker_api, stack) == [] and stack_networks(docker_api, stack) == [f"toolhive-apply.{stack}"]
    destroyed = run_cli("destroy", str(path), "--yes", env=env)
    assert destroyed.code == 0, destroyed
    assert f"workload/toolhive-apply.{stack} will be deleted" in destroyed.stdout  # shown, then done
    assert stack_networks(docker_api, stack) == []
    assert "Nothing to destroy" in run_cli("destroy", str(path), "--yes", env=env).stdout


def test_the_stack_key_never_leaks_into_the_plan_file(
    tmp_path: Path, stack: str, test_images: dict[str, str], env: dict[str, str]
) -> None:
    out = tmp_path / "plan.json"
    saved_plan(secret_stack(tmp_path / "m", stack), out, env)
    key = stack_key(open_store({"provider": "encrypted"}, env), stack, create=False)
    assert key is not None
    text = out.read_text(encoding="utf-8")
    assert key.hex() not in text and plan_mac_key(key, stack).hex() not in text
    assert env["SECRET_VALUE"] not in text
    assert os.environ.get("TOOLHIVE_APPLY_HMAC_KEY") is None or os.environ["TOOLHIVE_APPLY_HMAC_KEY"] not in text
