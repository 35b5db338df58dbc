"""`toolhive-apply export ...`: live state as read-only JSON in ToolHive's API shapes; nothing is changed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from toolhive_apply.cli.common import EXIT_OK, DockerHostOpt, err, load, print_json

export_app = typer.Typer(help="Print live state as read-only JSON in ToolHive's API shapes.", no_args_is_help=False)


@export_app.callback(invoke_without_command=True)
def _export_root(
    ctx: typer.Context,
    as_manifest: Annotated[
        bool, typer.Option("--as-manifest", help="Print a manifest that plans no changes against this state.")
    ] = False,
    stack: Annotated[str | None, typer.Option(help="Only this stack (required with --as-manifest).")] = None,
    docker_host: DockerHostOpt = None,
    format_: Annotated[
        str | None, typer.Option("--format", help="kubernetes: render the stack's live state for ToolHive's operator.")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Directory for --format kubernetes.")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", help="With --format kubernetes.")] = None,
) -> None:
    from toolhive_apply.errors import UsageError
    from toolhive_apply.operations.export import stack_manifest

    if ctx.invoked_subcommand is not None:
        return
    if format_ is not None:
        if format_ != "kubernetes" or not stack or out_dir is None:
            raise UsageError("use --format kubernetes --stack NAME --out DIR")
        _export_kubernetes(stack_manifest(docker_host, stack), out_dir, namespace)
        raise typer.Exit(EXIT_OK)
    if not as_manifest:
        raise UsageError("say what to export: workloads, workload NAME, or --as-manifest --stack NAME")
    if not stack:
        raise UsageError("--as-manifest needs --stack: a manifest belongs to one stack")
    print_json(stack_manifest(docker_host, stack))
    raise typer.Exit(EXIT_OK)


def _export_kubernetes(manifest: dict[str, Any], out_dir: Path, namespace: str | None) -> None:
    """Live state rendered as `render kubernetes` renders a manifest: through `export --as-manifest`'s output,
    loaded by the ordinary loader, so both paths share every rule."""
    import json
    import tempfile

    from toolhive_apply.cli.common import out
    from toolhive_apply.interop.commands import render_to

    with tempfile.TemporaryDirectory(prefix="toolhive-apply-export-") as scratch:
        path = Path(scratch) / "stack.yaml"
        path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        rendering = render_to(load([path], None, None), out_dir, namespace)
    out(f"Rendered {len(rendering.documents)} documents and kustomization.yaml into {out_dir}.\n")


@export_app.command("workloads")
def export_workloads(
    all_: Annotated[bool, typer.Option("--all", help="Include stopped workloads.")] = False,
    group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
    stack: Annotated[str | None, typer.Option(help="Only this stack.")] = None,
    docker_host: DockerHostOpt = None,
) -> int:
    """`{"workloads": [...]}` as ToolHive's API and `thv list --format json` print it."""
    from toolhive_apply.operations.export import toolhive_containers
    from toolhive_apply.views.workloads import list_workloads

    return print_json(list_workloads(toolhive_containers(docker_host, stack, auxiliary=True), all_, group))


@export_app.command("workload")
def export_workload(
    name: Annotated[str, typer.Argument(help="Workload name.")],
    runconfig: Annotated[bool, typer.Option("--runconfig", help="Print a RunConfig (thv run --from-config).")] = False,
    stack: Annotated[str | None, typer.Option(help="Only this stack.")] = None,
    docker_host: DockerHostOpt = None,
) -> int:
    """One workload's details (ToolHive's create-request shape) or its RunConfig."""
    from toolhive_apply.operations.export import workload_spec_named
    from toolhive_apply.views.workloads import runconfig as to_runconfig
    from toolhive_apply.views.workloads import workload_details

    spec, owner = workload_spec_named(docker_host, stack, name)
    return print_json(to_runconfig(spec, owner) if runconfig else workload_details(spec))


@export_app.command("registries")
def export_registries(
    stack: Annotated[str | None, typer.Option(help="Only this stack.")] = None,
    docker_host: DockerHostOpt = None,
) -> int:
    """`{"registries": [...]}`: each applied registry's source, version and server count."""
    from toolhive_apply.operations.export import applied_registries
    from toolhive_apply.views.registry import registry_info

    rows = []
    for record in applied_registries(docker_host, stack):
        spec, catalogue = _catalogue(record)
        rows.append(registry_info(spec["name"], spec["type"], spec["source"], catalogue))
    return print_json({"registries": sorted(rows, key=lambda r: r["name"])})


@export_app.command("registry")
def export_registry(
    name: Annotated[str, typer.Argument(help="Registry name.")],
    what: Annotated[str | None, typer.Argument(help="`servers`, or `server` followed by a server name.")] = None,
    server: Annotated[str | None, typer.Argument(help="Server name (full or unique short name).")] = None,
    stack: Annotated[str | None, typer.Option(help="Only this stack.")] = None,
    docker_host: DockerHostOpt = None,
) -> int:
    """One registry's details, its servers, or one server, in ToolHive's API shapes."""
    from toolhive_apply.errors import UsageError
    from toolhive_apply.operations.export import applied_registries
    from toolhive_apply.views.registry import registry_details, server_view, servers_listing

    spec, catalogue = _catalogue(applied_registries(docker_host, stack, name)[0])
    if what is None:
        return print_json(registry_details(spec["name"], spec["type"], spec["source"], catalogue))
    if what == "servers":
        return print_json(servers_listing(catalogue))
    if what == "server" and server:
        entry = catalogue.find(server)
        if entry is None:
            raise UsageError(f"registry {name!r} has no server {server!r}")
        return print_json(server_view(entry))
    raise UsageError("use: export registry NAME [servers | server SERVER]")


@export_app.command("secrets")
def export_secrets(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="A manifest whose settings.secrets names the store (default: the encrypted store).", show_default=False
        ),
    ] = None,
    provider: Annotated[bool, typer.Option("--provider", help="Describe the store instead of listing keys.")] = False,
) -> int:
    """`{"keys": [{"key", "description"}]}` as ToolHive's API lists secrets: names only, never values."""
    from toolhive_apply.operations import secret_settings
    from toolhive_apply.stores.factory import default_settings, open_store

    settings: dict[str, Any] = default_settings()
    if paths:
        settings = secret_settings(load(paths, None, None))
    store = open_store(settings)
    if provider:
        return print_json(store.describe())
    keys = [{"key": s.key, **({"description": s.description} if s.description else {})} for s in store.list()]
    return print_json({"keys": keys})


@export_app.command("clients")
def export_clients(
    stack: Annotated[str | None, typer.Option(help="Only this stack.")] = None,
    discovery: Annotated[
        bool, typer.Option("--discovery", help="Every client type: installed here, registered by a stack.")
    ] = False,
) -> int:
    """`[{"name", "groups"}]` (ToolHive's clients listing), or `{"clients": [...]}` with --discovery."""
    from toolhive_apply.providers.client.state import default_state_dir
    from toolhive_apply.views.clients import clients_discovery, clients_listing

    if discovery:
        return print_json(clients_discovery(Path.home(), default_state_dir()))
    return print_json(clients_listing(default_state_dir(), stack))


@export_app.command("group")
def export_group(
    name: Annotated[str, typer.Argument(help="Group name.")],
    vmcp_config: Annotated[
        bool, typer.Option("--vmcp-config", help="Print the group gateway as a ToolHive vMCP configuration.")
    ] = False,
    stack: Annotated[str | None, typer.Option(help="Only this stack.")] = None,
    docker_host: DockerHostOpt = None,
) -> int:
    """A group's vMCP gateway as ToolHive's `vmcp serve --config` reads it (JSON, which is YAML)."""
    from toolhive_apply.errors import UsageError
    from toolhive_apply.operations.export import group_gateway_spec
    from toolhive_apply.views.vmcp import vmcp_config as to_vmcp_config

    if not vmcp_config:
        raise UsageError("say what to export of the group: --vmcp-config")
    return print_json(to_vmcp_config(group_gateway_spec(docker_host, stack, name)))


def _catalogue(record: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    from toolhive_apply.operations.export import registry_catalogue

    spec, catalogue, warning = registry_catalogue(record)
    if warning:
        err(f"Warning: {warning}\n")
    return spec, catalogue
