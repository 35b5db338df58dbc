"""The command line: Typer commands, and the one place errors become messages and exit codes.

Heavy modules (docker, hvac, jinja2, jsonschema) are imported inside the commands, so `--help`
starts fast. Typer's pretty exceptions are off: their tracebacks print local variables, which
could hold secrets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from toolhive_apply import __version__
from toolhive_apply.cli.boundary import internal_error, print_error, usage_problem
from toolhive_apply.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    OutputOpt,
    PathsArg,
    PruneSecretsOpt,
    StackOpt,
    TargetOpt,
    VarFileOpt,
    VarOpt,
    check_output,
    colour,
    err,
    load,
    out,
    print_json,
    warn,
)
from toolhive_apply.cli.export import export_app
from toolhive_apply.cli.help import name_values
from toolhive_apply.cli.logs import logs
from toolhive_apply.cli.maintenance import restart, unlock
from toolhive_apply.cli.verify import verify as verify_command
from toolhive_apply.interop.commands import import_app, render_app

if TYPE_CHECKING:
    from toolhive_apply.engine.plan import Plan
    from toolhive_apply.engine.provider import Event
    from toolhive_apply.manifest.model import Manifest
    from toolhive_apply.operations import Targets

app = typer.Typer(
    name="toolhive-apply",
    help="Plan and apply MCP servers, clients, registries and secrets from a declarative manifest.",
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(export_app, name="export")
app.add_typer(render_app, name="render")
app.add_typer(import_app, name="import")
app.command(name="logs")(logs)
app.command("verify")(verify_command)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: run the Typer app and turn every outcome into one message and an exit code."""
    from toolhive_apply.credentials import register_credentials
    from toolhive_apply.errors import ToolhiveApplyError

    register_credentials(os.environ)  # before anything can print: the tool's own credentials are never shown

    args = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--output=json" in args or any(
        a in ("--output", "-o") and i + 1 < len(args) and args[i + 1] == "json" for i, a in enumerate(args)
    )
    command = typer.main.get_command(app)
    name_values(command)  # `--stack NAME`, not `<str>`
    try:
        code = command.main(args, prog_name="toolhive-apply", standalone_mode=False)
    except ToolhiveApplyError as error:
        print_error(error, json_mode)
        code = error.exit_code
    except KeyboardInterrupt:
        err("Interrupted.\n")
        code = 130
    except Exception as exc:  # noqa: BLE001 - the one place that must never show a traceback
        code = usage_problem(exc)
        if code is None:
            code = internal_error(exc)
    sys.stdout.flush()
    raise SystemExit(code if isinstance(code, int) else EXIT_OK)


def _ids(names: list[str] | None) -> frozenset[Any]:
    from toolhive_apply.engine.resource import ResourceId
    from toolhive_apply.errors import UsageError

    try:
        return frozenset(ResourceId.parse(n) for n in names or [])
    except ValueError:
        raise UsageError(f"unknown resource kind in {names}; use NAME or workload/NAME") from None


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------
def _version(value: bool) -> None:
    if value:
        out(f"toolhive-apply {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """toolhive-apply: Terraform-style plan/apply for ToolHive MCP servers."""


def _stack_dirs(paths: list[Path]) -> list[list[Path]]:
    """Manifests to validate separately: a directory holding no manifest but stack subdirectories
    (like `examples/`) is one stack per subdirectory; everything else given together is one stack."""
    together: list[Path] = []
    separate: list[list[Path]] = []
    for path in paths:
        has_own = path.is_dir() and any(p.suffix in (".yaml", ".yml") for p in path.iterdir())
        subdirs = sorted(d for d in path.iterdir() if d.is_dir()) if path.is_dir() and not has_own else []
        stacks = [d for d in subdirs if any(p.suffix in (".yaml", ".yml") for p in d.iterdir())]
        if stacks:
            separate.extend([d] for d in stacks)
        else:
            together.append(path)
    return ([together] if together else []) + separate


@app.command()
def validate(
    paths: PathsArg = None, var: VarOpt = None, var_file: VarFileOpt = None, output: OutputOpt = "text"
) -> int:
    """Check manifests (syntax, templates, schema, references, registries) without Docker or the network.

    A directory of stack directories (such as examples/) is validated one stack at a time.
    """
    from toolhive_apply.engine.render import manifest_counts
    from toolhive_apply.errors import ManifestError, ManifestIssue
    from toolhive_apply.preflight import preflight

    json_mode = check_output(output)
    problems: list[ManifestIssue] = []
    warnings: list[ManifestIssue] = []
    for group in _stack_dirs(paths or [Path.cwd()]):
        try:
            manifest = load(group, var, var_file)
            notes = preflight(manifest, offline=True).notes  # what plan would refuse, short of Docker and network
        except ManifestError as error:
            problems.extend(error.issues)
            continue
        warnings.extend((*manifest.warnings, *notes))
        if not json_mode:
            warn(manifest)
            for note in notes:
                err(f"{note}\n")
            counts = manifest_counts(manifest)
            where = ", ".join(str(p) for p in group)
            out(f"Valid: {where}: stack {manifest.settings.stack!r}: {counts}.\n")
    if json_mode:
        print_json([i.as_json() for i in problems + warnings])
        return EXIT_ERROR if problems else EXIT_OK
    if problems:
        raise ManifestError(problems)
    return EXIT_OK


def _make_plan(manifest: Manifest, stack: str | None, request: Any) -> tuple[Targets, Plan]:
    from toolhive_apply.operations import make_plan, targets_for

    targets = targets_for(manifest, stack)
    return targets, make_plan(manifest, targets, request)


def _make_saved_plan(manifest: Manifest, stack: str | None, request: Any) -> tuple[Plan, bytes]:
    """A plan to save, and the MAC key to save it with (the stack's key is made first, when it has none)."""
    from toolhive_apply.operations import connection_for, make_plan, open_targets
    from toolhive_apply.saved_plans import plan_signing_key

    connection = connection_for(manifest, stack)
    mac_key = plan_signing_key(connection)
    return make_plan(manifest, open_targets(connection), request), mac_key


@app.command()
def plan(
    paths: PathsArg = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    output: OutputOpt = "text",
    stack: StackOpt = None,
    target: TargetOpt = None,
    replace: Annotated[list[str] | None, typer.Option("--replace", help="Plan to recreate this workload.")] = None,
    allow_empty: Annotated[bool, typer.Option(help="Allow a plan that deletes everything.")] = False,
    prune_secrets: PruneSecretsOpt = False,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 0 for no changes, 1 for errors, 2 for changes.")
    ] = False,
    out_file: Annotated[Path | None, typer.Option("--out", help="Save the plan to FILE for `apply FILE`.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every attribute.")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Show where each value came from (registry).")] = False,
) -> int:
    """Show what apply would change, without changing anything."""
    from toolhive_apply.engine.plan import plan_to_json, save_plan
    from toolhive_apply.engine.render import render_plan
    from toolhive_apply.operations import PlanRequest
    from toolhive_apply.providers.secret_fields import check_plan_file

    json_mode = check_output(output)
    manifest = load(paths, var, var_file)
    if not json_mode:
        warn(manifest)
    request = PlanRequest(_ids(target), _ids(replace), allow_empty, prune_secrets=prune_secrets)
    if out_file is None:
        _, the_plan = _make_plan(manifest, stack, request)
    else:
        the_plan, mac_key = _make_saved_plan(manifest, stack, request)
        check_plan_file(the_plan)  # a plan holding a secret value is not saved (it would be applied as saved)
        save_plan(the_plan, out_file, mac_key)
    if json_mode:
        print_json(plan_to_json(the_plan), sort_keys=True)
    else:
        out(render_plan(the_plan, colour=colour(sys.stdout), verbose=verbose, explain=explain))
    if out_file is not None and not json_mode:
        out(f"\nSaved the plan to {out_file}. Apply exactly this plan with: toolhive-apply apply {out_file}\n")
    if detailed_exitcode and the_plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _confirm(yes: bool, question: str) -> None:
    from toolhive_apply.errors import UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("refusing to change anything without --yes: there is no terminal to confirm on")
    answer = typer.prompt(f"{question} Only 'yes' will be accepted", default="", show_default=False)
    if answer.strip() != "yes":
        raise UsageError("cancelled: nothing was changed")


def _event_printer(painted: bool) -> Callable[[Event], None]:
    import threading

    lock = threading.Lock()
    codes = {"start": "36", "progress": "2", "done": "32", "failed": "31", "skipped": "35"}

    def emit(event: Event) -> None:
        label = event.phase if not painted else f"\x1b[{codes.get(event.phase, '0')}m{event.phase}\x1b[0m"
        with lock:
            err(f"{event.address}: {label}: {event.message}\n")
            sys.stderr.flush()

    return emit


def _run_apply(the_plan: Plan, targets: Targets, manifest: Manifest | None, options: dict[str, Any]) -> int:
    from toolhive_apply.engine.render import render_plan, render_recap
    from toolhive_apply.operations import apply_plan
    from toolhive_apply.operations.maintenance import clear_stale_stack_lock

    json_mode = options["json"]
    if not json_mode:
        out(render_plan(the_plan, colour=colour(sys.stdout), destroy=options.get("destroy", False)))
    if not the_plan.has_changes:
        # Nothing to change means no lock is taken; a lock left by a killed run is still cleared (see the function).
        clear_stale_stack_lock(targets)
        if json_mode:
            print_json({"changed": False, "recap": None}, indent=None)
        return EXIT_OK
    # a saved plan is the approval (Terraform's rule), and toolhive-apply's own records ask nobody
    if not options.get("saved") and any(not change.id.internal for change in the_plan.changes):
        _confirm(options["yes"], "Do you want to perform these actions?")
    emit = _event_printer(colour(sys.stderr))
    result = apply_plan(the_plan, targets, emit, options["parallelism"], manifest, options["lock_timeout"])
    if json_mode:
        print_json({"changed": True, "recap": result.recap.as_json()})
    else:
        out(render_recap(result.recap, colour=colour(sys.stdout)))
    if not result.ok:
        raise result.error()
    return EXIT_OK


@app.command()
def apply(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Manifest files/directories, or one saved plan file.", show_default=False),
    ] = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    output: OutputOpt = "text",
    stack: StackOpt = None,
    target: TargetOpt = None,
    replace: Annotated[list[str] | None, typer.Option("--replace", help="Recreate this workload.")] = None,
    allow_empty: Annotated[bool, typer.Option(help="Allow deleting everything the stack owns.")] = False,
    prune_secrets: PruneSecretsOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    parallelism: Annotated[int | None, typer.Option(help="Changes applied at once.", min=1, max=64)] = None,
    lock_timeout: Annotated[float, typer.Option(help="Seconds to wait for the stack lock.")] = 10.0,
) -> int:
    """Make the live state match the manifest (or carry out a saved plan exactly)."""
    from toolhive_apply.engine.plan import is_plan_file
    from toolhive_apply.operations import PlanRequest, check_not_stale
    from toolhive_apply.saved_plans import open_saved_plan, saved_parallelism

    options = {"json": check_output(output), "yes": yes, "lock_timeout": lock_timeout}
    if paths and len(paths) == 1 and is_plan_file(paths[0]):
        given: dict[str, object] = {"--var": var, "--var-file": var_file, "--target": target, "--replace": replace}
        given |= {"--allow-empty": allow_empty, "--prune-secrets": prune_secrets}
        _refuse_plan_options([name for name, value in given.items() if value])
        saved, targets = open_saved_plan(paths[0], stack=stack)  # --stack: accept a plan for that stack only
        options["parallelism"] = parallelism or saved_parallelism(saved)
        options["saved"] = True
        check_not_stale(saved, targets)  # a stale plan is refused before it is shown (apply checks again, locked)
        return _run_apply(saved, targets, None, options)
    manifest = load(paths, var, var_file)
    if not options["json"]:
        warn(manifest)
    options["parallelism"] = parallelism or manifest.settings.parallelism
    request = PlanRequest(_ids(target), _ids(replace), allow_empty, prune_secrets=prune_secrets)
    targets, the_plan = _make_plan(manifest, stack, request)
    return _run_apply(the_plan, targets, manifest, options)


def _refuse_plan_options(names: list[str]) -> None:
    from toolhive_apply.errors import UsageError

    if names:
        raise UsageError(
            f"{', '.join(names)} cannot change a saved plan: it is applied exactly as it was made",
            hint="make a new plan with these options (`toolhive-apply plan ... --out FILE`) and apply that",
        )


@app.command()
def destroy(
    paths: PathsArg = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    output: OutputOpt = "text",
    stack: StackOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    lock_timeout: Annotated[float, typer.Option(help="Seconds to wait for the stack lock.")] = 10.0,
    prune_secrets: PruneSecretsOpt = False,
) -> int:
    """Delete everything the stack owns (same plan and confirmation flow as apply); secrets only if asked."""
    from toolhive_apply.operations import PlanRequest

    options = {"json": check_output(output), "yes": yes, "lock_timeout": lock_timeout, "destroy": True}
    manifest = load(paths, var, var_file)
    options["parallelism"] = manifest.settings.parallelism
    targets, the_plan = _make_plan(manifest, stack, PlanRequest(destroy=True, prune_secrets=prune_secrets))
    return _run_apply(the_plan, targets, None, options)


app.command()(restart)
app.command()(unlock)
