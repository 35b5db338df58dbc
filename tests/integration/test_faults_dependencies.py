"""Dependencies failing in the middle of a run: the Docker engine, the Vault server, a registry, a client file.

Each fault is injected at a chosen point between the tool and a real service (no mocks): the Docker fault hook
(docker_client.py) stops the apply with SIGSTOP right after a given engine write, the test breaks the dependency,
and the apply continues. Every case must end with one clear error naming the cause, a non-zero exit, no file
corrupted (client files compared byte for byte) and no traceback; the next apply must then finish the job and the
plan after it must be empty. Every stack carries a secret canary that no output, log, state file, backup or label
may contain.

Stopping the real dockerd only happens where the suite owns it (`.ci/run` sets TOOLHIVE_APPLY_TEST_RESTART_DOCKERD);
everywhere else a socket forwarder in front of the engine is cut instead, which the tool cannot tell apart.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, ROOT
from tests.support.dockerd import owns_dockerd, start_dockerd, stop_dockerd
from tests.support.faults import (
    FaultStack,
    SocketForwarder,
    inventory,
    mcp_servers,
    purge_stack,
    registry_server,
    server_url,
    unwritable,
    vault_fault_proxy,
)
from tests.support.openbao import OpenBao, openbao_server
from toolhive_apply.providers.stack_record import record_name
from toolhive_apply.stores.vault_index import INDEX_KEY

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Engine writes of a fresh two-workload apply: 1 takes the lock, 2 creates the stack network, 3 and 4 create and
# start the first server; the fault strikes after 4, before its proxy exists.
AFTER_FIRST_SERVER_STARTED = 4
AFTER_NETWORK_CREATED = 2  # the secret phase is over (it needs no engine write), no workload exists yet


@pytest.fixture
def stack(stack: str, docker_api: Any) -> Iterator[str]:
    """The conftest's stack, purged with retries before its own teardown runs (see purge_stack)."""
    yield stack
    purge_stack(docker_api, stack)


def http_workload(name: str, secret: str = "canary") -> dict[str, Any]:
    return {
        "name": name,
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "secrets": [{"name": secret, "target": "API_TOKEN"}],
    }


def expected_containers(*names: str, stack: str) -> list[str]:
    """The servers, their proxies and the stack record."""
    return sorted([*names, *(f"{n}-proxy" for n in names), record_name(stack)])


def assert_converged(fs: FaultStack, api: Any, path: Path, names: list[str], env: dict[str, str] | None = None) -> None:
    """The stack owns exactly its workloads (running), one network, no lock; Cursor lists them; the plan is empty."""
    found = inventory(api, fs.stack)
    assert found.names == expected_containers(*names, stack=fs.stack), found
    assert all(state == "running" for state in found.units.values()), found
    assert found.networks == [f"toolhive-apply.{fs.stack}"], found
    assert not found.locked
    assert sorted(mcp_servers(fs.cursor)) == sorted([*names, "hand-written"])
    plan = fs.run("plan", str(path), "--detailed-exitcode", env=env)
    assert plan.code == 0, plan


def assert_clean_failure(error: str, *causes: str) -> None:
    for cause in causes:
        assert cause in error, error
    assert "Traceback" not in error and "internal error" not in error, error


# ---------------------------------------------------------------------------------------------------------------
# the Docker engine
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for unix sockets (their paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="thv-sock-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_engine_going_away_mid_apply_fails_clearly_and_the_next_apply_finishes(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], socket_dir: Path
) -> None:
    fs = FaultStack(tmp_path, stack)
    names = [f"{stack}-a", f"{stack}-b"]
    path = fs.write([http_workload(n) for n in names])
    cursor_before = fs.cursor.read_bytes()
    forwarder = SocketForwarder(socket_dir / "engine.sock")
    run = fs.start(
        ["apply", str(path), "--yes", "--parallelism", "1"],
        env={"DOCKER_HOST": forwarder.url},
        fault_after=AFTER_FIRST_SERVER_STARTED,
        fault_signal="SIGSTOP",
    )
    try:
        run.wait_stopped()
    finally:
        forwarder.cut()  # the engine goes away while the apply is stopped between two calls
        run.resume()
        code = fs.finished(run)
    assert code == 1, run.output
    assert_clean_failure(run.error_text, f"Docker at {forwarder.url} is not available", "is dockerd running?")
    assert fs.cursor.read_bytes() == cursor_before  # the client depends on the workloads: never touched

    healed = fs.run("apply", str(path), "--yes")  # the engine is back (its real socket)
    assert healed.code == 0, healed
    assert_converged(fs, docker_api, path, names)
    fs.assert_no_canary(docker_api)


@owns_dockerd
def test_dockerd_stopped_mid_apply_fails_clearly_and_the_next_apply_finishes(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    fs = FaultStack(tmp_path, stack)
    names = [f"{stack}-a", f"{stack}-b"]
    path = fs.write([http_workload(n) for n in names])
    cursor_before = fs.cursor.read_bytes()
    run = fs.start(
        ["apply", str(path), "--yes", "--parallelism", "1"],
        env={"DOCKER_HOST": "unix:///var/run/docker.sock"},
        fault_after=AFTER_FIRST_SERVER_STARTED,
        fault_signal="SIGSTOP",
    )
    try:
        run.wait_stopped()
        stop_dockerd()
    finally:
        run.resume()
        code = fs.finished(run)
        start_dockerd()  # whatever happened, the engine the other tests need is back
    assert code == 1, run.output
    assert_clean_failure(
        run.error_text, "Docker at unix:///var/run/docker.sock is not available", "is dockerd running?"
    )
    assert fs.cursor.read_bytes() == cursor_before

    healed = fs.run("apply", str(path), "--yes")
    assert healed.code == 0, healed
    assert_converged(fs, docker_api, path, names)
    fs.assert_no_canary(docker_api)


# ---------------------------------------------------------------------------------------------------------------
# the Vault (OpenBao) server
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBao]:
    with openbao_server() as server:
        yield server


WRITER = """
path "secret/data/{prefix}/*"     {{ capabilities = ["create", "read", "update"] }}
path "secret/metadata/{prefix}/*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}
path "secret/metadata/{prefix}"   {{ capabilities = ["list"] }}
"""
REVOKED = """
path "secret/*" { capabilities = ["deny"] }
"""


class VaultStack:
    """A stack whose secrets live in OpenBao under its own prefix, reached through a fault proxy, with a token
    whose policy (own to this stack) the test can revoke."""

    def __init__(self, fs: FaultStack, bao: OpenBao, proxy_address: str) -> None:
        self.fs = fs
        self.bao = bao
        self.policy = f"writer-{fs.stack}"
        bao.write_policy(self.policy, WRITER.format(prefix=fs.stack))
        self.env = {"VAULT_TOKEN": bao.create_token([self.policy]), "CANARY_TWO": f"{fs.canary}-two"}
        self.names = [f"{fs.stack}-a", f"{fs.stack}-b"]
        vault = {"address": proxy_address, "mount": "secret", "path_prefix": fs.stack}
        self.path = fs.write(
            [http_workload(self.names[0], "alpha"), http_workload(self.names[1], "beta")],
            settings={"stack": fs.stack, "secrets": {"provider": "vault", "vault": vault}},
            secrets=[
                {"key": "alpha", "from": {"env": "CANARY_VALUE"}},
                {"key": "beta", "from": {"env": "CANARY_TWO"}},
            ],
        )

    def revoke(self) -> None:
        self.bao.write_policy(self.policy, REVOKED)

    def restore(self) -> None:
        self.bao.write_policy(self.policy, WRITER.format(prefix=self.fs.stack))

    def first_value_write(self, method: str, path: str, status: int) -> bool:
        """The first write of a secret's value (not of the index) that the server accepted."""
        prefix = f"/v1/secret/data/{self.fs.stack}/"
        return method in ("POST", "PUT") and path.startswith(prefix) and not path.endswith(INDEX_KEY) and status < 300


def test_vault_sealed_between_two_secret_writes_fails_clearly_and_the_next_apply_finishes(
    docker_api: Any, bao: OpenBao, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    fs = FaultStack(tmp_path, stack)
    cursor_before = fs.cursor.read_bytes()
    with vault_fault_proxy(bao.address) as proxy:
        vs = VaultStack(fs, bao, proxy.address)
        proxy.arm(vs.first_value_write, bao.seal)
        try:
            failed = fs.run("apply", str(vs.path), "--yes", "--parallelism", "1", env=vs.env)
        finally:
            bao.unseal()
        assert proxy.struck
        assert failed.code == 1, failed
        assert_clean_failure(failed.stderr, f"Vault secret store at {proxy.address}", "the server is sealed")
        # every workload needs a secret that failed: skipped (the stack record, needing none, was written)
        assert inventory(docker_api, stack).units == {}
        assert fs.cursor.read_bytes() == cursor_before

        healed = fs.run("apply", str(vs.path), "--yes", env=vs.env)
        assert healed.code == 0, healed
        assert_converged(fs, docker_api, vs.path, vs.names, env=vs.env)
    fs.assert_no_canary(docker_api)


def test_vault_policy_revoked_between_the_secret_and_workload_phases_fails_clearly_and_the_next_apply_finishes(
    docker_api: Any, bao: OpenBao, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    fs = FaultStack(tmp_path, stack)
    with vault_fault_proxy(bao.address) as proxy:
        vs = VaultStack(fs, bao, proxy.address)
        run = fs.start(
            ["apply", str(vs.path), "--yes", "--parallelism", "1"],
            env=vs.env,
            fault_after=AFTER_NETWORK_CREATED,
            fault_signal="SIGSTOP",
        )
        try:
            run.wait_stopped()
            vs.revoke()
        finally:
            run.resume()
            code = fs.finished(run)
            vs.restore()
        assert code == 1, run.output
        assert_clean_failure(run.error_text, f"Vault secret store at {proxy.address}", "permission denied (HTTP 403)")
        # the workloads had their values already; what failed is the check that the secrets converged

        healed = fs.run("apply", str(vs.path), "--yes", env=vs.env)
        assert healed.code == 0, healed
        assert_converged(fs, docker_api, vs.path, vs.names, env=vs.env)
    fs.assert_no_canary(docker_api)


# ---------------------------------------------------------------------------------------------------------------
# a registry
# ---------------------------------------------------------------------------------------------------------------
def test_a_registry_that_stops_answering_fails_clearly_and_the_next_apply_finishes(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    fs = FaultStack(tmp_path, stack)
    document = json.loads((ROOT / "examples" / "registry" / "registry.json").read_text())
    cursor_before = fs.cursor.read_bytes()
    with registry_server(document) as server:
        url = server_url(server)
        name = f"{stack}-time"
        workload = {
            "name": name,
            "registry": "remote",
            "server": "time",
            "secrets": [{"name": "canary", "target": "T"}],
        }
        path = fs.write([workload], registries=[{"name": "remote", "url": url, "allow_private_ip": True}])
        server.hanging.set()  # accepts the connection and never answers: the client's timeout must end the wait
        failed = fs.run("apply", str(path), "--yes")
        assert failed.code == 1, failed
        assert_clean_failure(failed.stderr, f"registry 'remote' ({url}): unreachable", "timed out")
        assert inventory(docker_api, stack).names == []
        assert fs.cursor.read_bytes() == cursor_before

        server.hanging.clear()
        healed = fs.run("apply", str(path), "--yes")
        assert healed.code == 0, healed
        found = inventory(docker_api, stack)
        # the registry's time server is stdio: its unit has a docker gate too
        registry = f"toolhive-apply-registry.{stack}.remote"
        expected = [*expected_containers(name, stack=stack), f"{name}-gate", registry]
        assert found.names == sorted(expected)
        assert sorted(mcp_servers(fs.cursor)) == sorted([name, "hand-written"])
        assert fs.run("plan", str(path), "--detailed-exitcode").code == 0
    fs.assert_no_canary(docker_api)


# ---------------------------------------------------------------------------------------------------------------
# a client config file
# ---------------------------------------------------------------------------------------------------------------
REFUSALS = ("Operation not permitted", "Permission denied", "Read-only file system", "Device or resource busy")


def test_an_unwritable_client_file_or_directory_fails_clearly_and_the_next_apply_finishes(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    fs = FaultStack(tmp_path, stack)
    names = [f"{stack}-a", f"{stack}-b"]
    assert fs.run("apply", str(fs.write([http_workload(names[0])])), "--yes").code == 0
    path = fs.write([http_workload(n) for n in names])  # one more workload: its entry must be added
    before = fs.cursor.read_bytes()
    backup = fs.cursor.with_name("mcp.json.bak")

    with unwritable(fs.cursor) as how:
        failed = fs.run("apply", str(path), "--yes")
    assert failed.code == 1, failed
    assert_clean_failure(failed.stderr, f"client/cursor: failed: update failed: {fs.cursor}: write failed")
    assert any(why in failed.stderr for why in REFUSALS), (how, failed.stderr)
    assert fs.cursor.read_bytes() == before
    assert inventory(docker_api, stack).names == expected_containers(*names, stack=stack)  # the workloads were made

    with unwritable(fs.cursor.parent):
        failed = fs.run("apply", str(path), "--yes")
    assert failed.code == 1, failed
    assert_clean_failure(failed.stderr, f"client/cursor: failed: update failed: {fs.cursor}: cannot open the lock file")
    assert any(why in failed.stderr for why in REFUSALS), failed.stderr
    assert fs.cursor.read_bytes() == before
    leftovers = sorted(p.name for p in fs.cursor.parent.iterdir())
    assert leftovers == ["mcp.json", "mcp.json.bak"], leftovers  # no temp file, no lock file

    healed = fs.run("apply", str(path), "--yes")
    assert healed.code == 0, healed
    assert backup.read_bytes() == before  # the version before this write, kept as ToolHive keeps it
    assert_converged(fs, docker_api, path, names)
    fs.assert_no_canary(docker_api)
