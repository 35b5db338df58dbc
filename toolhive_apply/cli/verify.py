"""`toolhive-apply verify [PATH...] [--stack S]`: probe every workload of a stack through its published endpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from toolhive_apply.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    DockerHostOpt,
    OutputOpt,
    PathsArg,
    check_output,
    out,
    print_json,
)


def verify(
    paths: PathsArg = None,
    stack: Annotated[str | None, typer.Option("--stack", help="Stack to probe (default: the manifest's).")] = None,
    token_env: Annotated[
        str | None,
        typer.Option("--token-env", help="Environment variable holding a valid bearer token, for endpoints with OIDC."),
    ] = None,
    output: OutputOpt = "text",
    docker_host: DockerHostOpt = None,
) -> int:
    """Probe every workload's endpoint: initialize, Origin and Host checks, OIDC (401, audience, metadata),
    strict protocol version, unknown session. One line per check; exit 1 when any check fails."""
    from toolhive_apply.cli.common import load
    from toolhive_apply.engine.resource import Kind
    from toolhive_apply.errors import UsageError
    from toolhive_apply.operations import Connection, open_targets
    from toolhive_apply.providers.workload.provider import WorkloadProvider
    from toolhive_apply.redact import register
    from toolhive_apply.verify import report, verify_specs

    json_mode = check_output(output)
    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise UsageError(f"--token-env: environment variable {token_env} is not set or empty")
        register(token)  # a bearer token is a secret: never printed
    if stack is None or paths:
        manifest = load(paths or [Path.cwd()], None, None)
        stack = stack or manifest.settings.stack
        docker_host = docker_host or manifest.settings.docker_host
    targets = open_targets(Connection(stack, docker_host))
    provider = targets.providers[Kind.WORKLOAD]
    assert isinstance(provider, WorkloadProvider)
    specs = [o.spec for o in provider.observe(()) if o.managed and o.spec is not None and o.status != "orphaned"]
    if not specs:
        raise UsageError(f"stack {stack!r} has no workloads to verify", hint="apply the stack first")
    checks = verify_specs(specs, token)
    failed = any(c.status == "fail" for c in checks)
    if json_mode:
        print_json(report(stack, checks))
    else:
        for check in checks:
            out(check.line() + "\n")
        summary = report(stack, checks)["summary"]
        out(f"\n{summary['pass']} passed, {summary['fail']} failed, {summary['skip']} skipped.\n")
    return EXIT_ERROR if failed else EXIT_OK
