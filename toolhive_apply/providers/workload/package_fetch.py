"""A private index's packages, fetched on the HOST with its credentials, for a build that then runs offline.

Why on the host: Docker 20.10's classic builder has no build secrets (docker-py's build() has no `secrets`
parameter, and there is no BuildKit session), and everything a build is given (ARG, ENV, a RUN's arguments, a file
in the context of any layer) is stored in the image or its history. A credential therefore must never meet the
build at all. So for `settings.packages.index_auth` the host runs its own pip (`pip download`, wheels only, the
whole closure) against the index with the credentials, into a private temporary directory, and the build installs
from that directory exactly as it installs from `settings.packages.offline_dir`: `--no-index --find-links`, with
no network. The context, the Dockerfile, every layer, the history and the labels hold wheels and names only.

Where the credential goes: into the pip subprocess's environment (`PIP_INDEX_URL`), never onto a command line
(a command line is visible to every user of the host in /proc and is what a failure would print). The child's
environment is the host's minus every other `PIP_*` setting and with config files off (`PIP_CONFIG_FILE` set to
the null device): the user's extra indexes or find-links would otherwise mix another source into a private
closure (dependency confusion), and a keyring or a prompt could hang an unattended apply. The CA bundle
(`PIP_CERT`) and the timeout are kept: they say how to reach the index, not what to take from it. With
`settings.packages.ca_bundles.uvx` the bundle is `--cert`, and REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE are dropped:
requests (inside pip) lets either variable override the session's `--cert`, so a host that sets them for its own
CAs would otherwise verify the private index against the wrong bundle.

What a failure shows: pip's last lines, scrubbed (the value is registered with redact.py, and any URL with user
info is masked by urls.mask_url), so neither the token nor a URL embedding it reaches an error, a log or a plan.

Limitation, by design: wheels are selected for the host's interpreter and platform. Pure-Python closures (most MCP
servers) install anywhere; a closure with compiled wheels needs a host of the builder's Python version and
platform, and a wrong one fails the offline install with pip's "no matching distribution" lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlsplit, urlunsplit

from toolhive_apply.redact import SecretValue, redact
from toolhive_apply.urls import mask_url

if TYPE_CHECKING:
    from toolhive_apply.providers.workload.package_build_model import PackageBuild

FETCH_TIMEOUT: Final = 600
TAIL_LINES: Final = 15
_KEPT_PIP_ENV: Final = frozenset({"PIP_CERT", "PIP_DEFAULT_TIMEOUT"})
_OVERRIDING_CA_ENV: Final = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_URL: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


class PackageFetchError(Exception):
    """The download failed; the message is scrubbed of the credential."""


def credentialed_url(index_url: str, username: str | None, password: SecretValue) -> str:
    """`index_url` with `username:password@` (each percent-encoded, so ':' '@' '/' in a token stay data)."""
    parts = urlsplit(index_url)
    user = quote(username or "", safe="")
    netloc = f"{user}:{quote(password.reveal(), safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _child_env(index: str, ca_bundle: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in _KEPT_PIP_ENV}
    if ca_bundle is not None:  # --cert decides, not the host's requests variables (see the module docstring)
        for name in _OVERRIDING_CA_ENV:
            env.pop(name, None)
    env.update(
        PIP_INDEX_URL=index,
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INPUT="1",
        PIP_KEYRING_PROVIDER="disabled",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",  # a private index's wheels are not left in the user's pip cache
        PIP_NO_COLOR="1",
    )
    return env


def scrub_output(text: str) -> str:
    """pip's output made safe to show: registered secrets removed, then every URL's user info masked."""
    return _URL.sub(lambda m: mask_url(m.group(0)), redact(text))


def fetch_closure(build: PackageBuild, password: SecretValue, dest: Path) -> None:
    """Download the wheels of the package (and build_with) and their dependencies from the private index into
    `dest`; PackageFetchError with pip's scrubbed last lines."""
    assert build.index_url is not None
    requirements = [build.install_ref.requirement, *build.build_with]
    command = [sys.executable, "-m", "pip", "download", "--only-binary", ":all:", "--dest", str(dest)]
    if build.ca_bundle is not None:  # settings.packages.ca_bundles.uvx: the private index's CA (a path, no secret)
        command += ["--cert", build.ca_bundle]
    env = _child_env(credentialed_url(build.index_url, build.index_user, password), build.ca_bundle)
    run_fetcher([*command, "--", *requirements], env, "pip download", lambda why, out: _message(build, why, out))


def run_fetcher(
    argv: list[str], env: dict[str, str], what: str, message: Callable[[str, str], str], cwd: Path | None = None
) -> None:
    """Run a host-side package fetcher (pip, npm) with the credential in `env` only: no stdin, bounded in time; a
    failure raises PackageFetchError with `message(reason, output)`, which scrubs the fetcher's output."""
    try:
        done = subprocess.run(
            argv,
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=FETCH_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PackageFetchError(message(f"{what} took longer than {FETCH_TIMEOUT}s", "")) from None
    except OSError as exc:
        raise PackageFetchError(message(f"could not run {what.split()[0]}: {exc.strerror}", "")) from None
    if done.returncode != 0:
        raise PackageFetchError(message(f"{what} exited {done.returncode}", done.stdout + done.stderr))


def _message(build: PackageBuild, reason: str, output: str) -> str:
    hint = ""
    if "from versions: none" in output and not untrusted(output):  # pip says so of a refused login (401) too
        hint = f" (the index listed no versions: check the package name, or the username and {build.index_secret}"
        hint += "'s value, which pip does not report as refused)"
    return failure_message(build, "downloading", reason + hint, "pip", output)


_UNTRUSTED: Final = (
    "CERTIFICATE_VERIFY_FAILED",
    "SELF_SIGNED_CERT_IN_CHAIN",
    "UNABLE_TO_GET_ISSUER_CERT",
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "x509:",
)
"""How pip (OpenSSL), npm (Node) and go (crypto/x509) say an index's certificate chain is not trusted."""


def untrusted(output: str) -> bool:
    """The fetcher could not verify the index's certificate (no index page was read at all)."""
    return any(mark in output for mark in _UNTRUSTED)


def failure_message(build: PackageBuild, verb: str, reason: str, tool: str, output: str) -> str:
    """The one shape of a host-side fetch's failure: the package, the index's URL masked, why, a hint when the
    index's certificate is not trusted, and the fetcher's last lines, scrubbed of every registered secret."""
    lines = [line for line in scrub_output(output).splitlines() if line.strip()][-TAIL_LINES:]
    where = mask_url(build.index_url or "")
    text = f"{verb} {build.ref.text} from {where} (settings.packages.index_auth) failed: {reason}"
    if untrusted(output):
        setting = f"settings.packages.ca_bundles.{build.scheme}"
        text += (
            f" (the index's TLS certificate is not trusted by {setting})"
            if build.ca_bundle
            else f" (the index's TLS certificate is not trusted: set {setting} to the CA bundle that signed it)"
        )
    return text + (f"\n{tool} output:\n" + "\n".join(lines) if lines else "")
