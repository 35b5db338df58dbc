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
    other_audience_token_env: Annotated[
        str | None,
        typer.Option(
            "--other-audience-token-env",
            help="Environment variable holding a token the issuer signed for another resource (proves the audience"
            " check on a signature the proxy accepts).",
        ),
    ] = None,
    output: OutputOpt = "text",
    docker_host: DockerHostOpt = None,
) -> int:
    """Probe every workload's endpoint: initialize, Origin and Host checks, OIDC (401, audience, metadata),
    strict protocol version, unknown session. One line per check; exit 1 when any check fails."""
    from toolhive_apply.cli.common import load
    from toolhive_apply.operations import Connection
    from toolhive_apply.operations.maintenance import verify_stack
    from toolhive_apply.verify import report

    json_mode = check_output(output)
    token = _token_from(token_env, "--token-env")
    other_audience_token = _token_from(other_audience_token_env, "--other-audience-token-env")
    if stack is None or paths:
        manifest = load(paths or [Path.cwd()], None, None)
        stack = stack or manifest.settings.stack
        docker_host = docker_host or manifest.settings.docker_host
    checks = verify_stack(Connection(stack, docker_host), token, other_audience_token)
    failed = any(c.status == "fail" for c in checks)
    if json_mode:
        print_json(report(stack, checks))
    else:
        for check in checks:
            out(check.line() + "\n")
        summary = report(stack, checks)["summary"]
        out(f"\n{summary['pass']} passed, {summary['fail']} failed, {summary['skip']} skipped.\n")
    return EXIT_ERROR if failed else EXIT_OK


def _token_from(variable: str | None, option: str) -> str | None:
    """A bearer token named by an environment variable; registered as a secret, so it is never printed."""
    from toolhive_apply.errors import UsageError
    from toolhive_apply.redact import register

    if not variable:
        return None
    token = os.environ.get(variable)
    if not token:
        raise UsageError(f"{option}: environment variable {variable} is not set or empty")
    register(token)
    return token
