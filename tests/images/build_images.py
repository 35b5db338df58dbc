"""Build the Docker images the toolhive-apply tests run, without any registry.

The test machine reaches PyPI but no container registry, so ``docker pull``
(and therefore ``FROM python:3.11-slim``) is impossible.  Instead this script
assembles a minimal root filesystem from the host's own Python interpreter
plus the shared libraries it needs, ``pip install``s pinned MCP packages into
it, and turns it into images with ``docker import``:

* ``toolhive-apply-test/python:latest``: the bare tree (Python + ``mcp``); the
  base for the other images and for a proxy image later.
* ``toolhive-apply-test/time:latest``: the stdio server ``mcp_server_time``.
* ``toolhive-apply-test/http:latest``: ``tests/images/http_server.py``, an MCP
  server speaking streamable HTTP, SSE or stdio (``MCP_TRANSPORT``).

Builds are idempotent: every image carries the label ``RECIPE_LABEL`` holding a
hash of the recipe inputs (this script, ``http_server.py``, the pins and the
host interpreter), and a matching image is left alone.  The assembled rootfs is
cached on disk under the same hash, so even a forced rebuild skips pip.

Usage: ``python tests/images/build_images.py [--force]``.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors

PYTHON_TAG = "toolhive-apply-test/python:latest"
TIME_TAG = "toolhive-apply-test/time:latest"
HTTP_TAG = "toolhive-apply-test/http:latest"

RECIPE_LABEL = "toolhive-apply-test.recipe"
"""Label holding the recipe hash; an image whose label matches is up to date."""

BASE_LABEL = "toolhive-apply-test.base"
"""Label of the derived images naming the python image id they were built on."""

# Everything pip resolved for ``mcp mcp-server-time`` when this recipe was written.
# The whole closure is pinned (not just the two top-level packages) so that a later
# upload to PyPI cannot silently change what the tests run against.
PINS: tuple[str, ...] = (
    "mcp==2.3.0",
    "mcp-server-time==2026.10.19",
    "mcp-types==2.3.0",
    "annotated-types==0.8.0",
    "anyio==4.16.0",
    "attrs==26.1.0",
    "cffi==2.1.1",
    "click==8.5.1",
    "cryptography==50.0.2",
    "h11==0.16.0",
    "httpcore2==2.16.2",
    "httpx2==2.16.2",
    "idna==3.20",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "opentelemetry-api==1.45.2",
    "pycparser==3.12",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "pyjwt==2.15.1",
    "python-multipart==0.0.34",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "sse-starlette==3.7.0",
    "starlette==1.10.0",
    "truststore==0.10.5",
    "typing-extensions==4.16.0",
    "typing-inspection==0.4.5",
    "tzdata==2026.6",
    "tzlocal==5.4.5",
    "uvicorn==0.54.0",
)

HERE = Path(__file__).resolve().parent
HTTP_SERVER_SOURCE = HERE / "http_server.py"

PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
PY_EXE = f"python{PY_VERSION}"
HOST_PREFIX = Path(sys.base_prefix)
"""The interpreter copied into the images: the one running this script (not a venv)."""

IMAGE_PREFIX = "/opt/python"
IMAGE_STDLIB = f"{IMAGE_PREFIX}/lib/python{PY_VERSION}"
IMAGE_SITE_PACKAGES = f"{IMAGE_STDLIB}/site-packages"

# Parts of the standard library no test server needs; dropping them halves the tree.
STDLIB_EXCLUDES = frozenset({"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "__pycache__"})

BASE_CHANGES: tuple[str, ...] = (
    f"ENV PATH={IMAGE_PREFIX}/bin:/usr/bin:/bin",
    f"ENV LD_LIBRARY_PATH={IMAGE_PREFIX}/lib",
    f"ENV PYTHONPATH={IMAGE_SITE_PACKAGES}",
    "ENV PYTHONUNBUFFERED=1",
    "ENV LANG=C.UTF-8",
    "WORKDIR /",
    f'CMD ["{PY_EXE}"]',
)

SITECUSTOMIZE = """\
# Installed by tests/images/build_images.py.
# As PID 1 in a container (no init process) Python ignores SIGTERM, so `docker stop`
# waits its full grace period (10 s) and then kills: the stdio servers never install a
# handler, and SIGINT cannot end them either (their stdin reader thread blocks shutdown).
# Exit at once instead. uvicorn installs its own handler while serving, shuts down
# gracefully, then re-raises the signal, which ends here (exit status 143).
import os as _os
import signal as _signal

if _os.getpid() == 1:
    _signal.signal(_signal.SIGTERM, lambda _signum, _frame: _os._exit(128 + _signal.SIGTERM))
"""

_LDD_PATH = re.compile(r"(?:=>\s*|^\s*)(/\S+)\s+\(0x[0-9a-f]+\)")
_NOT_PYTHON3 = re.compile(r"/lib2to3/tests/")
"""Deliberately invalid (Python 2) sample files in the stdlib, skipped when byte-compiling."""


def _log(message: str) -> None:
    """Print one progress line, flushed so it interleaves correctly with pytest output."""
    print(f"[images] {message}", flush=True)


def recipe_hash() -> str:
    """Hash every input that determines the images' contents.

    The host interpreter is part of the recipe because it is copied verbatim.
    """
    digest = hashlib.sha256()
    for chunk in (
        Path(__file__).resolve().read_bytes(),
        HTTP_SERVER_SOURCE.read_bytes(),
        "\n".join(PINS).encode(),
        f"{sys.version}|{HOST_PREFIX}".encode(),
    ):
        digest.update(hashlib.sha256(chunk).digest())
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where the assembled rootfs is kept between runs.

    ``$XDG_CACHE_HOME`` wins when set (the user asked for it); otherwise
    ``/var/cache`` when writable (root on CI), else ``~/.cache``.
    """
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "toolhive-apply-test"
    var_cache = Path("/var/cache")
    if os.access(var_cache, os.W_OK):
        return var_cache / "toolhive-apply-test"
    return Path.home() / ".cache" / "toolhive-apply-test"


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Serialise builds across processes (e.g. pytest-xdist workers) with a file lock."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- rootfs


def _inside(root: Path, path: str) -> Path:
    """Map an absolute in-image path onto the rootfs directory on the host."""
    return root / path.lstrip("/")


def _replicate_host_path(path: str, root: Path) -> None:
    """Copy a host file into ``root`` at the same absolute path, symlinks included.

    The dynamic loader looks libraries up by the exact paths ``ldd`` reports
    (``/lib64/ld-linux-x86-64.so.2``, ``/lib/x86_64-linux-gnu/libc.so.6``), and
    on merged-/usr Debian those go through directory symlinks (``/lib ->
    usr/lib``).  Each symlink met on the way is recreated in ``root`` and the
    walk continues at its target, so every spelling resolves inside the image.
    """
    pending = os.path.normpath(path)
    for _ in range(64):
        parts = pending.strip("/").split("/")
        current = "/"
        for index, part in enumerate(parts):
            candidate = os.path.join(current, part)
            if os.path.islink(candidate):
                target = os.readlink(candidate)
                dest = _inside(root, candidate)
                if not dest.is_symlink() and not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.symlink_to(target)
                base = target if os.path.isabs(target) else os.path.join(current, target)
                pending = os.path.normpath(os.path.join(base, *parts[index + 1 :]))
                break
            current = candidate
        else:
            dest = _inside(root, pending)
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not str(dest.parent.resolve()).startswith(str(root.resolve())):
                    raise RuntimeError(f"refusing to write {dest}: it resolves outside the rootfs")
                shutil.copy2(pending, dest)
            return
    raise RuntimeError(f"symlink loop while copying {path}")


def _stdlib_ignore(directory: str, names: list[str]) -> set[str]:
    """``copytree`` filter dropping unneeded stdlib parts (Tk needs X11 libraries too)."""
    ignored = {name for name in names if name in STDLIB_EXCLUDES or name.startswith("config-")}
    if Path(directory).name == "lib-dynload":
        ignored |= {name for name in names if name.startswith("_tkinter")}
    return ignored


def _copy_interpreter(root: Path) -> None:
    """Copy the host interpreter and trimmed stdlib to ``/opt/python`` in ``root``."""
    prefix = _inside(root, IMAGE_PREFIX)
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(HOST_PREFIX / "bin" / PY_EXE, prefix / "bin" / PY_EXE)
    for alias in ("python3", "python"):
        (prefix / "bin" / alias).symlink_to(PY_EXE)
    (prefix / "lib").mkdir()
    for library in sorted((HOST_PREFIX / "lib").glob("libpython*.so*")):
        dest = prefix / "lib" / library.name
        if library.is_symlink():
            dest.symlink_to(os.readlink(library))
        else:
            shutil.copy2(library, dest)
    shutil.copytree(
        HOST_PREFIX / "lib" / f"python{PY_VERSION}",
        prefix / "lib" / f"python{PY_VERSION}",
        ignore=_stdlib_ignore,
        symlinks=True,
    )


def _pip_install(root: Path) -> None:
    """Install the pinned packages into the image's site-packages with the host pip.

    Same interpreter version, so pip picks the right wheels; ``--only-binary``
    keeps the build free of compilers, ``--no-compile`` leaves byte-compiling to
    ``_byte_compile`` (which records in-image paths).
    """
    site = _inside(root, IMAGE_SITE_PACKAGES)
    site.mkdir(parents=True)
    command = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-input",
        "--no-warn-conflicts", "--no-warn-script-location",
        "--only-binary", ":all:", "--no-compile",
        "--target", str(site),
        *PINS,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pip install failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    # Console scripts have the host interpreter in their shebang: useless in the image.
    shutil.rmtree(site / "bin", ignore_errors=True)


def _elf_files(root: Path) -> list[Path]:
    """The interpreter, libpython and every extension module in the tree."""
    prefix = _inside(root, IMAGE_PREFIX)
    files = [prefix / "bin" / PY_EXE]
    files += [p for p in (prefix / "lib").glob("libpython*.so*") if not p.is_symlink()]
    files += sorted(p for p in prefix.rglob("*.so") if p.is_file() and not p.is_symlink())
    return files


def _copy_shared_libraries(root: Path) -> int:
    """Copy every shared library ``ldd`` reports for the tree's ELF files.

    Libraries of the host interpreter's own prefix are skipped: libpython is
    already in the image and the binary's RUNPATH (the host prefix) is
    replaced by ``LD_LIBRARY_PATH`` in the image.
    """
    needed: set[str] = set()
    for elf in _elf_files(root):
        result = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, check=False)
        for line in result.stdout.splitlines():
            if "not found" in line:
                raise RuntimeError(f"{elf}: missing shared library: {line.strip()}")
            match = _LDD_PATH.search(line)
            if match:
                needed.add(match.group(1))
    host_prefix = str(HOST_PREFIX) + "/"
    root_prefix = str(root) + "/"
    copied = 0
    for library in sorted(needed):
        if library.startswith((host_prefix, root_prefix)):
            continue
        _replicate_host_path(library, root)
        copied += 1
    return copied


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _finish_filesystem(root: Path) -> None:
    """Add the few files a process expects from a Linux system.

    ``/tmp`` for tempfile users, passwd/group so ``getpwuid`` works, a fixed
    UTC local timezone so ``mcp_server_time`` starts deterministically (zone
    data itself comes from the ``tzdata`` wheel), ``python3`` on the default
    PATH, a ``sitecustomize`` making PID 1 exit on SIGTERM (see
    ``SITECUSTOMIZE``), and the HTTP test server at ``/app/http_server.py``.
    """
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    tmp.chmod(0o1777)
    home = root / "root"
    home.mkdir(exist_ok=True)
    home.chmod(0o700)
    _write(
        root / "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    _write(root / "etc/group", "root:x:0:\nnogroup:x:65534:\n")
    _write(root / "etc/timezone", "Etc/UTC\n")
    utc = _inside(root, IMAGE_SITE_PACKAGES) / "tzdata" / "zoneinfo" / "Etc" / "UTC"
    shutil.copy2(utc, root / "etc" / "localtime")
    usr_bin = root / "usr" / "bin"
    usr_bin.mkdir(parents=True, exist_ok=True)
    for alias in ("python3", "python", PY_EXE):
        (usr_bin / alias).symlink_to(f"{IMAGE_PREFIX}/bin/{PY_EXE}")
    if not (root / "bin").is_symlink() and not (root / "bin").exists():
        (root / "bin").symlink_to("usr/bin")
    _write(_inside(root, IMAGE_SITE_PACKAGES) / "sitecustomize.py", SITECUSTOMIZE)
    app = root / "app"
    app.mkdir()
    shutil.copy2(HTTP_SERVER_SOURCE, app / "http_server.py")


def _byte_compile(root: Path) -> None:
    """Precompile all Python sources so containers do not compile on every start.

    Without ``__pycache__`` each new container spends seconds compiling the
    stdlib, pydantic and mcp before it serves; ``stripdir``/``prependdir`` make
    the recorded file names the in-image paths for readable tracebacks.
    """
    for directory in (_inside(root, IMAGE_STDLIB), root / "app"):
        ok = compileall.compile_dir(directory, quiet=1, stripdir=str(root), prependdir="/", workers=0, rx=_NOT_PYTHON3)
        if not ok:
            _log(f"warning: some files under {directory} did not byte-compile")


def _smoke_test(root: Path, chroot: str) -> None:
    """Fail early, with a clear message, if the tree cannot import its packages.

    ``chroot`` makes the tree's libraries and paths the only ones visible,
    which is what the container will see.
    """
    script = "import mcp.server.mcpserver, mcp_server_time, pydantic_core, ssl, zoneinfo; print('ok')"
    env = {
        "PATH": f"{IMAGE_PREFIX}/bin:/usr/bin:/bin",
        "LD_LIBRARY_PATH": f"{IMAGE_PREFIX}/lib",
        "PYTHONPATH": IMAGE_SITE_PACKAGES,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [chroot, str(root), PY_EXE, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0 or result.stdout.strip() != "ok":
        raise RuntimeError(f"rootfs smoke test failed:\n{result.stdout}\n{result.stderr}")


def ensure_rootfs(recipe: str, *, force: bool = False) -> Path:
    """Return the cached rootfs for ``recipe``, assembling it first if needed.

    Assembly happens in a temporary sibling directory renamed into place at the
    end, so an interrupted build never leaves a half-built tree that looks
    complete.  Trees of older recipes are deleted to bound disk use.
    """
    base = cache_dir()
    final = base / f"rootfs-{recipe[:16]}"
    if final.is_dir() and not force:
        _log(f"rootfs: reusing {final}")
        return final
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".rootfs-building-", dir=base))
    work.chmod(0o755)
    try:
        started = time.monotonic()
        _copy_interpreter(work)
        _log(f"rootfs: copied {PY_EXE} from {HOST_PREFIX} ({time.monotonic() - started:.1f}s)")
        started = time.monotonic()
        _pip_install(work)
        _log(f"rootfs: pip installed {len(PINS)} pinned packages ({time.monotonic() - started:.1f}s)")
        _finish_filesystem(work)
        started = time.monotonic()
        copied = _copy_shared_libraries(work)
        _log(f"rootfs: copied {copied} shared libraries ({time.monotonic() - started:.1f}s)")
        started = time.monotonic()
        _byte_compile(work)
        _log(f"rootfs: byte-compiled ({time.monotonic() - started:.1f}s)")
        chroot = shutil.which("chroot")
        if os.geteuid() == 0 and chroot:
            _smoke_test(work, chroot)
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for stale in base.glob("rootfs-*"):
        if stale != final:
            shutil.rmtree(stale, ignore_errors=True)
    for leftover in base.glob(".rootfs-building-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- images


def _image_or_none(client: Any, tag: str) -> Any | None:
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def _tar_chunks(stream: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """Yield a pipe in chunks: a generator makes docker-py send a chunked upload."""
    while chunk := stream.read(size):
        yield chunk


def _import_rootfs(client: Any, root: Path, tag: str, changes: list[str]) -> Any:
    """``tar -C root -c . | docker import`` through the Docker API."""
    repository, _, version = tag.rpartition(":")
    tar = subprocess.Popen(
        ["tar", "-C", str(root), "--numeric-owner", "--owner=0", "--group=0", "-cf", "-", "."],
        stdout=subprocess.PIPE,
    )
    assert tar.stdout is not None
    try:
        output = client.api.import_image(
            src=_tar_chunks(tar.stdout), repository=repository, tag=version, changes=changes, stream_src=True
        )
    finally:
        tar.stdout.close()
        tar_rc = tar.wait()
    if tar_rc != 0:
        raise RuntimeError(f"tar of {root} failed with exit code {tar_rc}")
    for line in str(output).splitlines():
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict) and message.get("error"):
                raise RuntimeError(f"docker import {tag} failed: {message['error']}")
    return client.images.get(tag)


def _build_derived(client: Any, tag: str, instructions: list[str]) -> Any:
    """Build ``tag`` on top of the python image with metadata-only instructions.

    Metadata instructions add no layer, so the three images share one copy of
    the rootfs on disk, and the legacy builder never contacts a registry for a
    base image that exists locally.
    """
    dockerfile = "\n".join([f"FROM {PYTHON_TAG}", *instructions]) + "\n"
    image, _logs = client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, pull=False, rm=True, forcerm=True
    )
    return image


def _derived_specs(recipe: str, base_id: str) -> dict[str, list[str]]:
    """The Dockerfile instructions of the images derived from the python image."""
    labels = f"LABEL {RECIPE_LABEL}={json.dumps(recipe)} {BASE_LABEL}={json.dumps(base_id)}"
    return {
        TIME_TAG: [labels, f'CMD ["{PY_EXE}", "-m", "mcp_server_time"]'],
        HTTP_TAG: [labels, "WORKDIR /app", "EXPOSE 8080", f'CMD ["{PY_EXE}", "/app/http_server.py"]'],
    }


def _current(client: Any, recipe: str) -> dict[str, str] | None:
    """Tag -> id of the three images if all are up to date with ``recipe``, else None."""
    base = _image_or_none(client, PYTHON_TAG)
    if base is None or base.labels.get(RECIPE_LABEL) != recipe:
        return None
    found = {PYTHON_TAG: str(base.id)}
    for tag in (TIME_TAG, HTTP_TAG):
        image = _image_or_none(client, tag)
        if image is None or image.labels.get(RECIPE_LABEL) != recipe or image.labels.get(BASE_LABEL) != base.id:
            return None
        found[tag] = str(image.id)
    return found


def _remove_superseded(client: Any, old_ids: list[str], keep: set[str]) -> None:
    """Delete images the rebuild untagged, so rebuilds do not pile up dangling images.

    Images still used by a container are kept (the API refuses; that is fine).
    """
    for image_id in old_ids:
        if image_id in keep:
            continue
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(image_id, noprune=False)


def ensure_images(force: bool = False) -> dict[str, str]:
    """Make sure the three test images exist for the current recipe; return tag -> image id.

    A no-op (every image labelled with the current recipe hash) only queries the
    daemon.  ``force`` rebuilds the rootfs and all images regardless.
    """
    started_all = time.monotonic()
    recipe = recipe_hash()
    client = docker.from_env(timeout=600)
    try:
        if not force and (ready := _current(client, recipe)) is not None:
            _log("all images up to date")
            return ready
        with locked(cache_dir()):
            # Another process may have finished the build while we waited for the lock.
            if not force and (ready := _current(client, recipe)) is not None:
                _log("all images up to date (built by another process)")
                return ready
            old_ids = [
                str(image.id)
                for tag in (TIME_TAG, HTTP_TAG, PYTHON_TAG)
                if (image := _image_or_none(client, tag)) is not None
            ]
            root = ensure_rootfs(recipe, force=force)
            started = time.monotonic()
            base = _image_or_none(client, PYTHON_TAG)
            if force or base is None or base.labels.get(RECIPE_LABEL) != recipe:
                changes = [*BASE_CHANGES, f"LABEL {RECIPE_LABEL}={recipe}"]
                base = _import_rootfs(client, root, PYTHON_TAG, changes)
                _log(f"imported {PYTHON_TAG} ({time.monotonic() - started:.1f}s)")
            built = {PYTHON_TAG: str(base.id)}
            for tag, instructions in _derived_specs(recipe, str(base.id)).items():
                started = time.monotonic()
                built[tag] = str(_build_derived(client, tag, instructions).id)
                _log(f"built {tag} ({time.monotonic() - started:.1f}s)")
            _remove_superseded(client, old_ids, keep=set(built.values()))
            _log(f"done in {time.monotonic() - started_all:.1f}s")
            return built
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: build (or confirm) the images and print their ids."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild the rootfs and all images")
    args = parser.parse_args(argv)
    images = ensure_images(force=args.force)
    for tag, image_id in images.items():
        print(f"{tag}  {image_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
