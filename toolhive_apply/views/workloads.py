"""ToolHive API-shaped views of live state: read-only, and never a secret value.

Shapes follow toolhive-facts.md §1.1 (RunConfig), §1.7 (Workload list entry) and §7.4 (workload
details = the create request), so what we print can be read by ToolHive's own tooling and back by us.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from toolhive_apply.engine.resource import Spec
from toolhive_apply.errors import UsageError
from toolhive_apply.providers.docker.labels import (
    LABEL_GROUP,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_ROLE,
    LABEL_SPEC,
    LABEL_STACK,
    ROLE_PROXY,
    ROLE_REMOTE,
    TH_AUXILIARY,
    TH_BASENAME,
    TH_PORT,
    TH_TRANSPORT,
)
from toolhive_apply.providers.workload.create_args import container_env, container_labels
from toolhive_apply.providers.workload.endpoint import endpoint_runconfig, merge_endpoint
from toolhive_apply.providers.workload.observability import runconfig_fields
from toolhive_apply.providers.workload.observe import container_name, parse_spec
from toolhive_apply.providers.workload.spec import proxy_url
from toolhive_apply.providers.workload.spec_model import WorkloadSpec

RUNCONFIG_SCHEMA_VERSION = "v0.1.0"
LABEL_NAME_KEY = LABEL_NAME
AUXILIARY_KEY = TH_AUXILIARY
DOCKER_STATES = {
    "running": "running",
    "created": "starting",
    "restarting": "starting",
    "paused": "stopped",
    "exited": "stopped",
    "dead": "stopped",
    "removing": "removing",
}


def _user_labels(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if not k.startswith("toolhive")}


def _created(summary: dict[str, Any]) -> str:
    stamp = summary.get("Created")
    if isinstance(stamp, int):
        return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")
    return ""


def _status(summary: dict[str, Any], proxy: dict[str, Any] | None) -> tuple[str, str]:
    """ToolHive's status words from real signals: the server's state, then its proxy's state and health check."""
    status = DOCKER_STATES.get(str(summary.get("State")), "unknown")
    context = str(summary.get("Status", ""))
    labels = summary.get("Labels") or {}
    managed = labels.get(LABEL_MANAGED_BY) is not None
    if status != "running" or not managed or labels.get(LABEL_ROLE) == ROLE_REMOTE:
        return status, context
    if proxy is None:
        return "unhealthy", "proxy container missing"
    proxy_status = str(proxy.get("Status", ""))
    if proxy.get("State") != "running":
        return "unhealthy", f"proxy {proxy.get('State')}"
    if "(unhealthy)" in proxy_status:
        return "unhealthy", f"proxy {proxy_status}"
    # "(health: starting)" only means Docker has not run the first check yet (every 30 s): apply already
    # checked that MCP answers, so that is still "running"
    return status, context


def workload_entry(summary: dict[str, Any], proxy: dict[str, Any] | None = None) -> dict[str, Any]:
    """One entry of `{"workloads": [...]}` as `thv list --format json` prints it."""
    labels: dict[str, str] = summary.get("Labels") or {}
    spec = parse_spec(labels) or {}
    name = labels.get(TH_BASENAME) or container_name(summary)
    transport = labels.get(TH_TRANSPORT, spec.get("transport", "stdio"))
    port = int(labels.get(TH_PORT, spec.get("proxy_port", 0)) or 0)
    if spec.get("serve"):  # served through its group's gateway only: no published port, no URL of its own
        port = 0
    proxy_mode = spec.get("proxy_mode") or ("streamable-http" if transport == "stdio" else transport)
    return {
        "name": name,
        "package": "remote" if spec.get("remote") else summary.get("Image", ""),
        "url": proxy_url(name, spec.get("host"), port, proxy_mode) if port else "",
        "port": port,
        "transport_type": transport,
        "proxy_mode": proxy_mode,
        "status": _status(summary, proxy)[0],
        "status_context": _status(summary, proxy)[1],
        "created_at": _created(summary),
        "labels": _user_labels(labels),
        "group": labels.get(LABEL_GROUP) or spec.get("group") or "default",
        "tools": list(spec.get("tools", [])),
        "remote": bool(spec.get("remote")),
    }


def list_workloads(
    summaries: list[dict[str, Any]], include_stopped: bool, group: str | None
) -> dict[str, list[dict[str, Any]]]:
    proxies = {
        (s.get("Labels") or {}).get(LABEL_NAME_KEY): s
        for s in summaries
        if (s.get("Labels") or {}).get(AUXILIARY_KEY) == "true"
    }
    servers = [s for s in summaries if (s.get("Labels") or {}).get(AUXILIARY_KEY) != "true"]
    entries = [workload_entry(s, proxies.get((s.get("Labels") or {}).get(LABEL_NAME_KEY))) for s in servers]
    if not include_stopped:
        entries = [e for e in entries if e["status"] == "running"]
    if group is not None:
        entries = [e for e in entries if e["group"] == group]
    return {"workloads": sorted(entries, key=lambda e: e["name"])}


def managed_spec(summary: dict[str, Any]) -> Spec:
    labels = summary.get("Labels") or {}
    spec = parse_spec(labels)
    if spec is None or labels.get(LABEL_MANAGED_BY) is None:
        raise UsageError(f"workload {container_name(summary)!r} was not created by toolhive-apply; its spec is unknown")
    return spec


def with_proxy_endpoint(spec: Spec, server: dict[str, Any], containers: list[dict[str, Any]]) -> Spec:
    """The server's recorded spec with its proxy's endpoint block (auth, policies), which the proxy records."""
    own = server.get("Labels") or {}
    for summary in containers:
        labels = summary.get("Labels") or {}
        same = all(labels.get(k) == own.get(k) for k in (LABEL_NAME_KEY, LABEL_STACK))
        if same and labels.get(LABEL_ROLE) == ROLE_PROXY:
            return merge_endpoint(dict(spec), None, labels)[0]
    return spec


def workload_details(spec: Spec) -> dict[str, Any]:
    """The workload details shape (ToolHive's create request, §7.4)."""
    return {
        "name": spec["name"],
        "image": spec["image"],
        "cmd_arguments": list(spec["cmd_arguments"]),
        "transport": spec["transport"],
        "proxy_mode": spec["proxy_mode"],
        "proxy_port": spec["proxy_port"],
        "target_port": spec["target_port"],
        "host": spec["host"],
        "env_vars": dict(spec["env_vars"]),
        "secrets": [{"name": s["name"], "target": s["target"]} for s in spec["secrets"]],
        "volumes": list(spec["volumes"]),
        "permission_profile": spec["permission_profile"],
        "network_isolation": spec["network_isolation"],
        "allow_docker_gateway": bool(spec.get("allow_docker_gateway")),
        "group": spec["group"],
        "tools": list(spec["tools"]),
        "tools_override": dict(spec["tools_override"]),
        "trust_proxy_headers": spec["trust_proxy_headers"],
    }


def runconfig(spec: Spec, stack: str) -> dict[str, Any]:
    """A RunConfig (schema v0.1.0) that `thv run --from-config` can read; secret refs, never values."""
    typed = WorkloadSpec.from_document(spec)
    config: dict[str, Any] = {
        "schema_version": RUNCONFIG_SCHEMA_VERSION,
        "image": spec["image"],
        "cmd_args": list(spec["cmd_arguments"]),
        "name": spec["name"],
        "container_name": spec["name"],
        "base_name": spec["name"],
        "transport": spec["transport"],
        "host": spec["host"],
        "port": spec["proxy_port"],
        "target_host": "127.0.0.1",
        "permission_profile": spec["permission_profile"],
        "env_vars": container_env(typed),
        "volumes": list(spec["volumes"]),
        "container_labels": {k: v for k, v in container_labels(typed, stack).items() if k != LABEL_SPEC},
        "secrets": [f"{s['name']},target={s['target']}" for s in spec["secrets"] if s["as"] == "env"],
        "isolate_network": spec["network_isolation"],
        "trust_proxy_headers": spec["trust_proxy_headers"],
        "proxy_mode": spec["proxy_mode"],
        "group": spec["group"],
    }
    if spec["target_port"]:
        config["target_port"] = spec["target_port"]
    if spec.get("remote"):
        config["image"] = ""
        config["remote_url"] = spec["url"]
    if spec.get("allow_docker_gateway"):
        config["allow_docker_gateway"] = True  # omitempty in ToolHive's RunConfig
    if spec["tools"]:
        config["tools_filter"] = list(spec["tools"])
    if spec["tools_override"]:
        config["tools_override"] = dict(spec["tools_override"])
    config.update(runconfig_fields(typed))
    config.update(endpoint_runconfig(typed))
    return config
