"""Commands that act on live state without a manifest: restart workloads, break a stale stack lock."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolhive_apply.cli.common import EXIT_OK, DockerHostOpt, out


def restart(
    names: Annotated[list[str] | None, typer.Argument(help="Workloads to restart.", show_default=False)] = None,
    group: Annotated[str | None, typer.Option(help="Restart every workload of this group.")] = None,
    stack: Annotated[str, typer.Option(help="Stack owning the workloads.")] = "",
    docker_host: DockerHostOpt = None,
) -> int:
    """Restart running workloads without changing their spec (ToolHive's bulk restart)."""
    from toolhive_apply.operations import Connection
    from toolhive_apply.operations.maintenance import restart_workloads

    for restarted in restart_workloads(Connection(stack or _default_stack(), docker_host), names or [], group):
        out(f"{restarted}: restarted\n")
    return EXIT_OK


def _default_stack() -> str:
    from toolhive_apply.manifest.model import default_stack_name

    return default_stack_name((Path.cwd() / "manifest.yaml",))


def unlock(
    stack: Annotated[str, typer.Option(help="Stack whose stale lock to break.")],
    docker_host: DockerHostOpt = None,
) -> int:
    """Break a stale stack lock left by an apply that died (Terraform's force-unlock)."""
    from toolhive_apply.operations.maintenance import break_stack_lock

    holder = break_stack_lock(stack, docker_host)
    out(f"Removed the lock held by {holder}.\n" if holder else f"Stack {stack!r} was not locked.\n")
    return EXIT_OK
