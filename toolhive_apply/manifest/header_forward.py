"""ToolHive's `header_forward` of a remote workload (`add_plaintext_headers`, `add_headers_from_secret`), as the
headers the remote proxy already adds.

A plaintext header is stored in the spec (and so in a container label) in clear, which is what "plaintext" means;
a header whose name says it carries a credential (Authorization, Cookie, anything with token, key, secret or
password) is therefore refused there and must come from a secret, whose value reaches only the proxy's environment
(never a label, plan or log). Names are RFC 9110 tokens and values hold no control characters, so no header can
smuggle a second one into the request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from toolhive_apply.errors import ManifestIssue
from toolhive_apply.manifest.loader import format_path

if TYPE_CHECKING:  # the model builds its headers with forwarded_headers
    from toolhive_apply.manifest.model import Manifest, Workload

_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_VALUE: Final = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]{0,8192}")
_CREDENTIAL: Final = re.compile(r"authorization|cookie|token|secret|passw|api[-_]?key|(^|-)key($|-)", re.IGNORECASE)


def forwarded_headers(header_forward: Mapping[str, Any] | None) -> tuple[dict[str, str], ...]:
    """header_forward as `headers` entries: `{name, value}` for plaintext, `{name, secret}` from secrets."""
    forward = header_forward or {}
    plain = sorted((forward.get("add_plaintext_headers") or {}).items())
    secret = sorted((forward.get("add_headers_from_secret") or {}).items())
    return (
        *({"name": str(k), "value": str(v)} for k, v in plain),
        *({"name": str(k), "secret": str(v)} for k, v in secret),
    )


def _issue(w: Workload, path: tuple[str | int, ...], message: str) -> ManifestIssue:
    return ManifestIssue(w.origin, format_path(("workloads", w.index, "header_forward", *path)), message)


def header_forward_issues(manifest: Manifest) -> Iterator[ManifestIssue]:
    """Problems of each workload's header_forward, at the header they are about."""
    declared = {s.key for s in manifest.secrets}
    for w in manifest.workloads:
        forward = w.header_forward
        if not forward:
            continue
        if not w.url:
            yield _issue(w, (), "header_forward applies to remote workloads (url) only")
        for name, value in (forward.get("add_plaintext_headers") or {}).items():
            where = ("add_plaintext_headers", name)
            if not _TOKEN.fullmatch(name):
                yield _issue(w, where, f"{name!r} is not an HTTP header name")
            elif _CREDENTIAL.search(name):
                yield _issue(
                    w,
                    where,
                    f"{name} looks like a credential, and plaintext headers are stored in clear: use "
                    "add_headers_from_secret",
                )
            elif not _VALUE.fullmatch(str(value)):
                yield _issue(w, where, "a header value may not hold control characters (CR, LF, NUL...)")
        for name, secret in (forward.get("add_headers_from_secret") or {}).items():
            where = ("add_headers_from_secret", name)
            if not _TOKEN.fullmatch(name):
                yield _issue(w, where, f"{name!r} is not an HTTP header name")
            elif secret not in declared:
                yield _issue(w, where, f"unknown secret {secret!r}: declare it under secrets")
