"""Workloads against the real Docker engine: create, no-op, replace, prune, repair, conflict, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, TIME_IMAGE, run_cli, write_manifest
from tests.support.mcp_client import call_tool, list_tools
from toolhive_apply.providers.workload.spec import PROXY_LISTEN_PORT

pytestmark = pytest.mark.docker


def containers(api: Any, stack: str, role: str | None = None) -> dict[str, dict[str, Any]]:
    """The stack's MCP server containers (or, with role="proxy", their proxies), by name."""
    found = api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}", "toolhive=true"]})
    return {c["Names"][0].lstrip("/"): c for c in found if c["Labels"].get("toolhive-apply.role") == role}


def http_workload(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": HTTP_IMAGE, "transport": "streamable-http", **extra}


def stdio_workload(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": TIME_IMAGE, **extra}


@pytest.fixture
def two_workloads(tmp_path: Path, stack: str, test_images: dict[str, str]) -> Path:
    return write_manifest(
        tmp_path, stack, [http_workload(f"{stack}-web", env_vars={"GREETING": "hi"}), stdio_workload(f"{stack}-time")]
    )


def test_apply_creates_labelled_hardened_containers_and_a_second_plan_is_a_no_op(
    docker_api: Any, stack: str, two_workloads: Path
) -> None:
    result = run_cli("apply", str(two_workloads), "--yes")
    assert result.code == 0, result
    assert "changed=2 failed=0" in result.stdout
    found = containers(docker_api, stack)
    assert set(found) == {f"{stack}-web", f"{stack}-time"}
    web = docker_api.inspect_container(f"{stack}-web")
    labels = web["Config"]["Labels"]
    assert labels["toolhive"] == "true"
    assert labels["toolhive-name"] == labels["toolhive-basename"] == f"{stack}-web"
    assert labels["toolhive-transport"] == "streamable-http"
    assert labels["toolhive-apply.stack"] == stack
    assert web["HostConfig"]["CapDrop"] == ["ALL"]
    assert web["HostConfig"]["Privileged"] is False
    assert web["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert not web["HostConfig"]["PortBindings"]  # only the proxy publishes, on loopback
    proxy = docker_api.inspect_container(f"{stack}-web-proxy")
    assert proxy["HostConfig"]["PortBindings"][f"{PROXY_LISTEN_PORT}/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": labels["toolhive-port"]}
    ]
    assert proxy["HostConfig"]["ReadonlyRootfs"] is True and proxy["HostConfig"]["CapDrop"] == ["ALL"]
    assert proxy["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert proxy["Config"]["Labels"]["toolhive-auxiliary-workload"] == "true"
    assert set(containers(docker_api, stack, role="proxy")) == {f"{stack}-web-proxy", f"{stack}-time-proxy"}
    stdio = docker_api.inspect_container(f"{stack}-time")
    assert stdio["Config"]["OpenStdin"] is True and stdio["Config"]["StdinOnce"] is False
    assert not stdio["HostConfig"]["PortBindings"]

    again = run_cli("plan", str(two_workloads), "--detailed-exitcode")
    assert again.code == 0, again
    assert "No changes." in again.stdout


def test_the_real_mcp_client_reaches_http_and_stdio_workloads_through_their_proxies(
    stack: str, two_workloads: Path
) -> None:
    assert run_cli("apply", str(two_workloads), "--yes").code == 0
    exported = json.loads(run_cli("export", "workloads", "--stack", stack).stdout)
    urls = {w["name"]: w["url"] for w in exported["workloads"]}
    assert set(urls) == {f"{stack}-web", f"{stack}-time"}  # the proxies are not listed as workloads
    web, time_server = urls[f"{stack}-web"], urls[f"{stack}-time"]
    assert web.startswith("http://127.0.0.1:") and web.endswith("/mcp")
    assert {"echo", "add", "get_env"} <= set(list_tools(web))
    assert call_tool(web, "get_env", {"name": "GREETING"}) == "hi"
    assert call_tool(web, "add", {"a": 2, "b": 3}) == "5"
    assert {"get_current_time", "convert_time"} <= set(list_tools(time_server))
    assert '"timezone": "UTC"' in call_tool(time_server, "get_current_time", {"timezone": "UTC"})


def test_changing_one_field_replaces_only_that_workload_and_says_why(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    workloads = [http_workload(f"{stack}-a", env_vars={"X": "1"}), stdio_workload(f"{stack}-b")]
    path = write_manifest(tmp_path, stack, workloads)
    assert run_cli("apply", str(path), "--yes").code == 0
    before = {name: c["Id"] for name, c in containers(docker_api, stack).items()}

    workloads[0]["env_vars"] = {"X": "2"}
    write_manifest(tmp_path, stack, workloads)
    plan = run_cli("plan", str(path), "--detailed-exitcode")
    assert plan.code == 2, plan
    assert f"workload/{stack}-a must be replaced (config changed: env_vars.X)" in plan.stdout
    assert '~ env_vars.X: "1" -> "2"' in plan.stdout
    assert "0 to create, 0 to update, 1 to replace, 0 to delete" in plan.stdout

    assert run_cli("apply", str(path), "--yes").code == 0
    after = {name: c["Id"] for name, c in containers(docker_api, stack).items()}
    assert after[f"{stack}-b"] == before[f"{stack}-b"]
    assert after[f"{stack}-a"] != before[f"{stack}-a"]
    assert set(after) == set(before)  # the old container was removed, not left aside
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0


def test_a_workload_removed_from_the_manifest_is_pruned_unless_prune_is_false(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    keep, gone, sticky = (
        stdio_workload(f"{stack}-keep"),
        stdio_workload(f"{stack}-gone"),
        stdio_workload(f"{stack}-sticky", prune=False),
    )
    path = write_manifest(tmp_path, stack, [keep, gone, sticky])
    assert run_cli("apply", str(path), "--yes").code == 0
    write_manifest(tmp_path, stack, [keep])
    plan = run_cli("plan", str(path))
    assert f"workload/{stack}-gone will be deleted (not declared any more)" in plan.stdout
    assert f"prune: false): workload/{stack}-sticky" in plan.stdout
    assert run_cli("apply", str(path), "--yes").code == 0
    assert set(containers(docker_api, stack)) == {f"{stack}-keep", f"{stack}-sticky"}


def test_a_container_stopped_or_removed_by_hand_is_reported_and_repaired(
    docker_api: Any, stack: str, two_workloads: Path
) -> None:
    assert run_cli("apply", str(two_workloads), "--yes").code == 0
    docker_api.stop(f"{stack}-web", timeout=2)
    docker_api.remove_container(f"{stack}-time", force=True)
    plan = run_cli("plan", str(two_workloads), "--detailed-exitcode")
    assert plan.code == 2
    assert f"workload/{stack}-web will be started (container exited)" in plan.stdout
    assert f"workload/{stack}-time will be created (not present)" in plan.stdout
    assert run_cli("apply", str(two_workloads), "--yes").code == 0
    states = {name: c["State"] for name, c in containers(docker_api, stack).items()}
    assert states == {f"{stack}-web": "running", f"{stack}-time": "running"}


def test_a_foreign_container_with_the_same_name_is_a_conflict_and_is_left_alone(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    name = f"{stack}-taken"
    foreign = docker_api.create_container(TIME_IMAGE, name=name, labels={"toolhive": "true"})
    try:
        path = write_manifest(tmp_path, stack, [stdio_workload(name)])
        result = run_cli("apply", str(path), "--yes")
        assert result.code == 1
        assert f"workload/{name}: container '{name}' already exists and is owned by nobody we know" in result.stderr
        assert docker_api.inspect_container(name)["Id"] == foreign["Id"]
    finally:
        docker_api.remove_container(foreign["Id"], force=True)


def test_a_saved_plan_applies_once_and_is_refused_when_stale(
    docker_api: Any, tmp_path: Path, stack: str, two_workloads: Path
) -> None:
    saved = tmp_path / "plan.json"
    # a saved plan is signed with the stack's key, kept in the secret store: the store must be usable
    env = {"TOOLHIVE_SECRETS_PASSWORD": "pw", "XDG_DATA_HOME": str(tmp_path / "data")}
    assert run_cli("plan", str(two_workloads), "--out", str(saved), env=env).code == 0
    applied = run_cli("apply", str(saved), env=env)  # the saved plan is the approval: no --yes
    assert applied.code == 0, applied
    assert len(containers(docker_api, stack)) == 2
    again = run_cli("apply", str(saved), env=env)
    assert again.code == 1
    assert "stale" in again.stderr

    other = tmp_path / "other.json"
    assert run_cli("plan", str(two_workloads), "--replace", f"{stack}-time", "--out", str(other), env=env).code == 0
    docker_api.stop(f"{stack}-web", timeout=2)  # the live state moves after the plan was made
    refused = run_cli("apply", str(other), env=env)
    assert refused.code == 1 and "stale" in refused.stderr
    assert containers(docker_api, stack)[f"{stack}-web"]["State"] == "exited"  # nothing was applied


def test_a_missing_image_fails_only_its_workload(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    workloads = [stdio_workload(f"{stack}-ok"), {"name": f"{stack}-bad", "image": "toolhive-apply-test/absent:none"}]
    path = write_manifest(tmp_path, stack, workloads)
    result = run_cli("apply", str(path), "--yes")
    assert result.code == 1
    assert (
        f"workload/{stack}-bad: create failed: image 'toolhive-apply-test/absent:none' is not on the Docker host"
        in (result.output)
    )
    assert "changed=1 failed=1" in result.stdout
    assert set(containers(docker_api, stack)) == {f"{stack}-ok"}


def test_a_server_that_never_comes_up_fails_with_its_log_and_leaves_nothing_behind(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    broken = stdio_workload(
        f"{stack}-crash", cmd_arguments=["python3.11", "-c", "import sys; print('boom'); sys.exit(3)"]
    )
    path = write_manifest(tmp_path, stack, [broken])
    result = run_cli("apply", str(path), "--yes")
    assert result.code == 1
    assert f"{stack}-crash exited" in result.output and "before it was ready" in result.output
    assert "boom" in result.output
    assert containers(docker_api, stack) == {}


def test_a_failed_replace_restores_the_old_container(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    good = http_workload(f"{stack}-svc")
    path = write_manifest(tmp_path, stack, [good])
    assert run_cli("apply", str(path), "--yes").code == 0
    old_id = containers(docker_api, stack)[f"{stack}-svc"]["Id"]
    write_manifest(tmp_path, stack, [{**good, "cmd_arguments": ["python3.11", "-c", "raise SystemExit(4)"]}])
    result = run_cli("apply", str(path), "--yes")
    assert result.code == 1
    assert "restoring the old one" in result.stderr
    after = containers(docker_api, stack)
    assert list(after) == [f"{stack}-svc"]
    assert after[f"{stack}-svc"]["Id"] == old_id and after[f"{stack}-svc"]["State"] == "running"


def test_export_as_manifest_round_trips_to_a_no_op_plan(tmp_path: Path, stack: str, two_workloads: Path) -> None:
    assert run_cli("apply", str(two_workloads), "--yes").code == 0
    exported = run_cli("export", "--as-manifest", "--stack", stack)
    assert exported.code == 0, exported
    copy = tmp_path / "exported" / "manifest.yaml"
    copy.parent.mkdir()
    copy.write_text(exported.stdout)  # JSON is YAML
    plan = run_cli("plan", str(copy), "--detailed-exitcode")
    assert plan.code == 0, plan


def test_export_shapes_follow_toolhive(stack: str, two_workloads: Path) -> None:
    assert run_cli("apply", str(two_workloads), "--yes").code == 0
    listing = json.loads(run_cli("export", "workloads", "--stack", stack).stdout)["workloads"]
    keys = {
        "name",
        "package",
        "url",
        "port",
        "transport_type",
        "proxy_mode",
        "status",
        "status_context",
        "created_at",
        "labels",
        "group",
        "tools",
        "remote",
    }
    assert all(set(entry) == keys for entry in listing)
    details = json.loads(run_cli("export", "workload", f"{stack}-web").stdout)
    assert details["image"] == HTTP_IMAGE and details["env_vars"] == {"GREETING": "hi"}
    runconfig = json.loads(run_cli("export", "workload", f"{stack}-web", "--runconfig").stdout)
    assert runconfig["schema_version"] == "v0.1.0"
    assert runconfig["env_vars"]["MCP_TRANSPORT"] == "streamable-http"
    assert runconfig["container_labels"]["toolhive-basename"] == f"{stack}-web"


def test_destroy_removes_everything_the_stack_owns(docker_api: Any, stack: str, two_workloads: Path) -> None:
    assert run_cli("apply", str(two_workloads), "--yes").code == 0
    refused = run_cli("destroy", str(two_workloads))
    assert refused.code == 1 and "without --yes" in refused.stderr
    assert len(containers(docker_api, stack)) == 2
    assert run_cli("destroy", str(two_workloads), "--yes").code == 0
    assert containers(docker_api, stack) == {}


def test_an_empty_manifest_does_not_wipe_the_stack(
    docker_api: Any, tmp_path: Path, stack: str, two_workloads: Path
) -> None:
    assert run_cli("apply", str(two_workloads), "--yes").code == 0
    empty = write_manifest(tmp_path / "empty", stack, [])
    result = run_cli("apply", str(empty), "--yes")
    assert result.code == 1 and "would delete all 2 resources" in result.stderr
    assert len(containers(docker_api, stack)) == 2


def test_replace_restart_and_target(docker_api: Any, stack: str, two_workloads: Path) -> None:
    assert run_cli("apply", str(two_workloads), "--yes").code == 0
    ids = {n: c["Id"] for n, c in containers(docker_api, stack).items()}
    replaced = run_cli("apply", str(two_workloads), "--yes", "--replace", f"{stack}-time")
    assert replaced.code == 0 and "forced by --replace" in replaced.stdout
    after = {n: c["Id"] for n, c in containers(docker_api, stack).items()}
    assert after[f"{stack}-time"] != ids[f"{stack}-time"] and after[f"{stack}-web"] == ids[f"{stack}-web"]

    started = docker_api.inspect_container(f"{stack}-web")["State"]["StartedAt"]
    restarted = run_cli("restart", f"{stack}-web", "--stack", stack)
    assert restarted.code == 0, restarted
    assert docker_api.inspect_container(f"{stack}-web")["State"]["StartedAt"] != started
    assert docker_api.inspect_container(f"{stack}-web")["Id"] == after[f"{stack}-web"]

    unknown = run_cli("plan", str(two_workloads), "--target", "nope")
    assert unknown.code == 1 and "unknown resource(s): workload/nope" in unknown.stderr


def test_docker_unreachable_is_one_clear_error(two_workloads: Path) -> None:
    result = run_cli("plan", str(two_workloads), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.code == 1
    assert result.stderr.startswith("Error: Docker at unix:///nonexistent/docker.sock is not available")
    assert "hint:" in result.stderr
