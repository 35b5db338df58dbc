"""The Dockerfile templates of package images, one per scheme (ToolHive's pkg/container/templates, offline-aware).

Every RUN is exec form (a JSON array written by json.dumps, never a shell); the safety argument for the text that
reaches these lines is in package_images.py, whose PackageBuild hashes what render() returns.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from toolhive_apply.providers.workload.package_build_model import PackageBuild

TEMPLATE_VERSION: Final = "1"
"""Part of every build's hash: changing these templates' output for existing builds means bumping it."""
RUN_AS: Final = "65534:65534"
"""nobody, by number: every base image can run it, whatever its /etc/passwd holds."""
OFFLINE_IN_BUILD: Final = "/offline"
INSTALLED_MARKER: Final = "toolhive-apply-installed-version:"
"""Printed by the builder before the version it installed, when nothing on the host could resolve it."""
_GO_MOD_LINE: Final = re.compile(r"^\s*mod\s+\S+\s+(v\S+)")
CA_IN_CONTEXT: Final = "index-ca.pem"
CA_IN_BUILD: Final = "/toolhive-apply/index-ca.pem"
"""settings.packages.ca_bundles' file, in the builder stage only: no runtime stage copies it, so the image that runs
holds nothing of it (the builder's layers are not part of the tagged image)."""


def render(build: PackageBuild) -> str:
    """The Dockerfile text of `build`."""
    return {"uvx": _uvx_dockerfile, "npx": _npx_dockerfile, "go": _go_dockerfile}[build.scheme](build)


def _run(*argv: str) -> str:
    """An exec-form RUN: a JSON array the builder executes without a shell."""
    return "RUN " + json.dumps(list(argv))


def _env(pairs: tuple[tuple[str, str], ...]) -> list[str]:
    """runtime_env, whose values were checked to hold nothing ENV would interpret (quote, $, backslash)."""
    return [f'ENV {key}="{value}"' for key, value in pairs]


def reports_installed(build: PackageBuild) -> bool:
    """Unpinned and not resolved on the host (a network index): the build says what it installed."""
    return not build.ref.pinned and build.resolved is None


def _report(build: PackageBuild) -> list[str]:
    """The builder's last step for such a build: print the installed version (names as arguments, never code)."""
    if not reports_installed(build):
        return []
    if build.scheme == "uvx":
        code = "import importlib.metadata as m, sys; print(sys.argv[1] + m.version(sys.argv[2]))"
        return [_run("/opt/mcp/bin/python", "-c", code, INSTALLED_MARKER, build.name)]
    if build.scheme == "npx":
        code = "const [mark, manifest] = process.argv.slice(1); console.log(mark + require(manifest).version)"
        return [_run("node", "-e", code, INSTALLED_MARKER, f"/build/node_modules/{build.name}/package.json")]
    return [_run("go", "version", "-m", f"/app/bin/{build.ref.executable}")]


def installed_version(build: PackageBuild, line: str) -> str | None:
    """The version a build line reports (see _report), else None."""
    if build.scheme == "go":
        match = _GO_MOD_LINE.match(line)
        return match.group(1) if match else None
    text = line.strip()
    return text.removeprefix(INSTALLED_MARKER).strip() or None if text.startswith(INSTALLED_MARKER) else None


def _offline_copy(build: PackageBuild) -> list[str]:
    return [f"COPY offline/ {OFFLINE_IN_BUILD}/"] if build.installs_offline else []


def uses_ca(build: PackageBuild) -> bool:
    """The build's installer reaches an index and has a CA bundle for it (an offline build reaches nothing)."""
    return build.ca_bundle is not None and not build.installs_offline


def _ca_copy(build: PackageBuild) -> list[str]:
    return [f"COPY {CA_IN_CONTEXT} {CA_IN_BUILD}"] if uses_ca(build) else []


def _uvx_dockerfile(build: PackageBuild) -> str:
    """A venv in the builder, pip installs the package (and build_with) into it, the runtime gets the venv.

    PYTHONPATH is emptied (CPython ignores an empty one) so the venv alone decides what is imported. A private
    index (index_auth) was fetched on the host into the context: the Dockerfile names neither it nor its URL."""
    sources = ["--no-index", "--find-links", OFFLINE_IN_BUILD] if build.installs_offline else []
    if build.index_url and not build.installs_offline:
        sources = ["--index-url", build.index_url]
    if uses_ca(build):
        sources += ["--cert", CA_IN_BUILD]
    lines = [
        f"FROM {build.builder_image} AS builder",
        "ENV PYTHONPATH= PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1 PIP_NO_COLOR=1",
        *_offline_copy(build),
        *_ca_copy(build),
        _run("python3", "-m", "venv", "--without-pip", "/opt/mcp"),
        _run(
            "python3",
            "-m",
            "pip",
            "--python",
            "/opt/mcp/bin/python",
            "install",
            "--no-warn-script-location",
            *sources,
            "--",
            build.install_ref.requirement,
            *build.build_with,
        ),
        *_report(build),
        f"FROM {build.runtime_image}",
        "COPY --from=builder /opt/mcp /opt/mcp",
        "ENV PYTHONPATH= PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/mcp/bin:$PATH",
        *_env(build.runtime_env),
        f"USER {RUN_AS}",
        "ENTRYPOINT " + json.dumps([f"/opt/mcp/bin/{build.ref.executable}"]),
    ]
    return "\n".join(lines) + "\n"


def _npx_dockerfile(build: PackageBuild) -> str:
    """npm installs the package into /build/node_modules; the runtime runs it with npx, as ToolHive's template.

    Offline, npm reads only the cache directory `npm-cache/` of offline_dir (filled on a connected machine with
    `npm install --cache DIR/npm-cache PKG@VER`, which stores the packuments and tarballs of the whole closure), or
    the cache the host filled from a private registry (index_auth, package_fetch_npm.py)."""
    sources = ["--offline", "--cache", f"{OFFLINE_IN_BUILD}/npm-cache"] if build.installs_offline else []
    if build.index_url and not build.offline_dir:  # index_auth's cache, made on the host, is keyed by this URL
        sources += ["--registry", build.index_url]
    if uses_ca(build):  # npm's cafile replaces its trusted CAs for this install's registry connections only
        sources += ["--cafile", CA_IN_BUILD]
    lines = [
        f"FROM {build.builder_image} AS builder",
        "ENV NODE_ENV=production NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false NPM_CONFIG_UPDATE_NOTIFIER=false",
        "WORKDIR /build",
        *_offline_copy(build),
        *_ca_copy(build),
        _run("npm", "install", "--omit=dev", "--no-save", *sources, "--", build.install_ref.requirement),
        *_report(build),
        f"FROM {build.runtime_image}",
        "WORKDIR /app",
        "COPY --from=builder /build/node_modules /app/node_modules",
        "ENV NODE_ENV=production NODE_PATH=/app/node_modules npm_config_cache=/tmp/.npm",
        "ENV PATH=/app/node_modules/.bin:$PATH",
        *_env(build.runtime_env),
        f"USER {RUN_AS}",
        "ENTRYPOINT " + json.dumps(["npx", "--offline", build.name]),
    ]
    return "\n".join(lines) + "\n"


def _go_dockerfile(build: PackageBuild) -> str:
    """`go install MODULE@VERSION` into /app/bin (static, CGO off); the runtime gets the binary alone.

    Offline, GOPROXY is the module proxy tree `goproxy/` of offline_dir (or of the module cache the builder image's
    go filled from a private proxy, index_auth) and the checksum database (unreachable) is off: the directory is the
    trusted source. The source is set by Go itself (`go env -w`, written to the builder's go env file), not by `env`
    in the RUN: a builder needs nothing but Go (no coreutils), and the index URL stays inside an exec-form array (an
    ENV line would interpret its `$`). The builder stage never reaches the runtime image. A CA bundle is
    SSL_CERT_FILE in the builder stage only (the go command is the only program there that connects; Go then trusts
    that file instead of the system's CA file, so a proxy that also serves the checksum database, as Go asks it to
    first, or GOSUMDB/GONOSUMDB set by the proxy's operator, is what a private GOPROXY needs)."""
    source = [_run("go", "env", "-w", f"GOPROXY=file://{OFFLINE_IN_BUILD}/goproxy", "GOSUMDB=off")]
    if not build.installs_offline:  # index_auth's proxy was fetched into goproxy/ (package_fetch_go.py)
        source = [_run("go", "env", "-w", f"GOPROXY={build.index_url}")] if build.index_url else []
    lines = [
        f"FROM {build.builder_image} AS builder",
        "ENV CGO_ENABLED=0 GOOS=linux GO111MODULE=on GOBIN=/app/bin GOFLAGS=-trimpath",
        *_offline_copy(build),
        *_ca_copy(build),
        *([f"ENV SSL_CERT_FILE={CA_IN_BUILD}"] if uses_ca(build) else []),
        *source,
        _run("go", "install", "--", build.install_ref.requirement),
        *_report(build),
        f"FROM {build.runtime_image}",
        "COPY --from=builder /app/bin/ /app/bin/",
        *_env(build.runtime_env),
        f"USER {RUN_AS}",
        "ENTRYPOINT " + json.dumps([f"/app/bin/{build.ref.executable}"]),
    ]
    return "\n".join(lines) + "\n"
