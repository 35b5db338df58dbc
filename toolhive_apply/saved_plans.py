"""Saved plans at the edges: the key a plan is signed with, and a plan file opened only once it is verified.

A plan file is an artefact that travels (a CI artefact, a file on a laptop), so nothing in it is trusted before its
MAC holds: only the stack and the secret store settings are read to find the key, the store must then hold the
stack's key, a Vault must be the one VAULT_ADDR names, and the verified specs pass the manifest's checks again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolhive_apply.engine.plan import Plan, PlanFile, plan_mac_key, read_plan_file
from toolhive_apply.errors import PlanFileError, ToolhiveApplyError, UnsafePlanError
from toolhive_apply.manifest.loader import API_VERSION, Positions
from toolhive_apply.manifest.schema import validate_structure
from toolhive_apply.operations import Connection, Targets, open_targets, resolver_for
from toolhive_apply.providers.secret import SecretResolver
from toolhive_apply.providers.stack_key import stack_key
from toolhive_apply.spec_checks import shown_differs, spec_issues
from toolhive_apply.stores.factory import default_settings

MAX_PARALLELISM = 64


def plan_signing_key(connection: Connection) -> bytes:
    """The MAC key for a plan saved now; the stack's secret key is created (and stored) first if it has none.

    Called before the plan is made, so the plan's own digests use the stored key. It opens a store of its own: the
    run's resolver stays unopened for a manifest without secrets, so the plan is the same as without --out.
    """
    resolver = resolver_for(connection)
    try:
        key = stack_key(resolver.store, connection.stack, create=True)
    except ToolhiveApplyError as exc:
        why = "plan --out signs the plan with the stack's key, kept in the secret store (even without secrets)"
        exc.hint = f"{exc.hint}; {why}" if exc.hint else why
        raise
    assert key is not None  # create=True makes it
    return plan_mac_key(key, connection.stack)


def _store_settings_problem(settings: Mapping[str, Any]) -> str | None:
    """The unverified `settings.secrets` must have the manifest's shape before a store is opened with it."""
    document = {"apiVersion": API_VERSION, "settings": {"secrets": settings.get("secrets", {})}}
    issues = validate_structure(document, Positions())
    return f"{issues[0].field}: {issues[0].message}" if issues else None


def _saved_connection(stack: str, settings: Mapping[str, Any]) -> Connection:
    """Where a saved plan's targets are; read before verification too, so any shape is taken without a traceback."""
    host = settings.get("docker_host")
    secrets = settings.get("secrets")
    parallelism = settings.get("parallelism")
    return Connection(
        stack,
        host if isinstance(host, str) else None,
        secrets if isinstance(secrets, dict) else default_settings(),
        parallelism=parallelism if isinstance(parallelism, int) and 0 < parallelism <= MAX_PARALLELISM else 4,
    )


def check_vault_pin(secrets: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """An unverified plan may name the Vault its key is read from, so the applying side must confirm it.

    Otherwise an edited plan could point at a server its author runs: that server would get the run's login (the
    CI's JWT, say) and could hand out a key that makes any plan verify. VAULT_ADDR is the confirmation.
    """
    if secrets.get("provider") != "vault":
        return
    planned = str((secrets.get("vault") or {}).get("address") or "").rstrip("/")
    pinned = environ.get("VAULT_ADDR", "").rstrip("/")
    if planned and planned != pinned:
        raise PlanFileError(
            f"the saved plan reads its key from Vault at {planned}, but VAULT_ADDR is {pinned or 'not set'}; "
            "refusing to log in anywhere a plan file names before the plan is verified",
            hint=f"export VAULT_ADDR={planned} if that is the Vault this stack's key is kept in",
        )


def _verify(plan_file: PlanFile, resolver: SecretResolver) -> Plan:
    key = stack_key(resolver.store, plan_file.stack, create=False)
    if key is None:
        store = resolver.store
        raise PlanFileError(
            f"{plan_file.path}: cannot verify the saved plan: stack {plan_file.stack!r} has no key in the "
            f"{store.kind} store ({store.endpoint}); nothing was applied",
            hint="a plan is verified with the key `plan --out` used: apply it with the same secret store "
            "(for the environment store, the same TOOLHIVE_APPLY_HMAC_KEY)",
        )
    return plan_file.verify(plan_mac_key(key, plan_file.stack))


def check_carried(plan: Plan, where: Path) -> None:
    """What the verified plan will apply passes the manifest's checks, and what it shows is what it applies."""
    lines = [f"{where}: {issue}" for issue in spec_issues(plan.stack, [c.desired for c in plan.changes if c.desired])]
    for change in plan.changes:
        path = shown_differs(change)
        if path is not None:
            lines.append(f"{where}: {change.id}: {path}: the plan shows another value than it would apply")
    if lines:
        raise UnsafePlanError(f"{where}: the saved plan fails the manifest's checks; nothing was applied", lines)


def open_saved_plan(
    path: Path, *, stack: str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Plan, Targets]:
    """A saved plan, verified and checked, with the targets it names; nothing of it is used before its MAC holds.

    Only the stack and the secret store settings are read unverified, to find the key; the store must then hold
    the stack's key (and a Vault must be the one VAULT_ADDR names). Docker is not contacted before verification.
    `stack`, when given, is the only stack the caller accepts a plan for (a pipeline pins its own).
    """
    plan_file = read_plan_file(path)
    if stack is not None and plan_file.stack != stack:
        raise PlanFileError(f"{path}: the plan is for stack {plan_file.stack!r}, not {stack!r}; nothing was applied")
    problem = _store_settings_problem(plan_file.settings)
    if problem:
        raise PlanFileError(f"{path}: cannot read plan file: {problem}")
    unverified = _saved_connection(plan_file.stack, plan_file.settings)
    check_vault_pin(unverified.secrets, os.environ if environ is None else environ)
    resolver = resolver_for(unverified)
    plan = _verify(plan_file, resolver)
    check_carried(plan, path)
    # Verified now (the MAC covers stack and settings). The run gets a resolver of its own: one opened here would
    # make the observation list the store where the plan's did not, and the plan would look stale.
    return plan, open_targets(unverified)


def saved_parallelism(plan: Plan) -> int:
    return _saved_connection(plan.stack, plan.settings).parallelism
