"""What `--help` calls each value: `--stack NAME`, `[PATH]...`, not Typer's `<str>` and `<list[Path]>`.

Typer derives a metavar from the Python annotation, which says how the value is stored, not what to type. One table
names every parameter of every command (one home for the vocabulary); a parameter missing from it gets its name in
capitals, and an argument never shows its Python type.
"""

from __future__ import annotations

from typing import Any, Final

METAVARS: Final = {
    "paths": "PATH",
    "names": "NAME",
    "name": "NAME",
    "what": "servers|server",
    "server": "SERVER",
    "var": "KEY=VALUE",
    "var_file": "FILE",
    "output": "text|json",
    "stack": "NAME",
    "target": "NAME",
    "replace": "NAME",
    "out_file": "FILE",
    "parallelism": "N",
    "lock_timeout": "SECONDS",
    "docker_host": "URL",
    "group": "GROUP",
}


def _no_type(ctx: Any) -> None:
    """An argument's help row shows its name and help, not the Python type of its value."""
    return None


def name_values(command: Any) -> None:
    """Set the metavar of every parameter of `command` and its subcommands (click objects, Typer's or click's)."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) or param.metavar is not None:
            continue
        param.metavar = METAVARS.get(str(param.name), str(param.name).upper())
        if getattr(param, "param_type_name", "") == "argument":
            param.display_type_rich = _no_type
    for sub in (getattr(command, "commands", None) or {}).values():
        name_values(sub)
