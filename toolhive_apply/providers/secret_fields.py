"""A secret's value copied into a plain field (through env(), a --var, a registry default) is refused.

Plain fields end up in clear where the scrubber cannot follow: the spec label of a container, a saved plan,
a client file, the container's own environment. So the value of every secret known to the run is looked for
in every plain string of the manifest (after rendering) and of every resource spec, and the run stops with a
positioned error naming the secret and the field, never the value.

What counts as "appears" is what the scrubber would redact: any spelling of the value (redact.spellings:
escapes, line ends, each line of a multi-line value) inside the field. Values shorter than MIN_SCRUB_LENGTH are
neither scrubbed nor looked for: a two-character secret would match half the manifest, and it protects
nothing anyway; the secret provider warns about such values instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from toolhive_apply.engine.plan import Plan, plan_to_json
from toolhive_apply.errors import ManifestError, ManifestIssue, Origin, ToolhiveApplyError
from toolhive_apply.manifest.loader import load_manifest_files
from toolhive_apply.providers.secret import read_secret_file
from toolhive_apply.redact import MIN_SCRUB_LENGTH, SecretValue, redact, secret_paths, spellings

if TYPE_CHECKING:
    from toolhive_apply.engine.resource import DesiredResource
    from toolhive_apply.manifest.model import Manifest

# the sections whose values are written somewhere (`vars` only feeds templates); a secret's own value is a
# SecretValue, which is no plain string, so its description and names are checked but not the value itself
_SECTIONS = ("settings", "groups", "registries", "secrets", "clients", "workloads")
_NOT_DATA = frozenset({"origin", "base_dir", "index"})
_DIGESTS = frozenset({"digest", "secret_digests"})

Place = tuple[Origin | None, str, str]  # where, field path, text


def _strings(value: object, path: str) -> Iterator[tuple[str, str]]:
    """(field path, text) for every string inside `value`, mapping keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            inner = f"{path}.{key}"
            if isinstance(key, str):
                yield inner, key
            yield from _strings(item, inner)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for spec in dataclasses.fields(value):
            if spec.name not in _NOT_DATA:
                yield from _strings(getattr(value, spec.name), f"{path}.{spec.name}")


def manifest_places(manifest: Manifest) -> Iterator[Place]:
    """Every plain string of the rendered manifest, with the origin of the entry it belongs to."""
    for section in _SECTIONS:
        value = getattr(manifest, section)
        entries = value if isinstance(value, tuple) else (value,)
        for index, entry in enumerate(entries):
            prefix = f"{section}[{index}]" if isinstance(value, tuple) else section
            origin = getattr(entry, "origin", None)
            for path, text in _strings(entry, prefix):
                yield origin, path, text


def spec_places(desired: Sequence[DesiredResource]) -> Iterator[Place]:
    """Every string of every resource spec: what labels, plans and client files are written from (keyed
    digests aside: they are derived from values, not copies of them)."""
    for resource in desired:
        spec = {k: v for k, v in resource.spec.items() if k not in _DIGESTS}
        for path, text in _strings(spec, str(resource.id)):
            yield resource.origin, path, text


def refuse_values_in(places: Iterator[Place], values: Mapping[str, SecretValue]) -> None:
    """ManifestError listing every field holding the value of one of `values` (named by key, never shown)."""
    forms = {
        name: spellings(value.reveal()) for name, value in values.items() if len(value.reveal()) >= MIN_SCRUB_LENGTH
    }
    if not forms:
        return
    issues = []
    for origin, path, text in places:
        for name, spelled in forms.items():
            if any(form in text for form in spelled):
                issues.append(
                    ManifestIssue(
                        origin,
                        path,
                        f"the value of secret {name!r} appears in field {path}; a plain field is stored and shown "
                        "in clear: deliver the secret through the workload's secrets ({name, target}) instead",
                    )
                )
    if issues:
        raise ManifestError(issues, hint="reference the secret by name; never copy its value (e.g. with env())")


def declared_values(manifest: Manifest, environ: Mapping[str, str]) -> dict[str, SecretValue]:
    """The values of declared secrets whose source can be read now (env, file, inline); unreadable ones are
    left out: the plan reports a missing source, this check only needs what is there."""
    values = {}
    for secret in manifest.secrets:
        value: str | None = None
        if secret.inline is not None:
            values[secret.key] = secret.inline
            continue
        if secret.env is not None:
            value = environ.get(secret.env)
        elif secret.file is not None:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                value = read_secret_file((secret.base_dir / secret.file).resolve())
        if value is not None:
            values[secret.key] = SecretValue(value)
    return values


def check_manifest_values(manifest: Manifest, environ: Mapping[str, str]) -> None:
    """At load (validate, plan, apply): no declared secret's value in a plain field of the manifest."""
    refuse_values_in(manifest_places(manifest), declared_values(manifest, environ))


def check_desired_values(
    manifest: Manifest, desired: Sequence[DesiredResource], values: Mapping[str, SecretValue]
) -> None:
    """At plan time, with every value the run read (declared ones and the store's): neither the manifest nor any
    resource spec (registry defaults included) may hold one."""
    refuse_values_in(manifest_places(manifest), values)
    refuse_values_in(spec_places(desired), values)


def register_early(paths: Sequence[Path], environ: Mapping[str, str]) -> None:
    """Best effort, for a manifest that failed to load: register the values of the secrets it declares with a
    plain (untemplated) source, so that the errors about to be printed are scrubbed of them."""
    try:
        loaded, _ = load_manifest_files(paths)
    except ToolhiveApplyError:
        return
    declared = loaded.data.get("secrets")
    for index, entry in enumerate(declared if isinstance(declared, list) else ()):
        if not isinstance(entry, dict):
            continue
        source = entry.get("from")
        source = source if isinstance(source, dict) else {}
        if isinstance(entry.get("value"), str) and "{" not in entry["value"]:  # a template is no value yet
            SecretValue(entry["value"])
        if isinstance(source.get("env"), str) and source["env"] in environ:
            SecretValue(environ[source["env"]])
        origin = loaded.positions.find(("secrets", index))
        if isinstance(source.get("file"), str) and origin is not None:
            with contextlib.suppress(OSError, UnicodeDecodeError, ValueError):
                SecretValue(read_secret_file((origin.file.resolve().parent / source["file"]).resolve()))


def check_plan_file(plan: Plan) -> None:
    """A saved plan is applied as it is written, so it is never scrubbed (that would change what apply does):
    one that would hold a secret value is not saved at all."""
    where = secret_paths(plan_to_json(plan))
    if where:
        shown = ", ".join(redact(path) for path in where[:5]) + (" ..." if len(where) > 5 else "")
        raise ToolhiveApplyError(
            f"refusing to save the plan: it would hold a secret value in clear ({shown})",
            hint="deliver secrets through a workload's secrets (name, target), never in a plain field",
        )
