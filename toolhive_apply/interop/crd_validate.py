"""Validate rendered Kubernetes documents against the CRDs we ship (schemas/crds/), as the API server would.

A CRD's openAPIV3Schema is not plain JSON Schema: the API server prunes (or, with strict field validation,
rejects) fields a structural schema does not declare, honours `nullable`, `x-kubernetes-int-or-string` and
`x-kubernetes-preserve-unknown-fields`, and checks `format: int32` ranges. We translate those into JSON Schema
and treat an unknown field as an error, so a rendered document that validates here is one `kubectl apply
--validate=strict` accepts field for field. CEL rules (`x-kubernetes-validations`) are not evaluated; the renderer
never sets the fields they relate (mutually exclusive pairs, rate limiting).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import jsonschema
import yaml

CRD_DIR: Final = "crds"
INT32: Final = (-(2**31), 2**31 - 1)
# metadata.name of a namespaced custom resource: a DNS-1123 subdomain
DNS_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_METADATA_KEYS: Final = frozenset({"name", "namespace", "labels", "annotations"})


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One validation failure: the document it is in, the JSON path of the field, and why."""

    document: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.document}: {self.path or '(document)'}: {self.message}"


def crd_dir() -> Path:
    """The packaged CRDs, or the repository copy when running from a source checkout."""
    packaged = resources.files("toolhive_apply").joinpath("schemas", CRD_DIR)
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "schemas" / CRD_DIR


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the JSON Schema made from that version's openAPIV3Schema."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(crd_dir().glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            found[(f"{group}/{version['name']}", kind)] = to_json_schema(schema, top=True)
    return found


def to_json_schema(node: Mapping[str, Any], top: bool = False) -> dict[str, Any]:
    """One structural-schema node as JSON Schema (draft 2020-12) with the API server's semantics."""
    out: dict[str, Any] = {}
    for key in ("enum", "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "required"):
        if key in node:
            out[key] = node[key]
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    elif kind is not None:
        out["type"] = [kind, "null"] if node.get("nullable") else kind
    if node.get("format") == "int32" and kind == "integer":
        out.setdefault("minimum", INT32[0])
        out.setdefault("maximum", INT32[1])
    if "items" in node:
        out["items"] = to_json_schema(node["items"])
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if "properties" in node:
        out["properties"] = {name: to_json_schema(sub) for name, sub in node["properties"].items()}
        if top:  # apiVersion/kind/metadata are checked by validate_document itself
            out["properties"]["metadata"] = {"type": "object"}
    if isinstance(node.get("additionalProperties"), Mapping):
        out["additionalProperties"] = to_json_schema(node["additionalProperties"])
    elif kind == "object" and not preserve and "additionalProperties" not in node:
        out["additionalProperties"] = False  # pruned by the API server: we call it an error
    return out


def validate_document(document: Mapping[str, Any], label: str) -> list[SchemaProblem]:
    """Every problem of one custom resource against its CRD (an unknown apiVersion/kind is one problem)."""
    api_version = str(document.get("apiVersion", ""))
    kind = str(document.get("kind", ""))
    schema = crd_schemas().get((api_version, kind))
    if schema is None:
        return [SchemaProblem(label, "kind", f"no shipped CRD serves {kind!r} at {api_version!r}")]
    problems = list(_metadata_problems(document.get("metadata"), label))
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(dict(document)), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(SchemaProblem(label, _json_path(error.absolute_path), error.message))
    return problems


def _metadata_problems(metadata: object, label: str) -> Iterator[SchemaProblem]:
    if not isinstance(metadata, Mapping):
        yield SchemaProblem(label, "metadata", "missing")
        return
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        yield SchemaProblem(label, "metadata.name", f"{name!r} is not a DNS-1123 subdomain")
    namespace = metadata.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not DNS_LABEL.match(namespace)
    ):
        yield SchemaProblem(label, "metadata.namespace", f"{namespace!r} is not a DNS-1123 label")
    for key in sorted(set(metadata) - _METADATA_KEYS):
        yield SchemaProblem(label, f"metadata.{key}", "not something a rendered document sets")
    for field in ("labels", "annotations"):
        values = metadata.get(field, {})
        if not isinstance(values, Mapping) or not all(isinstance(v, str) for v in values.values()):
            yield SchemaProblem(label, f"metadata.{field}", "must map strings to strings")


def _json_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_CONFIGMAP: Final = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "data"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "ConfigMap"},
        "metadata": {"type": "object"},
        "data": {
            "type": "object",
            "propertyNames": {"pattern": r"^[-._a-zA-Z0-9]+$", "maxLength": 253},
            "additionalProperties": {"type": "string"},
        },
    },
}


def validate_core(document: Mapping[str, Any], label: str) -> list[SchemaProblem]:
    """The one core kind the renderer writes (ConfigMap), by the rules of its API type."""
    problems = list(_metadata_problems(document.get("metadata"), label))
    for error in jsonschema.Draft202012Validator(_CONFIGMAP).iter_errors(dict(document)):
        problems.append(SchemaProblem(label, _json_path(error.absolute_path), error.message))
    return problems
