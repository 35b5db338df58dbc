"""index_auth for go://: the builder image's own `go` fills a module cache from the private GOPROXY, the build
installs offline.

The same design as package_fetch.py (read its docstring for why a credential must never meet a Docker 20.10
build), with one difference: the host has no Go. So the fetch runs Go itself, in a throwaway container of the
build's BUILDER IMAGE (a container, not a build: nothing it does becomes a layer), on the host's network as the
host-side pip and npm do. Its GOMODCACHE is a bind mount of a private host directory; when `go` is done, the
cache's `cache/download` tree (the module proxy layout Go documents for GOPROXY=file://) becomes the `goproxy/`
directory of the build context, and the build installs from it as from `settings.packages.offline_dir`'s
`goproxy/`: GOPROXY=file://, GOSUMDB=off, no network. The context, the Dockerfile, every layer, the history and
the labels hold module zips, go.mod files and version lists only (not even the proxy's URL).

The command is `go install -n MODULE@VERSION`: the same module loading as the build's `go install` (every module
of the package's import graph and every go.mod of its pruned module graph is downloaded and verified before any
compile step), with the compile and link steps printed instead of run, so the fetch costs the download only.

Where the credential goes: into one netrc line, `machine HOST[:PORT]/PATH login USER password SECRET`, in a 0600
file of a private 0700 host directory (unlinked once the container started), bind-mounted READ-ONLY and named by
NETRC, with GOAUTH=netrc (Go's default, set so an image's GOAUTH command cannot run instead). Never an environment
variable, an argument, a label or a file of the context: `docker inspect` of the running container shows the file's
path only. Go sends netrc credentials over HTTPS only (cmd/go/internal/auth refuses anything else), to URLs under
the machine's prefix, and the machine is the proxy's own host and path, so no other server is ever sent them.

What the container may do: run `go` as the host user's uid:gid (the files it writes are the tool's to remove), on
a read-only root file system, with every capability dropped and no new privileges; everything the go command
writes is under the one writable mount (module cache, build cache, HOME, temporary files). The image's own Go
settings that would pick another source or run code are overridden: GOENV=off (no go env file),
GOPROXY=the index (no `,direct`: no VCS is reached), GONOPROXY/GOPRIVATE/GONOSUMDB/GOINSECURE empty,
GOTOOLCHAIN=local (a module's `toolchain` line must not download a Go toolchain with the credential), GOWORK=off.
The checksum database is off, as for offline_dir: the private proxy is the trusted source of what is installed
(it is the one place the private modules exist), and its operator decides what it mirrors. CGO_ENABLED, GOOS and
GOFLAGS=-trimpath are the build's, so the same files are selected. The container is removed whatever happens.

Limitation: the Docker engine must run on this machine (the module cache is a bind mount of a host directory);
with a remote engine the cache stays empty and the fetch fails saying so.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import docker
import docker.errors
import requests

from toolhive_apply.providers.docker.labels import LABEL_PACKAGE_FETCH
from toolhive_apply.providers.workload.package_context import planned_ca
from toolhive_apply.providers.workload.package_fetch import FETCH_TIMEOUT, PackageFetchError, failure_message
from toolhive_apply.redact import SecretValue, register

if TYPE_CHECKING:
    from toolhive_apply.providers.workload.package_build_model import PackageBuild

MOUNT: Final = "/toolhive-apply"
NETRC_IN_FETCH: Final = f"{MOUNT}/netrc"
CA_IN_FETCH: Final = f"{MOUNT}/index-ca.pem"
WORK_IN_FETCH: Final = f"{MOUNT}/work"
LOG_LINES: Final = 200
"""The tail of the go command's output read back on failure (its error comes last)."""


def netrc_machine(index_url: str) -> str:
    """The netrc machine Go matches a request against: `host[:port]/path` of the proxy (cmd/go/internal/auth
    strips `https://` from the request URL and tries it and each parent path)."""
    parts = urlsplit(index_url)
    return parts.netloc.rsplit("@", 1)[-1] + parts.path.rstrip("/")


def netrc_text(build: PackageBuild, password: SecretValue) -> str:
    """The netrc line of the proxy, or PackageFetchError (naming the secret, never its value) when the
    credential cannot be written as netrc's whitespace-separated fields."""
    assert build.index_url is not None
    value, user = password.reveal(), build.index_user
    if not user or any(ch.isspace() for ch in user):  # checked at validation; a saved plan is checked here
        raise PackageFetchError(_message(build, "index_auth.go needs a username without spaces (netrc's login)"))
    if not value or any(ch.isspace() for ch in value):
        reason = f"the value of {build.index_secret} is empty or holds whitespace, which a netrc file cannot carry"
        raise PackageFetchError(_message(build, reason))
    register(base64.b64encode(f"{user}:{value}".encode()).decode())  # the Authorization header, if a proxy echoes it
    return f"machine {netrc_machine(build.index_url)} login {user} password {value}\n"


def fetch_environment(build: PackageBuild, with_ca: bool) -> dict[str, str]:
    """The go command's environment in the fetch container: where to fetch from and how, and nothing secret."""
    assert build.index_url is not None
    work = WORK_IN_FETCH
    env = {
        "GOPROXY": build.index_url,
        "GOSUMDB": "off",
        "GOAUTH": "netrc",
        "NETRC": NETRC_IN_FETCH,
        "GOENV": "off",
        "GONOPROXY": "",
        "GOPRIVATE": "",
        "GONOSUMDB": "",
        "GOINSECURE": "",
        "GOTOOLCHAIN": "local",
        "GOWORK": "off",
        "GOMODCACHE": f"{work}/modcache",
        "GOCACHE": f"{work}/cache",
        "GOPATH": f"{work}/gopath",
        "GOBIN": f"{work}/bin",
        "GOTMPDIR": f"{work}/tmp",
        "HOME": f"{work}/home",
        "CGO_ENABLED": "0",
        "GOOS": "linux",
        "GO111MODULE": "on",
        "GOFLAGS": "-trimpath -modcacherw",  # -modcacherw: the host can remove the extracted sources afterwards
    }
    if with_ca:
        env["SSL_CERT_FILE"] = CA_IN_FETCH
    return env


def fetch_go_closure(api: docker.APIClient, build: PackageBuild, password: SecretValue, dest: Path) -> None:
    """Fill `dest/goproxy` with the module's closure from the private proxy; PackageFetchError with go's scrubbed
    last lines. Leaves no container and no file but `dest`'s."""
    assert build.index_url is not None
    line = netrc_text(build, password)
    ca = planned_ca(build)  # the bundle the plan hashed (ContextError otherwise, which the caller reports)
    with (
        tempfile.TemporaryDirectory(prefix="toolhive-apply-go-auth-") as private,
        tempfile.TemporaryDirectory(prefix="toolhive-apply-go-cache-") as work,
    ):
        netrc = Path(private) / "netrc"
        descriptor = os.open(netrc, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(line)
        binds: dict[str, Mapping[str, str]] = {
            str(netrc): {"bind": NETRC_IN_FETCH, "mode": "ro"},
            work: {"bind": WORK_IN_FETCH, "mode": "rw"},
        }
        if ca is not None:
            (Path(private) / "index-ca.pem").write_text(ca, encoding="ascii")
            binds[str(Path(private) / "index-ca.pem")] = {"bind": CA_IN_FETCH, "mode": "ro"}
        for directory in ("tmp", "home"):
            (Path(work) / directory).mkdir()
        _sweep_leftovers(api)
        reason, output = _run(api, build, fetch_environment(build, ca is not None), binds, netrc)
        if reason is not None:
            raise PackageFetchError(_message(build, reason, output))
        download = Path(work) / "modcache" / "cache" / "download"
        if not download.is_dir():
            reason = "go wrote no module cache here (the Docker engine must run on this machine: it is a bind mount)"
            raise PackageFetchError(_message(build, reason))
        shutil.rmtree(download / "sumdb", ignore_errors=True)  # GOSUMDB is off; nothing the build reads
        shutil.move(download, dest / "goproxy")


def _sweep_leftovers(api: docker.APIClient) -> None:
    """Remove fetch containers that exited without their run removing them (a run killed by SIGKILL): they hold
    nothing secret (the netrc was a bind mount, unlinked at start), but they are ours. Running ones may be
    another run's, and are left."""
    with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
        for leftover in api.containers(all=True, filters={"label": [LABEL_PACKAGE_FETCH], "status": ["exited"]}):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(leftover["Id"], force=True)


def _run(
    api: docker.APIClient,
    build: PackageBuild,
    env: dict[str, str],
    binds: dict[str, Mapping[str, str]],
    netrc: Path,
) -> tuple[str | None, str]:
    """Run `go install -n` in a container of the builder image; (why it failed or None, go's last lines). The
    container is removed whatever happens, an interrupt included.

    The netrc is unlinked on the host as soon as the container has started: a file bind mount holds the inode,
    so go still reads it, and a run killed during the fetch (SIGKILL: no clean-up runs) leaves no credential on
    the host's disk, only for the instant between writing the file and the start."""
    host_config = api.create_host_config(
        network_mode="host",
        binds=binds,
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
    )
    try:
        created = api.create_container(
            image=build.builder_image,
            entrypoint=["go"],
            command=["install", "-n", "--", build.install_ref.requirement],
            environment=env,
            user=f"{os.getuid()}:{os.getgid()}",
            working_dir=WORK_IN_FETCH,
            labels={LABEL_PACKAGE_FETCH: build.ref.text},
            host_config=host_config,
        )
    except docker.errors.ImageNotFound:
        return f"the builder image {build.builder_image} is not on the Docker host (nothing is pulled)", ""
    except docker.errors.APIError as error:
        return f"could not create the fetch container: {getattr(error, 'explanation', None) or error}", ""
    container = str(created["Id"])
    try:
        try:
            api.start(container)
        finally:
            netrc.unlink(missing_ok=True)
        try:
            status = api.wait(container, timeout=FETCH_TIMEOUT)
        except requests.exceptions.RequestException:
            return f"go install took longer than {FETCH_TIMEOUT}s", _logs(api, container)
        code = status.get("StatusCode")
        return (None, "") if code == 0 else (f"go install exited {code}", _logs(api, container))
    except docker.errors.APIError as error:
        return f"the fetch container failed: {getattr(error, 'explanation', None) or error}", ""
    finally:
        with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
            api.remove_container(container, force=True)


def _logs(api: docker.APIClient, container: str) -> str:
    with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
        return bytes(api.logs(container, stdout=True, stderr=True, tail=LOG_LINES)).decode("utf-8", "replace")
    return ""


def _message(build: PackageBuild, reason: str, output: str = "") -> str:
    if "401 Unauthorized" in output or "403 Forbidden" in output:
        reason += f" (the proxy refused the credential: check {build.index_secret}'s value and the username)"
    return failure_message(build, "fetching", reason, "go", output)
