"""`render kubernetes` and `import toolhive`: the two doors between toolhive-apply and ToolHive's other homes.

Registered in cli.py with one line each; heavy imports stay inside the commands so `--help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolhive_apply.cli.common import EXIT_OK, DockerHostOpt, PathsArg, VarFileOpt, VarOpt, err, load, out

if TYPE_CHECKING:
    from toolhive_apply.interop.kubernetes_model import Rendering
    from toolhive_apply.manifest.model import Manifest

render_app = typer.Typer(help="Render a manifest for another runtime (ToolHive's Kubernetes operator).")
import_app = typer.Typer(help="Write a manifest from another tool's state (ToolHive's thv).")

OutDirOpt = Annotated[Path, typer.Option("--out", metavar="DIR", help="Directory to write into.", show_default=False)]
NamespaceOpt = Annotated[str | None, typer.Option("--namespace", help="metadata.namespace of every resource.")]


@render_app.callback()
def _render_root() -> None:
    """Render a manifest for another runtime."""


@import_app.callback()
def _import_root() -> None:
    """Write a manifest from another tool's state."""


def render_to(manifest: Manifest, out_dir: Path, namespace: str | None) -> Rendering:
    """Resolve registry workloads, render, validate against the CRDs, write; warnings go to stderr."""
    from toolhive_apply.errors import UsageError
    from toolhive_apply.interop.crd_validate import DNS_LABEL
    from toolhive_apply.interop.kubernetes_render import render_manifest, write_rendering
    from toolhive_apply.registry.resolve import resolve_registries

    if namespace is not None and (len(namespace) > 63 or not DNS_LABEL.match(namespace)):
        raise UsageError(f"--namespace {namespace!r} is not a DNS-1123 label")
    resolved = resolve_registries(manifest)
    for note in resolved.warnings:
        err(f"Warning: {note}\n")
    rendering = render_manifest(resolved.manifest, namespace)
    for warning in rendering.warnings:
        err(f"{warning}\n")
    for need in rendering.needs:
        err(f"Needs: secret {need.secret}: {need.where}\n")
    write_rendering(rendering, out_dir)
    return rendering


@render_app.command("kubernetes")
def render_kubernetes(
    out_dir: OutDirOpt,
    paths: PathsArg = None,
    namespace: NamespaceOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
) -> int:
    """ToolHive operator resources (toolhive.stacklok.dev/v1beta1) and a kustomization.yaml, without Docker.

    Secrets are references only (Kubernetes Secret names and keys, or Vault Agent Injector annotations). What the
    operator has no equivalent for is a warning on stderr, per resource.
    """
    manifest = load(paths, var, var_file)
    rendering = render_to(manifest, out_dir, namespace)
    out(f"Rendered {len(rendering.documents)} documents and kustomization.yaml into {out_dir}.\n")
    return EXIT_OK


@import_app.command("toolhive")
def import_toolhive(
    home: Annotated[
        Path | None,
        typer.Option("--home", metavar="DIR", help="Home directory whose ToolHive state is read (default $HOME)."),
    ] = None,
    out_dir: OutDirOpt = Path("imported"),
    docker_host: DockerHostOpt = None,
    stack: Annotated[str | None, typer.Option("--stack", help="settings.stack of the written manifest.")] = None,
) -> int:
    """Read thv's RunConfigs, groups, config.yaml and containers (changing nothing) and write a manifest directory."""
    import os

    from toolhive_apply.interop.toolhive_import import ToolhiveDirs, import_state, write_import

    # --home names a home directory whose default XDG layout is read; without it, thv's own XDG variables apply
    dirs = ToolhiveDirs.of(home) if home is not None else ToolhiveDirs.of(Path.home(), os.environ)
    imported = import_state(dirs, docker_host, stack)
    written = write_import(imported, out_dir)
    for note in imported.notes:
        err(f"Note: {note}\n")
    out(f"Wrote {written} ({len(imported.workloads)} workloads). Next: toolhive-apply plan {out_dir}\n")
    return EXIT_OK
