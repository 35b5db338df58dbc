"""THV_PROXY_CONFIG parsing: defaults, secrets from the environment, and every problem reported at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolhive_apply.proxy.config import (
    DEFAULT_ALLOWED_ORIGINS,
    DEFAULT_MAX_BODY_BYTES,
    ConfigError,
    Mode,
    ToolOverride,
    Transport,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]


def load(environ: dict[str, str] | None = None, **raw: object) -> object:
    return load_config(json.dumps(raw), environ or {})


def test_a_minimal_stdio_config_gets_toolhive_defaults() -> None:
    config = load_config(json.dumps({"name": "time", "mode": "stdio", "listen_port": 8080, "container": "time"}), {})
    assert config.mode is Mode.STDIO
    assert config.proxy_mode is Transport.STREAMABLE_HTTP
    assert config.docker_socket == "/var/run/docker.sock"
    assert config.allowed_origins == DEFAULT_ALLOWED_ORIGINS
    assert config.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert config.tools is None and config.tools_override == {}


def test_the_upstream_transport_is_inferred_from_the_url_and_is_the_proxy_mode() -> None:
    raw = {"name": "w", "mode": "http", "listen_port": 8080, "upstream_url": "http://w:8080/sse"}
    config = load_config(json.dumps(raw), {})
    assert config.upstream_transport is Transport.SSE and config.proxy_mode is Transport.SSE


def test_secret_headers_come_from_the_environment() -> None:
    raw = {
        "name": "r",
        "mode": "remote",
        "listen_port": 8080,
        "upstream_url": "https://mcp.example.com/mcp",
        "headers": {"X-Team": "blue"},
        "header_env": {"X-Api-Key": "API_KEY"},
        "bearer_token_env": "TOKEN",
    }
    config = load_config(json.dumps(raw), {"API_KEY": "k-123", "TOKEN": "t-456"})
    assert config.headers == {"X-Team": "blue", "X-Api-Key": "k-123", "Authorization": "Bearer t-456"}


def test_tool_settings_are_parsed() -> None:
    raw = {
        "name": "t",
        "mode": "stdio",
        "listen_port": 8080,
        "container": "t",
        "tools": ["now"],
        "tools_override": {"get_current_time": {"name": "now"}, "convert_time": {"description": "Convert."}},
    }
    config = load_config(json.dumps(raw), {})
    assert config.tools == frozenset({"now"})
    assert config.tools_override == {
        "get_current_time": ToolOverride(name="now"),
        "convert_time": ToolOverride(description="Convert."),
    }


def test_every_problem_is_reported_at_once_without_echoing_secret_values() -> None:
    raw = {
        "name": "",
        "mode": "http",
        "listen_port": 70000,
        "upstream_url": "ftp://x",
        "proxy_mode": "sse",
        "container": "c",
        "headers": {"Host": "x", "X-Secret": "sup3r\r\nInjected: 1"},
        "header_env": {"X-Key": "MISSING"},
        "tools_override": {"a": {}, "b": {"name": "z"}, "c": {"name": "z"}},
        "typo_key": 1,
    }
    with pytest.raises(ConfigError) as caught:
        load_config(json.dumps(raw), {})
    text = str(caught.value)
    for fragment in (
        "name: must be a non-empty string",
        "listen_port: must be an integer from 1 to 65535",
        "upstream_url: must be an absolute http:// URL",
        "container: only used in stdio mode",
        "'Host' is not a header the proxy may set",
        "the value of 'X-Secret' contains a control character",
        "environment variable MISSING is not set",
        "tools_override.a: set 'name' or 'description'",
        "several tools would be named ['z']",
        "unknown keys ['typo_key']",
    ):
        assert fragment in text
    assert "sup3r" not in text


def test_a_mismatched_proxy_mode_is_refused_in_http_mode() -> None:
    raw = {"name": "w", "mode": "http", "listen_port": 1, "upstream_url": "http://w/mcp", "proxy_mode": "sse"}
    with pytest.raises(ConfigError, match="translating to sse is not supported"):
        load_config(json.dumps(raw), {})


def test_interactive_oauth_is_refused_clearly() -> None:
    raw = {
        "name": "r",
        "mode": "remote",
        "listen_port": 1,
        "upstream_url": "https://x/mcp",
        "oauth": {"client_id": "a"},
    }
    with pytest.raises(ConfigError, match="interactive browser OAuth cannot run inside a proxy container"):
        load_config(json.dumps(raw), {})


@pytest.mark.parametrize("text", [None, "", "not json", "[1]"])
def test_a_missing_or_unreadable_config_is_an_error(text: str | None) -> None:
    with pytest.raises(ConfigError):
        load_config(text, {})


def test_the_entry_point_exits_2_with_the_reason_when_oauth_is_requested() -> None:
    raw = {"name": "r", "mode": "remote", "listen_port": 1, "upstream_url": "https://x/mcp", "oauth": True}
    done = subprocess.run(
        [sys.executable, "-S", "-m", "toolhive_apply.proxy"],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "THV_PROXY_CONFIG": json.dumps(raw)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "interactive browser OAuth" in done.stderr
    assert "Traceback" not in done.stderr
