"""A Node builder/runtime image made from the host's `node` and `npm`, and an npm cache of a real MCP server.

No registry is reachable, so ToolHive's node:24-alpine cannot be pulled. This image is the host's node binary
(and the libraries `ldd` reports for it), the host's npm installation, /bin/sh (npx runs a package's bin through
it) and /usr/bin/env (a bin's `#!/usr/bin/env node`), imported with `docker import`: one image, used as both the
builder and the runtime of `npx://` workloads, as ToolHive's template does with node:24-alpine.

The offline source is an npm cache directory (`OFFLINE/npm-cache`, what the generated Dockerfile hands to
`npm install --offline --cache`), filled on the host by one `npm install` of the server from the npm registry:
packuments and tarballs of the whole closure, once.

Kept out of build_images.py on purpose (its bytes are the shared images' recipe hash).
Usage: ``python tests/images/node_image.py`` (idempotent).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import docker
import docker.errors

if __package__ in (None, ""):  # run as a script: make `tests.images` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.images.build_images import _LDD_PATH, _import_rootfs, _replicate_host_path, cache_dir, locked

NODE_TAG = "toolhive-apply-test/node:latest"
RECIPE_LABEL = "toolhive-apply-test.node-recipe"
NPM_SERVER = "@modelcontextprotocol/server-sequential-thinking"
NPM_SERVER_VERSIONS = ("2026.8.31", "2026.7.4")
"""Two releases of a real stdio MCP server from the npm registry, pure JavaScript (no install scripts), tool
`sequentialthinking`: the first is the one run, the second the version change."""
CHANGES = (
    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    "ENV LANG=C.UTF-8",
    "WORKDIR /",
    'CMD ["node"]',
)


def host_node() -> Path | None:
    """The host's node binary, or None when there is none (the npx tests skip)."""
    found = shutil.which("node")
    return Path(found).resolve() if found else None


def _npm_root() -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("node is installed but npm is not")
    return Path(npm).resolve().parents[1]  # .../node_modules/npm/bin/npm-cli.js -> .../node_modules/npm


def _recipe(node: Path) -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True, check=True).stdout
    npm_version = (_npm_root() / "package.json").read_bytes()
    digest.update(f"{node}|{version}".encode() + hashlib.sha256(npm_version).digest())
    return digest.hexdigest()


def _with_libraries(root: Path, binaries: list[str]) -> None:
    """Copy each binary and every library `ldd` reports for it to the same path under `root`."""
    for binary in binaries:
        _replicate_host_path(binary, root)
        listing = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
        for line in listing.splitlines():
            if "not found" in line:
                raise RuntimeError(f"{binary}: missing shared library: {line.strip()}")
            if match := _LDD_PATH.search(line):
                _replicate_host_path(match.group(1), root)


def _assemble(root: Path, node: Path) -> None:
    _with_libraries(root, [str(node), os.path.realpath("/bin/sh"), os.path.realpath("/usr/bin/env")])
    usr_bin = root / "usr" / "bin"
    usr_bin.mkdir(parents=True, exist_ok=True)
    for name, target in (("node", str(node)), ("sh", os.path.realpath("/bin/sh")), ("env", "/usr/bin/env")):
        link = usr_bin / name
        if not link.exists() and not link.is_symlink() and f"/usr/bin/{name}" != target:
            link.symlink_to(target)
    if not (root / "bin").exists():
        (root / "bin").symlink_to("usr/bin")
    npm = root / "usr" / "lib" / "node_modules" / "npm"
    shutil.copytree(_npm_root(), npm, symlinks=True)
    for name in ("npm", "npx"):
        (usr_bin / name).symlink_to(f"../lib/node_modules/npm/bin/{name}-cli.js")
    for directory, mode in (("tmp", 0o1777), ("root", 0o700)):
        (root / directory).mkdir(exist_ok=True)
        (root / directory).chmod(mode)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")


def ensure_node_image() -> str:
    """The Node image's id; assembled from the host and imported when missing or stale. Needs a host node."""
    node = host_node()
    if node is None:
        raise RuntimeError("the host has no node")
    recipe = _recipe(node)
    client: Any = docker.from_env(timeout=600)
    try:
        with locked(cache_dir()):
            try:
                image = client.images.get(NODE_TAG)
                if image.labels.get(RECIPE_LABEL) == recipe:
                    return str(image.id)
            except docker.errors.ImageNotFound:
                pass
            work = Path(tempfile.mkdtemp(prefix="node-rootfs-", dir=cache_dir()))
            try:
                work.chmod(0o755)
                _assemble(work, node)
                built = _import_rootfs(client, work, NODE_TAG, [*CHANGES, f"LABEL {RECIPE_LABEL}={recipe}"])
                return str(built.id)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        client.close()


def ensure_npm_offline(name: str = NPM_SERVER, versions: tuple[str, ...] = NPM_SERVER_VERSIONS) -> Path:
    """An offline_dir whose `npm-cache/` holds `name@version` of each version and its closure, filled once."""
    key = hashlib.sha256(f"{name}@{versions}|{(_npm_root() / 'package.json').read_bytes()!r}".encode()).hexdigest()
    target = cache_dir() / f"npm-offline-{key[:16]}"
    if target.is_dir():
        return target
    with locked(cache_dir()):
        if target.is_dir():
            return target
        staging = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="npm-offline-"))
        try:
            for version in versions:  # one install each: the releases' closures differ
                command = [
                    "npm", "install", "--prefix", str(staging / version), "--cache", str(staging / "out" / "npm-cache"),
                    "--omit=dev", "--no-audit", "--no-fund", "--no-save", "--ignore-scripts", f"{name}@{version}",
                ]  # fmt: skip
                subprocess.run(command, check=True, capture_output=True, timeout=600)
            shutil.rmtree(staging / "out" / "npm-cache" / "_logs", ignore_errors=True)
            (staging / "out").rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(NODE_TAG, ensure_node_image())
    print(ensure_npm_offline())
