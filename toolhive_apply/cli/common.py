"""What every command module shares: exit codes, option types, scrubbed output, manifest loading.

Kept apart from cli.py (the commands and the error boundary) and cli_export.py (the read-only views) so each
module holds one job; heavy imports stay inside the functions, so `--help` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from toolhive_apply.manifest.model import Manifest

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2

PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Manifest files or directories (default: the current directory).", show_default=False),
]
VarOpt = Annotated[list[str] | None, typer.Option("--var", help="Template variable KEY=VALUE (repeatable).")]
VarFileOpt = Annotated[list[Path] | None, typer.Option("--var-file", help="YAML file of template variables.")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="text or json.")]
StackOpt = Annotated[str | None, typer.Option("--stack", help="Override the stack (ownership) name.")]
TargetOpt = Annotated[
    list[str] | None, typer.Option("--target", help="Limit to this resource (NAME or kind/NAME; repeatable).")
]
PruneSecretsOpt = Annotated[
    bool,
    typer.Option("--prune-secrets", help="Also delete secrets this stack owns that the manifest no longer declares."),
]
DockerHostOpt = Annotated[str | None, typer.Option("--docker-host", help="Docker endpoint (default DOCKER_HOST).")]


def out(text: str) -> None:
    """Everything the CLI prints passes the scrubber: a secret value read this run never reaches a terminal."""
    from toolhive_apply.redact import redact

    sys.stdout.write(redact(text))


def err(text: str) -> None:
    from toolhive_apply.redact import redact

    sys.stderr.write(redact(text))


def colour(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def load(paths: list[Path] | None, var: list[str] | None, var_file: list[Path] | None) -> Manifest:
    """The manifest, refused when a declared secret's value sits in a plain field (validate says so too).

    Secret values that can be known before the manifest is understood are registered first, so an error about
    a field that holds one (a schema message quotes the offending value) is scrubbed like any other output.
    """
    from toolhive_apply.errors import ManifestError
    from toolhive_apply.manifest import load_manifest, parse_var_options
    from toolhive_apply.providers.secret_fields import check_manifest_values, register_early
    from toolhive_apply.stores.environment import register_environment_secrets

    register_environment_secrets(os.environ)
    files = paths or [Path.cwd()]
    try:
        manifest = load_manifest(files, parse_var_options(var or [], var_file or []))
    except ManifestError:
        register_early(files, os.environ)
        raise
    check_manifest_values(manifest, os.environ)
    return manifest


def check_output(output: str) -> bool:
    if output not in ("text", "json"):
        from toolhive_apply.errors import UsageError

        raise UsageError(f"--output must be text or json, not {output!r}")
    return output == "json"


def warn(manifest: Manifest) -> None:
    for warning in manifest.warnings:
        err(f"{warning}\n")


def print_json(data: object, *, indent: int | None = 2, sort_keys: bool = False) -> int:
    """JSON on stdout, scrubbed before it is encoded (an escaped value would slip past a scrub of the text)."""
    from toolhive_apply.redact import scrubbed_json

    out(scrubbed_json(data, indent=indent, sort_keys=sort_keys) + "\n")
    return EXIT_OK
