"""The files an endpoint's security is read from: a local JWKS and ToolHive's authz config (YAML or JSON).

Read once, bounded, judged as the proxy will judge them (a JWKS the proxy cannot use, a policy outside the Cedar
subset it evaluates), each problem positioned: at the manifest field for a JWKS, at the policy itself for authz.
validate reports these problems; the spec builder reads the same documents, so what is hashed and delivered to the
proxy is what was checked.
"""

from __future__ import annotations

import hashlib
import importlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from toolhive_apply.errors import ManifestIssue, Origin
from toolhive_apply.fileio import InputFileError, read_input
from toolhive_apply.manifest.loader import Positions, format_path, load_file

MAX_DOCUMENT_BYTES: Final = 256 * 1024
"""A JWKS or authz file is a few KiB; anything this big is a mistake (and would not fit an env var anyway)."""
PRIVATE_JWK_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
"""RFC 7518 private (and symmetric) key members: a JWKS handed to a proxy holds public keys only."""
JWK_PUBLIC_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "RSA": ("n", "e"),
    "EC": ("crv", "x", "y"),
    "OKP": ("crv", "x"),
}
AUTHZ_VERSION: Final = "1.0"
AUTHZ_TYPE: Final = "cedarv1"
CEDAR_CHECKER: Final = "toolhive_apply.proxy.cedar"
"""Where the proxy's Cedar evaluator lives; its `unsupported(policy_text)` says what it cannot evaluate."""


def is_url(text: str) -> bool:
    return "://" in text


def loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_problem(text: str, what: str) -> str | None:
    """Why `text` cannot be the `what` URL: not absolute, no host, or not https on a non-loopback host."""
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        return f"{what} is not a URL"
    if parts.scheme not in ("http", "https") or not host:
        return f"{what} must be an absolute https URL with a host"
    if parts.username or parts.password:
        return f"{what} must not carry credentials"
    if parts.scheme != "https" and not loopback_host(host):
        return f"{what} must use https (plain http only on a loopback address)"
    return None


def _read_bounded(path: Path) -> tuple[bytes | None, str | None]:
    try:
        return read_input(path, MAX_DOCUMENT_BYTES), None
    except InputFileError as exc:
        return None, str(exc)


def read_jwks(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the JWKS document, None) or (None, why the proxy could not use it)."""
    data, problem = _read_bounded(path)
    if data is None:
        return None, problem
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, f"{path} is not JSON, so not a JWKS"
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]:
        return None, f"{path} is not a JWKS: expected an object with a non-empty 'keys' list"
    for index, key in enumerate(doc["keys"]):
        problem = _jwk_problem(key)
        if problem:
            return None, f"{path}: keys[{index}]: {problem}"
    return doc, None


def _jwk_problem(key: object) -> str | None:
    if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
        return "not a JWK (an object with a 'kty')"
    private = [m for m in PRIVATE_JWK_MEMBERS if m in key]
    if private:
        return f"holds private or symmetric key material ({', '.join(private)}): a JWKS for the proxy holds public keys"
    needed = JWK_PUBLIC_MEMBERS.get(key["kty"])
    if needed is None:
        return f"key type {key['kty']!r} is not one the proxy verifies (RSA, EC, OKP)"
    missing = [m for m in needed if not isinstance(key.get(m), str)]
    if missing:
        return f"{key['kty']} key without {', '.join(missing)}"
    return None


def document_digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthzDocument:
    """ToolHive's authz config as the proxy gets it, with where each policy was written."""

    policies: tuple[str, ...]
    entities_json: str
    source: str  # the file as written in the manifest, or "inline"
    policy_origins: tuple[Origin | None, ...] = field(default=(), compare=False)

    def as_config(self) -> dict[str, Any]:
        """The THV_PROXY_CONFIG `authz` object (and RunConfig `authz_config`)."""
        cedar = {"policies": list(self.policies), "entities_json": self.entities_json}
        return {"version": AUTHZ_VERSION, "type": AUTHZ_TYPE, "cedar": cedar}


def read_authz(
    value: str | Mapping[str, Any], base_dir: Path, where: Origin | None, field_path: str
) -> tuple[AuthzDocument | None, list[ManifestIssue]]:
    """The authz config from a file (YAML or JSON) or inline, judged: shape, entities, and every policy."""
    if isinstance(value, str):
        path = base_dir / value
        data, problem = _read_bounded(path)
        if data is None:
            return None, [ManifestIssue(where, field_path, problem or "cannot read")]
        positions = Positions()
        issues: list[ManifestIssue] = []
        raw = load_file(path, positions, issues)
        if raw is None:
            return None, issues
        return _authz_from(raw, value, lambda p: positions.find(p), "")
    return _authz_from(value, "inline", lambda _p: where, f"{field_path}.")


def _authz_from(
    raw: Mapping[str, Any], source: str, origin_of: Callable[[tuple[str | int, ...]], Origin | None], prefix: str
) -> tuple[AuthzDocument | None, list[ManifestIssue]]:
    def issue(path: tuple[str | int, ...], message: str) -> ManifestIssue:
        return ManifestIssue(origin_of(path), prefix + format_path(path) if path else prefix.rstrip("."), message)

    issues = []
    if raw.get("version") != AUTHZ_VERSION:
        issues.append(issue(("version",), f"must be {AUTHZ_VERSION!r} (ToolHive's authz config format)"))
    if raw.get("type") != AUTHZ_TYPE:
        issues.append(issue(("type",), f"must be {AUTHZ_TYPE!r}: the proxy evaluates Cedar policies only"))
    extra = sorted(set(raw) - {"version", "type", "cedar"})
    if extra:
        issues.append(issue((extra[0],), f"unknown key {extra[0]!r} in an authz config"))
    cedar = raw.get("cedar")
    if not isinstance(cedar, Mapping):
        issues.append(issue(("cedar",), "missing: an object with policies (and entities_json)"))
        return None, issues
    policies = cedar.get("policies")
    if not isinstance(policies, list) or not policies or not all(isinstance(p, str) and p.strip() for p in policies):
        issues.append(issue(("cedar", "policies"), "must be a non-empty list of Cedar policy texts"))
        return None, issues
    entities = cedar.get("entities_json", "[]")
    if not isinstance(entities, str) or not _json_list(entities):
        issues.append(issue(("cedar", "entities_json"), "must be JSON text of a list of Cedar entities"))
    origins = tuple(origin_of(("cedar", "policies", i)) for i in range(len(policies)))
    checker = cedar_checker()
    if checker is not None:
        for index, policy in enumerate(policies):
            for problem in _problems(checker(policy)):
                issues.append(issue(("cedar", "policies", index), f"the proxy cannot evaluate this policy: {problem}"))
    if issues:
        return None, issues
    return AuthzDocument(tuple(policies), str(entities), source, origins), []


def _json_list(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


def _problems(result: object) -> list[str]:
    """`unsupported` answers `[(line, col, message), ...]` (1-based, inside the policy text), empty when fine."""
    if not result:
        return []
    if isinstance(result, str):
        return [result]
    problems = []
    for item in result if isinstance(result, Iterable) else [result]:
        if isinstance(item, tuple) and len(item) == 3:
            line, col, message = item
            problems.append(f"{message} (line {line}, column {col} of the policy)")
        elif item:
            problems.append(str(item))
    return problems


def cedar_checker() -> Callable[[str], object] | None:
    """The proxy's `unsupported(policy_text)`, the one judge of what its Cedar subset evaluates (the proxy package
    is standard-library only, so importing it on the host is cheap); None if this build has no evaluator."""
    try:
        module = importlib.import_module(CEDAR_CHECKER)
    except ImportError:
        return None
    checker = getattr(module, "unsupported", None)
    return checker if callable(checker) else None
