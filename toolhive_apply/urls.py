"""The one way a URL is shown to a person: credentials (`user:pass@`) and query or fragment values masked.

A registry or Vault URL may carry a token in its userinfo or query string; any URL that reaches an error, a
warning, a plan, a label or an export goes through `mask_url` first. Paths are kept: they say which document
was meant, and masking them would make every message useless.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import SplitResult, urlsplit, urlunsplit

MASK: Final = "***"
_USERINFO: Final = re.compile(r"(//)[^/?#]*@")


def mask_url(url: str) -> str:
    """`url` with userinfo replaced by `***` and every query/fragment value by `***` (names are kept)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a malformed port raises here, and the crude masking below then applies
    except ValueError:
        return _crude(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    return urlunsplit(
        SplitResult(parts.scheme, netloc, parts.path, _mask_pairs(parts.query), _mask_pairs(parts.fragment))
    )


def has_credentials(url: str) -> bool:
    """Whether masking hides anything: userinfo, or a query or fragment."""
    return mask_url(url) != url or MASK in url


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of `url` without userinfo, for naming where a redirect pointed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "an unparseable address"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "an address that is not http(s)"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _mask_pairs(text: str) -> str:
    if not text:
        return text
    masked = []
    for pair in text.split("&"):
        name, equals, _ = pair.partition("=")
        masked.append(f"{name}={MASK}" if equals else MASK)
    return "&".join(masked)


def _crude(url: str) -> str:
    """For a URL urlsplit cannot take apart: drop everything that could be a credential."""
    head = _USERINFO.sub(rf"\1{MASK}@", url, count=1)
    for mark in ("?", "#"):
        if mark in head:
            head = head.split(mark, 1)[0] + mark + MASK
    return head
