"""A group's vMCP gateway (`groups[].vmcp`) as a `VirtualMCPServer` (v1beta1) over the group's `MCPGroup`.

The aggregation block maps key for key onto `spec.config.aggregation`, as ToolHive's own VirtualMCPServer examples
write it; workload names become the backends' MCPServer names (DNS-1123 labels), which is also what
`{workload}` of a prefix expands to there. Backend authentication is `discovered` (from each backend's resource).
The local gateway takes anonymous clients, so the rendered one does too, with a warning.
"""

from __future__ import annotations

from typing import Any, Final

from toolhive_apply.interop.kubernetes_model import RenderContext
from toolhive_apply.interop.kubernetes_names import dns_label
from toolhive_apply.manifest.model import Group
from toolhive_apply.manifest.vmcp_checks import members
from toolhive_apply.proxy.vmcp_config import Aggregation, Strategy

OUTGOING_AUTH_SOURCE: Final = "discovered"


def _aggregation(aggregation: Aggregation, group: Group, ctx: RenderContext) -> dict[str, Any]:
    """`spec.config.aggregation`; a priority order lists every member (the unlisted after, in manifest order, as
    our gateway orders them), so the operator's handling of unlisted backends cannot change the outcome."""
    resolution: dict[str, Any] = {"prefixFormat": aggregation.prefix_format}
    if aggregation.strategy is Strategy.PRIORITY:
        listed = list(aggregation.priority_order)
        rest = [w.name for w in members(ctx.manifest, group.name) if w.name not in listed]
        resolution["priorityOrder"] = [dns_label(name) for name in [*listed, *rest]]
    block: dict[str, Any] = {
        "conflictResolution": aggregation.strategy.value,
        "conflictResolutionConfig": resolution,
    }
    tools = []
    for workload, settings in aggregation.tools.items():
        entry: dict[str, Any] = {"workload": dns_label(workload)}
        if settings.filter is not None:
            entry["filter"] = sorted(settings.filter)
        overrides = {}
        for tool, rename in sorted(settings.overrides.items()):
            override = {"name": rename.name, "description": rename.description}
            overrides[tool] = {k: v for k, v in override.items() if v is not None}
        if overrides:
            entry["overrides"] = overrides
        tools.append(entry)
    if tools:
        block["tools"] = tools
    return block


def render_vmcp(group: Group, ctx: RenderContext) -> None:
    vmcp = group.vmcp
    if vmcp is None:
        return
    resource = f"group/{group.name}"
    name = dns_label(vmcp.name or group.name)
    spec: dict[str, Any] = {
        "groupRef": {"name": dns_label(group.name)},
        "incomingAuth": {"type": "anonymous"},
        "outgoingAuth": {"source": OUTGOING_AUTH_SOURCE},
        "config": {"aggregation": _aggregation(vmcp.aggregation, group, ctx)},
    }
    ctx.add("VirtualMCPServer", name, spec)
    ctx.warn(
        resource,
        f"VirtualMCPServer {name} takes anonymous clients, as the local gateway does: any pod that reaches "
        "its Service may call every tool of the group; set incomingAuth to oidc (an MCPOIDCConfig) to share it",
    )
    renamed = [w.name for w in members(ctx.manifest, group.name) if dns_label(w.name) != w.name]
    if renamed and vmcp.aggregation.strategy is Strategy.PREFIX and "{workload}" in vmcp.aggregation.prefix_format:
        ctx.warn(
            resource,
            f"tool prefixes use the Kubernetes names of {', '.join(renamed)} ({{workload}} is the MCPServer's "
            "name there), so clients see other tool names than on the local gateway",
        )
    if vmcp.host not in (None, ctx.manifest.settings.default_host):
        ctx.warn(resource, f"vmcp.host {vmcp.host!r} is a laptop listen address: the operator serves through a Service")
