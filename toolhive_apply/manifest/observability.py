"""The manifest side of audit_config/telemetry_config: the stack default merged under a workload's keys, and the
checks the schema cannot make (the audit directory judged as the bind mount it becomes, header secrets declared,
no secret's variable named in telemetry's environmentVariables, a collector CA bundle the proxy can load).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from toolhive_apply.manifest.collector_ca import read_collector_ca
from toolhive_apply.manifest.host_paths import resolve_host_path
from toolhive_apply.manifest.loader import FieldPath
from toolhive_apply.manifest.model import Manifest, Workload
from toolhive_apply.manifest.mounts import mount_problems

AUDIT_DIR: Final = "/var/log/toolhive-apply-audit"
"""Where the proxy sees the host directory of an audit logFile."""


def merged(default: Mapping[str, Any] | None, own: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The stack default under the workload's own keys (a workload may switch one off with enabled: false)."""
    if default is None and own is None:
        return None
    return {**(default or {}), **(own or {})}


def audit_of(workload: Workload, manifest: Manifest) -> dict[str, Any] | None:
    return merged(manifest.settings.audit_config, workload.audit_config)


def telemetry_of(workload: Workload, manifest: Manifest) -> dict[str, Any] | None:
    return merged(manifest.settings.telemetry_config, workload.telemetry_config)


def manifest_problems(workload: Workload, manifest: Manifest) -> Iterator[tuple[FieldPath, str]]:
    """(field path relative to the workload, message): an audit directory as a bind mount is judged (it must
    exist; the usual host-path refusals apply), header secrets must be declared."""
    audit = audit_of(workload, manifest)
    where: FieldPath = ("audit_config", "logFile")
    if audit and audit.get("enabled") and audit.get("logFile"):
        text = str(audit["logFile"])
        if text.endswith("/") or posixpath.basename(text) in ("", ".", ".."):
            yield where, "logFile names a file (e.g. ./audit/server.jsonl), not a directory"
        else:
            directory = posixpath.dirname(text) or "."
            source = directory if directory.startswith(("/", ".")) else f"./{directory}"
            bind = f"{source}:{AUDIT_DIR}:rw"
            if resolve_host_path(source, workload.base_dir) == resolve_host_path(".", workload.base_dir):
                yield where, "keep the audit log in a directory of its own: the proxy gets write access to it"
                return
            for _, message in mount_problems(workload.base_dir, None, [bind], workload.allow_host_paths):
                yield where, f"its directory {source}: {message}"
    declared = {s.key for s in manifest.secrets}
    telemetry = telemetry_of(workload, manifest) or {}
    for header, value in (telemetry.get("headers") or {}).items():
        if isinstance(value, dict) and value.get("secret") not in declared:
            yield ("telemetry_config", "headers", header, "secret"), f"unknown secret {value.get('secret')!r}"
    yield from _environment_problems(workload, telemetry)
    yield from _ca_problems(workload, telemetry)


def collector_ca_path(workload: Workload, telemetry: Mapping[str, Any]) -> Path | None:
    """The CA bundle file, relative to the workload's manifest file (as an audit logFile is), symlinks followed."""
    text = telemetry.get("caCertPath")
    return Path(resolve_host_path(str(text), workload.base_dir)) if text else None


def _ca_problems(workload: Workload, telemetry: Mapping[str, Any]) -> Iterator[tuple[FieldPath, str]]:
    path = collector_ca_path(workload, telemetry)
    if path is None:
        return
    own = "caCertPath" in (workload.telemetry_config or {})
    where: FieldPath = ("telemetry_config", "caCertPath") if own else ("telemetry_config",)
    inherited = "" if own else "caCertPath (from settings.telemetry_config): "
    endpoint = str(telemetry.get("endpoint") or "")
    plain = endpoint.startswith("http://") or ("://" not in endpoint and telemetry.get("insecure"))
    if not endpoint or plain:
        yield where, f"{inherited}a CA bundle needs an https collector endpoint (not insecure, not http://)"
        return
    _, problem = read_collector_ca(path)
    if problem is not None:
        yield where, f"{inherited}{problem}"


def _environment_problems(workload: Workload, telemetry: Mapping[str, Any]) -> Iterator[tuple[FieldPath, str]]:
    """A span carries each named variable's value: a variable a secret is delivered to must never be one."""
    own = "environmentVariables" in (workload.telemetry_config or {})
    inherited = "" if own else " (from settings.telemetry_config)"
    targets = {ref.target: ref.name for ref in workload.secrets}
    for index, name in enumerate(telemetry.get("environmentVariables") or ()):
        if name in targets:
            where: FieldPath = ("telemetry_config", "environmentVariables", index) if own else ("telemetry_config",)
            message = (
                f"environmentVariables{inherited} names {name}, the target of secret {targets[name]!r}: "
                "its value would be sent with every span; name only plain env_vars"
            )
            yield where, message
