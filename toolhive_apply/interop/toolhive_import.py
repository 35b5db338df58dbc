"""`import toolhive`: ToolHive's local state (RunConfigs, groups, config.yaml, its containers) as a manifest directory.

Read-only: files are read, Docker is asked for one container list, nothing is changed. Secrets come over as
`present: true` references (a RunConfig holds only `<name>,target=<ENV>` references, never values); what the
manifest cannot carry is written as a comment at the top of the manifest and printed as a note.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from toolhive_apply.errors import ToolhiveApplyError
from toolhive_apply.fileio import replace_atomically
from toolhive_apply.manifest.loader import API_VERSION
from toolhive_apply.manifest.model import DEFAULT_GROUP

RUNCONFIGS: Final = Path("toolhive/runconfigs")  # under XDG_STATE_HOME (~/.local/state)
GROUPS: Final = Path("toolhive/groups")
CONFIG: Final = Path("toolhive/config.yaml")  # under XDG_CONFIG_HOME (~/.config)


@dataclass(frozen=True, slots=True)
class ToolhiveDirs:
    """Where thv keeps its state: XDG directories, as ToolHive's xdg library resolves them."""

    state: Path
    config: Path

    @classmethod
    def of(cls, home: Path, environ: Mapping[str, str] | None = None) -> ToolhiveDirs:
        """`environ` given: XDG_STATE_HOME/XDG_CONFIG_HOME win when absolute (the XDG rule); else home's defaults."""
        env = environ or {}
        state = env.get("XDG_STATE_HOME", "")
        config = env.get("XDG_CONFIG_HOME", "")
        return cls(
            Path(state) if state.startswith("/") else home / ".local/state",
            Path(config) if config.startswith("/") else home / ".config",
        )


MAX_STATE_FILE: Final = 4 * 1024 * 1024
INJECTED_ENV: Final = frozenset({"MCP_TRANSPORT", "MCP_PORT", "FASTMCP_PORT", "MCP_HOST"})
STANDARD_LABELS: Final = ("toolhive", "toolhive-name", "toolhive-basename", "toolhive-transport", "toolhive-port",
                          "toolhive-network-isolation", "toolhive-auxiliary", "toolhive-group")  # fmt: skip
SECRET_REF: Final = re.compile(r"^([^,]+),target=(.+)$")
SYSTEM_SECRET_PREFIX: Final = "__thv_"
NOT_CARRIED: Final = {
    "oidc_config": "incoming OIDC authentication",
    "authz_config": "Cedar authorization",
    "authz_config_path": "Cedar authorization file",
    "audit_config": "audit logging",
    "audit_config_path": "audit logging file",
    "telemetry_config": "OpenTelemetry",
    "token_exchange_config": "token exchange",
    "aws_sts_config": "AWS STS",
    "remote_auth_config": "remote OAuth (browser login cannot run unattended)",
    "rate_limit_config": "rate limiting",
    "embedded_auth_server_config": "embedded auth server",
    "runtime_config": "protocol-scheme build settings",
    "publish": "extra published ports",
    "allowed_origins": "allowed origins",
    "debug": "debug mode",
}
PROFILE_KEYS: Final = ("name", "read", "write", "network", "privileged")
OUTBOUND_KEYS: Final = ("insecure_allow_all", "allow_host", "allow_port")


class ToolhiveStateError(ToolhiveApplyError):
    """A ToolHive state file that cannot be read as ToolHive writes it."""


@dataclass
class Imported:
    """The manifest being written and what could not be carried (mutable while importing only)."""

    stack: str
    workloads: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    clients: list[dict[str, Any]] = field(default_factory=list)
    registries: list[dict[str, Any]] = field(default_factory=list)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    """ToolHive's containers: foreign to toolhive-apply, so plan names each as a conflict until `thv stop`/`thv rm`."""

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = {"apiVersion": API_VERSION, "settings": {"stack": self.stack, **self.settings}}
        sections = {
            "groups": self.groups,
            "registries": self.registries,
            "secrets": [self.secrets[k] for k in sorted(self.secrets)],
            "clients": self.clients,
            "workloads": self.workloads,
        }
        data.update({k: v for k, v in sections.items() if v})
        return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_STATE_FILE:
            raise ToolhiveStateError(f"{path}: larger than {MAX_STATE_FILE} bytes; not a ToolHive state file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ToolhiveStateError(f"{path}: cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ToolhiveStateError(f"{path}: expected a JSON object")
    return data


def _read_config(dirs: ToolhiveDirs) -> dict[str, Any]:
    path = dirs.config / CONFIG
    if not path.is_file():
        return {}
    try:
        if path.stat().st_size > MAX_STATE_FILE:
            raise ToolhiveStateError(f"{path}: larger than {MAX_STATE_FILE} bytes; not ToolHive's config.yaml")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ToolhiveStateError(f"{path}: cannot be read as YAML: {exc}") from None
    return data if isinstance(data, dict) else {}


def _profile(config: Mapping[str, Any]) -> str | dict[str, Any] | None:
    named = config.get("permission_profile_name_or_path")
    if named in ("none", "network", "stdio"):
        return str(named)
    profile = config.get("permission_profile")
    if not isinstance(profile, dict):
        return None
    kept: dict[str, Any] = {k: profile[k] for k in PROFILE_KEYS if profile.get(k) not in (None, [], {})}
    network = dict(kept.pop("network", {}) or {})
    outbound = {k: v for k, v in (network.get("outbound") or {}).items() if k in OUTBOUND_KEYS and v}
    if kept.get("name") in ("none", "network") and set(kept) == {"name"} and set(network) <= {"outbound", "inbound"}:
        return str(kept["name"])  # the built-ins as ToolHive serialises them
    carried: dict[str, Any] = {"outbound": outbound} if outbound else {}
    if network.get("mode"):
        carried["mode"] = network["mode"]
    if carried:
        kept["network"] = carried
    return kept


def _secret_refs(imported: Imported, name: str, refs: list[Any]) -> list[dict[str, str]]:
    found = []
    for text in refs:
        match = SECRET_REF.match(str(text))
        if match is None:
            imported.notes.append(f"workload/{name}: secret reference {str(text)[:80]!r} is not <name>,target=<ENV>")
            continue
        secret, target = match.groups()
        if secret.startswith(SYSTEM_SECRET_PREFIX):
            imported.notes.append(f"workload/{name}: ToolHive's own secret {secret} (target {target}) is not carried")
            continue
        found.append({"name": secret, "target": target})
        imported.secrets.setdefault(secret, {"key": secret, "present": True})
    return found


def _headers(config: Mapping[str, Any], imported: Imported) -> list[dict[str, str]]:
    forward = config.get("header_forward") or {}
    headers = [{"name": k, "value": str(v)} for k, v in sorted((forward.get("add_plaintext_headers") or {}).items())]
    for header, secret in sorted((forward.get("add_headers_from_secret") or {}).items()):
        headers.append({"name": header, "secret": str(secret)})
        imported.secrets.setdefault(str(secret), {"key": str(secret), "present": True})
    return headers


def workload_entry(config: Mapping[str, Any], imported: Imported) -> dict[str, Any]:
    """One RunConfig as a manifest workload, with ToolHive's effective values written out."""
    name = str(config.get("name") or config.get("base_name"))
    transport = str(config.get("transport") or "stdio")
    entry: dict[str, Any] = {"name": name}
    if config.get("remote_url"):
        entry["url"] = config["remote_url"]
    else:
        entry["image"] = config.get("image")
    entry["transport"] = transport
    if transport == "stdio" and config.get("proxy_mode"):
        entry["proxy_mode"] = config["proxy_mode"]
    if config.get("port"):
        entry["proxy_port"] = int(config["port"])
    if transport != "stdio" and config.get("target_port") and not config.get("remote_url"):
        entry["target_port"] = int(config["target_port"])
    if config.get("host") and config["host"] != "127.0.0.1":
        entry["host"] = config["host"]
    optional = {
        "cmd_arguments": [str(a) for a in config.get("cmd_args") or []],
        "env_vars": {k: str(v) for k, v in sorted((config.get("env_vars") or {}).items()) if k not in INJECTED_ENV},
        "secrets": _secret_refs(imported, name, list(config.get("secrets") or [])),
        "volumes": [str(v) for v in config.get("volumes") or []],
        "permission_profile": None if config.get("remote_url") else _profile(config),
        "group": config.get("group") if config.get("group") not in (None, "", DEFAULT_GROUP) else None,
        "tools": [str(t) for t in config.get("tools_filter") or []],
        "tools_override": {
            k: {f: str(v[f]) for f in ("name", "description") if v.get(f)}
            for k, v in (config.get("tools_override") or {}).items()
        },
        "headers": _headers(config, imported) if config.get("remote_url") else [],
        "labels": {k: str(v) for k, v in (config.get("container_labels") or {}).items() if k not in STANDARD_LABELS},
        "session_ttl": config.get("session_ttl") or None,
    }
    entry.update({k: v for k, v in optional.items() if v})
    if not config.get("remote_url"):
        entry["network_isolation"] = bool(config.get("isolate_network"))  # written explicitly, as ToolHive advises
    for flag in ("trust_proxy_headers", "allow_docker_gateway"):
        if config.get(flag):
            entry[flag] = True
    for key, what in NOT_CARRIED.items():
        if config.get(key):
            imported.notes.append(f"workload/{name}: {key} ({what}) is not carried; set it again by hand")
    return entry


def _groups_and_clients(dirs: ToolhiveDirs, config: Mapping[str, Any], imported: Imported) -> None:
    by_client: dict[str, list[str]] = {}
    directory = dirs.state / GROUPS
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        group = _read_json(path)
        name = str(group.get("name") or path.stem)
        if name != DEFAULT_GROUP:
            imported.groups.append({"name": name})
        for client in group.get("registered_clients") or []:
            by_client.setdefault(str(client), []).append(name)
        if group.get("skills") or group.get("plugins"):
            imported.notes.append(f"group/{name}: skills and plugins are not carried")
    for client in (config.get("clients") or {}).get("registered_clients") or []:
        by_client.setdefault(str(client), [DEFAULT_GROUP])
    from toolhive_apply.clients import client_table

    known = {c.name for c in client_table()}
    for client, groups in sorted(by_client.items()):
        if client not in known:
            imported.notes.append(f"client/{client}: not a client type toolhive-apply knows; not carried")
            continue
        imported.clients.append({"name": client, "groups": sorted(set(groups))})


def _settings_and_registries(config: Mapping[str, Any], imported: Imported) -> None:
    private = bool(config.get("allow_private_registry_ip"))
    for key, field_name in (
        ("registry_api_url", "api_url"),
        ("registry_url", "url"),
        ("local_registry_path", "local_path"),
    ):
        if config.get(key):
            entry: dict[str, Any] = {"name": "default", field_name: str(config[key])}
            if private:
                entry["allow_private_ip"] = True
            imported.registries.append(entry)
            break
    provider = (config.get("secrets") or {}).get("provider_type")
    if provider in ("encrypted", "environment"):
        imported.settings["secrets"] = {"provider": provider}
    elif provider:
        imported.notes.append(f"settings: secrets provider {provider!r} has no toolhive-apply store; the default "
                              "(ToolHive's encrypted file) is used")  # fmt: skip
    if config.get("registry_auth"):
        imported.notes.append("registry: registry_auth (OAuth to the registry) is not carried")


def _containers(docker_host: str | None) -> list[dict[str, Any]]:
    """ToolHive's containers: one list call, by ToolHive's label, without our own."""
    from toolhive_apply.providers.docker.client import connect, docker_errors, endpoint_of
    from toolhive_apply.providers.docker.labels import LABEL_MANAGED_BY

    api = connect(docker_host)
    try:
        with docker_errors(endpoint_of(docker_host)):
            found: list[dict[str, Any]] = api.containers(all=True, filters={"label": ["toolhive=true"]})
    finally:
        api.close()
    return [c for c in found if LABEL_MANAGED_BY not in (c.get("Labels") or {})]


def import_state(
    dirs: Path | ToolhiveDirs,
    docker_host: str | None,
    stack: str | None,
    containers: list[dict[str, Any]] | None = None,
) -> Imported:
    """Everything of ToolHive's state the manifest can carry; `containers` skips the Docker call (tests, no engine)."""
    if isinstance(dirs, Path):
        dirs = ToolhiveDirs.of(dirs)
    imported = Imported(stack or "toolhive-import")
    config = _read_config(dirs)
    directory = dirs.state / RUNCONFIGS
    configs = [_read_json(p) for p in sorted(directory.glob("*.json"))] if directory.is_dir() else []
    imported.workloads = [workload_entry(c, imported) for c in configs]
    _groups_and_clients(dirs, config, imported)
    _settings_and_registries(config, imported)
    listed = _containers(docker_host) if containers is None else containers
    known = {w["name"] for w in imported.workloads}
    for container in listed:
        labels = container.get("Labels") or {}
        if labels.get("toolhive-auxiliary-workload") == "true":
            continue
        name = str(labels.get("toolhive-basename") or labels.get("toolhive-name") or "")
        imported.containers.append(name)
        if name not in known:
            imported.notes.append(f"container {name}: ToolHive labels it but it has no RunConfig; not carried")
    return imported


def manifest_text(imported: Imported) -> str:
    header = [
        "# Imported from ToolHive by `toolhive-apply import toolhive`; nothing was changed.",
        "# ToolHive's containers are foreign to toolhive-apply: `thv stop <name>` and `thv rm <name>` each one,",
        "# then `toolhive-apply apply` this directory (plan names each container still there as a conflict).",
    ]
    header += [f"# not carried: {note}" for note in imported.notes]
    body = yaml.safe_dump(imported.manifest(), sort_keys=False, allow_unicode=True)
    return "\n".join(header) + "\n" + body


def write_import(imported: Imported, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "stack.yaml"
    # 0600 like ToolHive's own RunConfig files: plain env_vars values come over as they are
    replace_atomically(path, manifest_text(imported).encode("utf-8"))
    return path
