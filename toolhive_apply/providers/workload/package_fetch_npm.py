"""index_auth for npx://: the host's npm fills an npm cache from the private registry, the build installs offline.

The same design as package_fetch.py (read its docstring for why a credential must never meet a Docker 20.10
build): the host runs its own `npm install` against the registry with the credential, only to fill a cache
(`DEST/npm-cache`, the packuments and tarballs of the whole closure), and the build installs from that cache as
from `settings.packages.offline_dir`'s `npm-cache/`: `--offline`, no network, with the same `--registry` so the
cache's keys match. The context, the Dockerfile, every layer, the history and the labels hold tarballs, metadata and
the registry URL only.

Where the credential goes: into the npm child's ENVIRONMENT only. npm reads it through a user config file written
into a private temporary directory (0700, removed afterwards) whose line is `//HOST/PATH/:_authToken=${VAR}`: npm
substitutes the variable when it reads the file, so the file holds no secret, and neither does a command line
(visible to every user in /proc). With a username the line pair is `:username=NAME` and `:_password=${VAR}` (npm's
basic auth, the password base64-encoded; that encoding is registered with redact.py too). Every `npm_config_*`
setting of the host's environment is dropped and the global config is an empty file: another registry or scope
mapping of the user's would mix another source into a private closure. Package scripts never run
(`--ignore-scripts`): a dependency's install script would run on the host with the credential in its environment.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urljoin, urlsplit

from toolhive_apply.providers.workload.package_fetch import PackageFetchError, failure_message, run_fetcher
from toolhive_apply.redact import SecretValue, register
from toolhive_apply.urls import mask_url

if TYPE_CHECKING:
    from toolhive_apply.providers.workload.package_build_model import PackageBuild

TOKEN_ENV: Final = "TOOLHIVE_APPLY_NPM_CREDENTIAL"
_INI_UNSAFE: Final = frozenset("=;#[]\"'\\${}")


def nerf_dart(registry: str) -> str:
    """npm's key for a registry's credentials: `//host[:port]/dir/` (scheme, user info, query and last path
    segment dropped, as npm's nerf-dart does)."""
    parts = urlsplit(urljoin(registry, "."))
    return f"//{parts.netloc.rsplit('@', 1)[-1]}{parts.path or '/'}"


def user_config(registry: str, username: str | None) -> str:
    """The .npmrc text: the registry and where its credential comes from (a variable reference, never a value)."""
    key = nerf_dart(registry)
    if any(ch in _INI_UNSAFE for ch in key + registry + (username or "")):
        raise PackageFetchError(f"{mask_url(registry)}: the registry URL or username holds a character npmrc cannot")
    lines = [f"registry={registry}"]
    if username is None:
        lines.append(f"{key}:_authToken=${{{TOKEN_ENV}}}")
    else:
        lines += [f"{key}:username={username}", f"{key}:_password=${{{TOKEN_ENV}}}"]
    return "\n".join(lines) + "\n"


def _child_env(credential: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config_")}
    env[TOKEN_ENV] = credential
    return env


def fetch_npm_closure(build: PackageBuild, password: SecretValue, dest: Path) -> None:
    """Fill `dest/npm-cache` with the package's closure from the private registry; PackageFetchError with npm's
    scrubbed last lines (or, without npm on the host, a clear error)."""
    assert build.index_url is not None
    npm = shutil.which("npm")
    if npm is None:
        raise PackageFetchError(_message(build, "npm is not installed on this host (index_auth.npx runs it)", ""))
    credential = password.reveal()
    if build.index_user is not None:  # npm's _password is the base64 of the password; scrub that form as well
        credential = base64.b64encode(credential.encode()).decode()
        register(credential)
    with tempfile.TemporaryDirectory(prefix="toolhive-apply-npm-") as private:  # 0700, removed after
        home = Path(private)
        (home / "npmrc").write_text(user_config(build.index_url, build.index_user), encoding="ascii")
        (home / "global-npmrc").write_text("", encoding="ascii")
        (home / "prefix").mkdir()
        command = [npm, "install", "--userconfig", str(home / "npmrc"), "--globalconfig", str(home / "global-npmrc")]
        command += ["--cache", str(dest / "npm-cache"), "--prefix", str(home / "prefix"), "--registry", build.index_url]
        command += ["--ignore-scripts", "--omit=dev", "--no-save", "--no-audit", "--no-fund", "--no-update-notifier"]
        command += ["--logs-max", "0"]  # no npm log file in the cache, which becomes the build context
        if build.ca_bundle is not None:
            command += ["--cafile", build.ca_bundle]
        argv = [*command, "--", build.install_ref.requirement]
        message = lambda why, out: _message(build, why, out)  # noqa: E731
        run_fetcher(argv, _child_env(credential), "npm install", message, cwd=Path(home))


def _message(build: PackageBuild, reason: str, output: str) -> str:
    if "E401" in output or "E403" in output:
        reason += f" (the registry refused the credential: check {build.index_secret}'s value and the username)"
    return failure_message(build, "fetching", reason, "npm", output)
