"""A second, independent MCP client: the MCP Inspector CLI (TypeScript SDK) talking to the proxy container.

Skipped, with the reason, when Node/npm is missing or the Inspector cannot be installed (npm registry unreachable).
The package is installed once into the test cache directory and reused.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.images.build_images import cache_dir, locked
from tests.integration import test_proxy_harness as harness
from tests.integration.test_proxy_harness import ProxyStack, ready

# The shared fixtures, bound here so pytest finds them for this module.
proxy_image = harness.proxy_image
proxy_stack = harness.proxy_stack
pytestmark = [pytest.mark.docker, pytest.mark.slow]

INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"
"""Pinned, so an upload to npm cannot change what this test runs."""


@pytest.fixture(scope="session")
def inspector_cli() -> Path:
    """The Inspector's CLI entry script, installed with npm on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js/npm not installed: the MCP Inspector CLI cannot run")
    prefix = cache_dir() / "inspector-0.15.0"
    entry = prefix / "node_modules" / "@modelcontextprotocol" / "inspector" / "cli" / "build" / "cli.js"
    with locked(prefix):
        if not entry.is_file():
            done = subprocess.run(
                ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", INSPECTOR],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0 or not entry.is_file():
                pytest.skip(f"npm install {INSPECTOR} failed (is the npm registry reachable?): {done.stderr[-500:]}")
    return entry


def inspector(entry: Path, *args: str) -> dict[str, object]:
    done = subprocess.run(["node", str(entry), "--cli", *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"inspector failed ({done.returncode}): {done.stdout[-1000:]} {done.stderr[-1000:]}"
    return dict(json.loads(done.stdout))


def test_the_inspector_cli_lists_and_calls_tools_through_the_proxy(
    proxy_stack: ProxyStack, inspector_cli: Path
) -> None:
    server = proxy_stack.start_stdio_server()
    config = {
        "name": server,
        "mode": "stdio",
        "container": server,
        "tools": ["now"],
        "tools_override": {"get_current_time": {"name": "now"}},
    }
    proxy = proxy_stack.start_proxy(config, socket_access=True)
    ready(proxy, proxy_stack)
    url = proxy.url("/mcp")
    listed = inspector(inspector_cli, url, "--transport", "http", "--method", "tools/list")
    assert [tool["name"] for tool in listed["tools"]] == ["now"]  # type: ignore[attr-defined]
    called = inspector(
        inspector_cli, url, "--transport", "http", "--method", "tools/call", "--tool-name", "now",
        "--tool-arg", "timezone=UTC",
    )  # fmt: skip
    assert json.loads(called["content"][0]["text"])["timezone"] == "UTC"  # type: ignore[index]
