"""Images for `uvx://`, `npx://` and `go://` workloads: a generated two-stage Dockerfile, built on the Docker host.

The build is described by a frozen PackageBuild (what the package manager installs, from where, on which builder and
runtime images), hashed together with the Dockerfile text it renders to; the image is named and labelled by that
hash, so an image that exists is reused and any change of input (a version, a base image's id, a file in the
offline directory, this template) is a different image and therefore a planned replace.

Safety of the generated text, by construction rather than quoting: every RUN is exec form (a JSON array written
by json.dumps, never a shell), so no user text meets a shell; package names and versions passed to the package
manager were parsed by manifest/package_refs.py and follow `--`, so none is an option; the only user text outside
a JSON array is a runtime_env value, checked to hold no quote, `$`, backslash or control character, and the
base image references, checked against Docker's grammar. Nothing secret is ever an input: Docker 20.10's classic
builder has no build secrets (docker-py's build has no `secrets` parameter, nor the gRPC session BuildKit needs),
and every ARG/ENV/RUN argument is stored in the image's history, so credentialed index URLs are refused at
validation (see manifest/package_checks.py). A private index is reached from the HOST instead: with
`settings.packages.index_auth` the host downloads the closure with the credential (package_fetch.py for pip,
package_fetch_npm.py for npm, package_fetch_go.py for go, run in a throwaway container of the builder image) into a
temporary directory, and the build installs from it as from offline_dir, with no network. The build records the
secret's NAME and the username, never the value nor a digest of it: the credential decides whether the download is
allowed, not what it contains (the ref, index URL and template do), so rotating a token rebuilds nothing.

A failed build removes the intermediate images it made (their ids are in the build's own output) and leaves no
container behind (forcerm), so the next apply starts clean. Builds run at most PARALLEL_BUILDS at a time, and two
workloads of the same image build it once.
"""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import docker.errors

from toolhive_apply.manifest.package_refs import PackageRef, PackageRefError, parse_package_ref
from toolhive_apply.providers.docker.labels import LABEL_BUILD, LABEL_PACKAGE, LABEL_RESOLVED
from toolhive_apply.providers.workload.package_build_model import PackageBuild
from toolhive_apply.providers.workload.package_context import ContextError, add_file, build_context, planned_ca
from toolhive_apply.providers.workload.package_dockerfiles import installed_version, reports_installed
from toolhive_apply.providers.workload.package_fetch import PackageFetchError, fetch_closure
from toolhive_apply.providers.workload.package_fetch_go import fetch_go_closure
from toolhive_apply.providers.workload.package_fetch_npm import fetch_npm_closure
from toolhive_apply.redact import SecretValue

PARALLEL_BUILDS: Final = 2
TAIL_LINES: Final = 15


class PackageBuildError(Exception):
    """A build failed; the message carries the build's last lines."""


SecretLookup = Callable[[str], SecretValue]

_SLOTS = threading.BoundedSemaphore(PARALLEL_BUILDS)
_TAG_LOCKS: dict[str, threading.Lock] = {}
_TAG_LOCKS_GUARD = threading.Lock()
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_STEP_ID = re.compile(r"^ ---> ([0-9a-f]{12,64})\s*$")


@contextlib.contextmanager
def _exclusive(tag: str) -> Iterator[None]:
    """One build per image at a time (two workloads of one package build it once), PARALLEL_BUILDS in all."""
    with _TAG_LOCKS_GUARD:
        lock = _TAG_LOCKS.setdefault(tag, threading.Lock())
    with lock, _SLOTS:
        yield


def ensure_package_image(
    api: docker.APIClient, build: PackageBuild, progress: Any = None, secret: SecretLookup | None = None
) -> str:
    """The id of the image of `build`, built when the engine lacks it; PackageBuildError with the last lines.
    `secret` reads a secret's value by name (for index_auth: the password, used on the host only)."""
    tag = build.tag
    with _exclusive(tag):
        found = _image_id(api, tag)
        if found is not None:
            return found
        if build.index_secret is None:
            return _build_new(api, build, progress, None)
        if secret is None:
            raise PackageBuildError(f"building {build.ref.text} needs the secret {build.index_secret!r}: no store")
        with tempfile.TemporaryDirectory(prefix="toolhive-apply-index-") as fetched:  # 0700, removed after
            try:
                planned_ca(build)  # pip --cert reads the bundle the plan hashed, or nothing is fetched
                password = secret(build.index_secret)
                if build.scheme == "go":  # the host has no Go: the builder image's go fetches, in a container
                    fetch_go_closure(api, build, password, Path(fetched))
                else:
                    (fetch_npm_closure if build.scheme == "npx" else fetch_closure)(build, password, Path(fetched))
            except (PackageFetchError, ContextError) as exc:
                raise PackageBuildError(str(exc)) from None
            return _build_new(api, build, progress, Path(fetched))


def _build_new(api: docker.APIClient, build: PackageBuild, progress: Any, fetched: Path | None) -> str:
    """Build `build` (its tag is not on the engine); clean up and raise PackageBuildError when that fails."""
    output: list[str] = []
    made: list[str] = []
    installed: list[str] = []
    try:
        problem = _stream_build(api, build, output, made, progress, installed, fetched)
    except docker.errors.APIError as error:
        problem = str(getattr(error, "explanation", None) or error)
    except ContextError as error:
        problem = str(error)
    image = _image_id(api, build.tag) if problem is None else None
    if image is None:
        _cleanup(api, made)
        raise PackageBuildError(_failure(build, problem or "the build ended without producing the image", output))
    version = next((v for line in reversed(installed) if (v := _exact_version(build, line))), None)
    if version is not None:
        image = _label_installed(api, build, version) or image
    return image


def _exact_version(build: PackageBuild, reported: str) -> str | None:
    """A reported version, used only if it parses by the ecosystem's rule as one exact version (normalised)."""
    try:
        ref = parse_package_ref(PackageRef(build.scheme, build.name, reported).text)
    except PackageRefError:
        return None
    return ref.version if ref.pinned and ref.name == build.name else None


def _label_installed(api: docker.APIClient, build: PackageBuild, version: str) -> str | None:
    """Re-tag the built image with the version it installed (a metadata-only child: no layer, no network); None
    when that fails, which leaves the image as built (a missing label only means the plan cannot name it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        add_file(archive, "Dockerfile", f"FROM {build.tag}\n".encode())
    labels = {**build_labels(build), LABEL_RESOLVED: version}
    try:
        for chunk in api.build(
            fileobj=io.BytesIO(buffer.getvalue()),
            custom_context=True,
            tag=build.tag,
            labels=labels,
            network_mode="none",
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "error" in chunk:
                return None
    except docker.errors.APIError:
        return None
    return _image_id(api, build.tag)


def build_labels(build: PackageBuild) -> dict[str, str]:
    """The built image's labels: its hash, the ref as written, and (unpinned) the version it installed."""
    labels = {LABEL_BUILD: build.digest, LABEL_PACKAGE: build.ref.text}
    if build.resolved is not None:
        labels[LABEL_RESOLVED] = build.resolved
    return labels


def _stream_build(
    api: docker.APIClient,
    build: PackageBuild,
    output: list[str],
    made: list[str],
    progress: Any,
    installed: list[str],
    fetched: Path | None = None,
) -> str | None:
    """Run the build, collecting its output's tail, the intermediate images it makes and the versions it reports
    installing (package_dockerfiles._report); the error text, if any."""
    reporting = reports_installed(build)
    for chunk in api.build(
        fileobj=io.BytesIO(build_context(build, fetched)),
        custom_context=True,
        tag=build.tag,
        labels=build_labels(build),
        network_mode="none" if build.installs_offline else None,
        pull=False,
        rm=True,
        forcerm=True,
        decode=True,
    ):
        if "error" in chunk:
            return str(chunk["error"])
        for line in str(chunk.get("stream", "")).splitlines():
            _note(line, output, made)
            if reporting and (version := installed_version(build, line)):
                installed.append(version)
            if progress is not None and line.startswith("Step "):
                progress(line.strip())
    return None


def _note(line: str, output: list[str], made: list[str]) -> None:
    """Keep the output's tail, and the ids of the intermediate images this build made: an id right after
    "Removing intermediate container" is new (after a FROM step it is a base image, after "Using cache" a reused
    one, and neither is ours to remove)."""
    line = _CONTROL.sub("", _ANSI.sub("", line))  # a package manager's output is untrusted terminal text
    match = _STEP_ID.match(line)
    if match and output and output[-1].startswith("Removing intermediate container"):
        made.append(match.group(1))
    output.append(line)
    del output[: -TAIL_LINES * 4]


def _cleanup(api: docker.APIClient, images: list[str]) -> None:
    """Remove the intermediate images of a failed build, newest first (each a child of the one before)."""
    for image in reversed(images):
        with contextlib.suppress(docker.errors.APIError):
            api.remove_image(image, noprune=False)


def _image_id(api: docker.APIClient, ref: str) -> str | None:
    try:
        return str(api.inspect_image(ref)["Id"])
    except docker.errors.ImageNotFound:
        return None


def _failure(build: PackageBuild, reason: str, output: list[str]) -> str:
    noise = ("Removing intermediate container", " ---> ")  # the builder's bookkeeping, not the tool's words
    tail = "\n".join(line for line in output if line.strip() and not line.startswith(noise))
    tail = "\n".join(tail.splitlines()[-TAIL_LINES:])
    hint = ""
    if "pull access" in reason or ("not found" in reason and build.builder_image in reason):
        hint = " (the builder and runtime images must be on the Docker host: nothing is pulled)"
    return f"building {build.ref.text} failed: {reason.strip()}{hint}" + (
        f"\nlast build output:\n{tail}" if tail else ""
    )
