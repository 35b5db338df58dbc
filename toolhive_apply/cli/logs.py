"""``toolhive-apply logs WORKLOAD``: a workload's server, proxy and audit lines without knowing container names.

Containers are found by our labels (stack, workload name, role); each line is prefixed with where it came from.
Audit events are the proxy's JSON lines whose ``msg`` is ``audit_event`` (its stdout), or the lines of the
workload's audit logFile on this host when it has one. Everything printed goes through the scrubber.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from toolhive_apply.cli.common import EXIT_OK, DockerHostOpt, out
from toolhive_apply.errors import UsageError
from toolhive_apply.redact import redact

_DURATION: Final = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ROLE_TAGS: Final = {"proxy": "proxy", "gate": "gate", "egress": "egress", "remote": "proxy"}
AUDIT_MESSAGE: Final = "audit_event"


def since_time(text: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: a duration back from now (10m, 1h30m, 45s) or an ISO 8601 time (UTC when no zone is given)."""
    if not text:
        return None
    match = _DURATION.match(text)
    if match and any(match.groups()):
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return (now or datetime.now(UTC)) - timedelta(hours=hours, minutes=minutes, seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {text!r}: give a duration such as 10m or 1h30m, or a time such as 2026-12-02T01:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_audit(line: str) -> bool:
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("msg") == AUDIT_MESSAGE


def _event_time(line: str) -> datetime | None:
    try:
        return datetime.fromisoformat(str(json.loads(line).get("time", "")).replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def _tag(container: dict[str, Any]) -> str:
    from toolhive_apply.providers.docker.labels import LABEL_ROLE

    return _ROLE_TAGS.get((container.get("Labels") or {}).get(LABEL_ROLE, ""), "server")


def _containers(api: Any, stack: str | None, name: str) -> list[dict[str, Any]]:
    from toolhive_apply.providers.docker.labels import (
        LABEL_MANAGED_BY,
        LABEL_NAME,
        LABEL_ROLE,
        LABEL_STACK,
        ROLE_ISOLATION,
    )

    labels = [LABEL_MANAGED_BY, f"{LABEL_NAME}={name}"] + ([f"{LABEL_STACK}={stack}"] if stack else [])
    found: list[dict[str, Any]] = api.containers(all=True, filters={"label": labels})
    stacks = {(c.get("Labels") or {}).get(LABEL_STACK) for c in found}
    if len(stacks) > 1:
        raise UsageError(
            f"workload {name!r} exists in several stacks ({', '.join(sorted(map(str, stacks)))}): give --stack"
        )
    return [c for c in found if (c.get("Labels") or {}).get(LABEL_ROLE) != ROLE_ISOLATION]


def _audit_file(containers: list[dict[str, Any]]) -> Path | None:
    from toolhive_apply.views.workloads import managed_spec

    for container in containers:  # only the workload's own container (a remote one is its proxy) has the spec
        try:
            log_file = (managed_spec(container).get("audit") or {}).get("logFile")
        except UsageError:
            continue
        return Path(log_file) if log_file else None
    return None


def _container_lines(api: Any, container: dict[str, Any], since: datetime | None, follow: bool) -> Iterator[str]:
    kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "stream": True, "follow": follow}
    if since is not None:
        kwargs["since"] = int(since.timestamp())
    pending = b""
    for chunk in api.logs(container["Id"], **kwargs):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (line.decode("utf-8", "replace") for line in lines)
    if pending:
        yield pending.decode("utf-8", "replace")


def _file_lines(path: Path, since: datetime | None, follow: bool, stop: threading.Event) -> Iterator[str]:
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError as error:
        raise UsageError(f"cannot read the audit log {path}: {error.strerror}") from None
    with handle:
        while not stop.is_set():
            line = handle.readline()
            if line:
                moment = _event_time(line)
                if since is None or moment is None or moment >= since:
                    yield line.rstrip("\n")
            elif not follow:
                return
            else:
                stop.wait(0.5)


def _sources(api: Any, name: str, stack: str | None, options: dict[str, Any]) -> list[tuple[str, Any]]:
    containers = _containers(api, stack, name)
    if not containers:
        raise UsageError(
            f"no workload named {name!r}" + (f" in stack {stack!r}" if stack else "") + " has been applied"
        )
    since, follow, audit_only = options["since"], options["follow"], options["audit"]
    sources: list[tuple[str, Any]] = []
    log_file = _audit_file(containers)
    if log_file is not None:
        sources.append(("audit", lambda stop: _file_lines(log_file, since, follow, stop)))
    for container in sorted(containers, key=_tag):
        tag = _tag(container)
        if audit_only and (tag != "proxy" or log_file is not None):
            continue
        sources.append((tag, lambda stop, c=container: _container_lines(api, c, since, follow)))
    return sources


def _print(tag: str, line: str, audit_only: bool) -> None:
    audit = is_audit(line)
    if audit_only and not audit:
        return
    out(f"[{'audit' if audit else tag}] {redact(line)}\n")


def logs(
    name: Annotated[str, typer.Argument(help="The workload.", show_default=False)],
    audit: Annotated[bool, typer.Option("--audit", help="Only the audit events.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    since: Annotated[str | None, typer.Option(help="Only lines since: 10m, 1h30m, or a time (ISO 8601).")] = None,
    stack: Annotated[str | None, typer.Option(help="Stack owning the workload (needed if several have it).")] = None,
    docker_host: DockerHostOpt = None,
) -> int:
    """Show a workload's server, proxy and audit lines."""
    from toolhive_apply.providers.docker.client import connect, docker_errors, endpoint_of

    api = connect(docker_host)
    options = {"since": since_time(since), "follow": follow, "audit": audit}
    with docker_errors(endpoint_of(docker_host)):
        sources = _sources(api, name, stack, options)
        if not follow:
            for tag, lines in sources:
                for line in lines(threading.Event()):
                    _print(tag, line, audit)
            return EXIT_OK
        _follow(sources, audit)
    return EXIT_OK


def _follow(sources: list[tuple[str, Any]], audit_only: bool) -> None:
    """One reader thread per source, printed as lines arrive, until Ctrl-C."""
    lines: queue.Queue[tuple[str, str]] = queue.Queue(10_000)
    stop = threading.Event()

    def read(tag: str, source: Any) -> None:
        for line in source(stop):
            lines.put((tag, line))

    for tag, source in sources:
        threading.Thread(target=read, args=(tag, source), daemon=True).start()
    try:
        while True:
            tag, line = lines.get()
            _print(tag, line, audit_only)
    except KeyboardInterrupt:
        stop.set()
