"""groups[].vmcp in the manifest: the model, and what validate refuses at its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.proxy.vmcp_config import Strategy

HEADER = "apiVersion: toolhive-apply/v1\n"
WORKLOADS = """workloads:
  - {name: alpha, image: "toolhive-apply-test/http:latest", transport: streamable-http, group: research,
     tools: [echo, add, get_env]}
  - {name: beta, image: "toolhive-apply-test/http:latest", transport: streamable-http, group: research,
     tools: [echo, add, get_env]}
"""


def write(tmp_path: Path, groups: str, extra: str = "") -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(HEADER + groups + WORKLOADS + extra, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest([path])
    return caught.value.lines()


def test_a_group_gateway_becomes_part_of_the_model(tmp_path: Path) -> None:
    groups = """groups:
  - name: research
    vmcp:
      port: 4483
      aggregation:
        conflict_resolution: priority
        conflict_resolution_config: {priority_order: [beta]}
        tools: [{workload: alpha, filter: [echo, add], overrides: {echo: {name: say}}}]
clients:
  - {name: cursor, groups: [research], per_workload: true}
"""
    manifest = load_manifest([write(tmp_path, groups)])
    hidden = [str(w) for w in manifest.warnings if "hidden by" in str(w)]
    assert any("tool 'add' of alpha is hidden by beta's" in w for w in hidden), manifest.warnings
    vmcp = manifest.groups[0].vmcp
    assert vmcp is not None
    assert vmcp.port == 4483
    assert vmcp.aggregation.strategy is Strategy.PRIORITY
    assert vmcp.aggregation.priority_order == ("beta",)
    assert vmcp.aggregation.for_backend("alpha").overrides["echo"].name == "say"
    assert manifest.clients[0].per_workload


def test_manual_names_every_unresolved_collision_at_its_field(tmp_path: Path) -> None:
    groups = """groups:
  - name: research
    vmcp:
      port: 4483
      aggregation:
        conflict_resolution: manual
        tools: [{workload: alpha, overrides: {echo: {name: alpha_echo}}}]
"""
    found = problems(write(tmp_path, groups))
    collisions = [p for p in found if "conflict_resolution manual" in p]
    assert len(collisions) == 2, found
    assert "'add' is offered by alpha and beta" in collisions[0]
    assert "stack.yaml:" in collisions[0] and "groups[0].vmcp.aggregation.conflict_resolution" in collisions[0]


def test_names_outside_the_tool_name_rule_and_unknown_workloads_are_refused(tmp_path: Path) -> None:
    groups = """groups:
  - name: research
    vmcp:
      port: 4483
      aggregation:
        conflict_resolution_config: {prefix_format: "{workload}/"}
        tools:
          - {workload: gamma}
          - {workload: alpha, overrides: {echo: {name: "say it"}}}
"""
    found = "\n".join(problems(write(tmp_path, groups)))
    assert "prefix 'alpha/' (for alpha) breaks the MCP tool-name rule" in found
    assert "'say it' breaks the MCP tool-name rule" in found
    assert "'gamma' is not a workload of the group" in found


def test_vmcp_only_is_refused_without_a_gateway_and_ports_may_not_clash(tmp_path: Path) -> None:
    groups = """groups:
  - {name: research, vmcp: {port: 20001}}
  - {name: other, serve: vmcp-only}
"""
    extra = """  - {name: gamma, image: "toolhive-apply-test/stdio:latest", group: research, serve: vmcp-only}
  - {name: delta, image: "toolhive-apply-test/http:latest", transport: sse, proxy_port: 20001}
  - {name: eps, image: "toolhive-apply-test/http:latest", transport: sse, group: research, serve: vmcp-only,
     tools: [echo]}
"""
    found = "\n".join(problems(write(tmp_path, groups, extra)))
    assert "serve: vmcp-only needs a vmcp gateway on the group" in found
    assert not any("gamma" in line or "workloads[2]" in line for line in found.splitlines())  # stdio: accepted
    assert "port 20001 on 127.0.0.1 is already used by workload 'delta'" in found
    assert "workloads[4].tools: served vmcp-only, the workload has no proxy to apply it" in found
    assert "workload 'eps' serves sse; the gateway reaches streamable-http backends only" in found
