"""Entry point of the proxy container: ``python -m toolhive_apply.proxy`` with ``THV_PROXY_CONFIG`` set.

Exit status: 0 after SIGTERM, 2 for an unusable configuration (restarting cannot fix it, and the log says why),
1 for an unexpected failure (Docker's restart policy then starts a fresh proxy).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from toolhive_apply.proxy.config import CONFIG_ENV, ConfigError, load_config

HELPER_MODES = {"egress": ("egress", "serve_egress"), "docker-gate": ("docker_gate", "serve_gate")}
"""Modes with their own small document and server: the egress proxy, and the docker gate of a stdio workload.
Imported on demand, so a helper (one per workload) does not pay for the HTTP proxy's modules at every start."""


def _helper_server(mode: str) -> Callable[[Mapping[str, Any]], Coroutine[Any, Any, None]]:
    module, function = HELPER_MODES[mode]
    server: Callable[[Mapping[str, Any]], Coroutine[Any, Any, None]]
    server = getattr(importlib.import_module(f"toolhive_apply.proxy.{module}"), function)
    return server


def _helper_document(text: str | None) -> dict[str, object] | None:
    """The configuration when it asks for a helper mode."""
    try:
        raw = json.loads(text or "")
    except ValueError:
        return None
    return raw if isinstance(raw, dict) and raw.get("mode") in HELPER_MODES else None


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    helper = _helper_document(os.environ.get(CONFIG_ENV))
    try:
        if helper is not None:
            asyncio.run(_helper_server(str(helper["mode"]))(helper))
            return 0
        config = load_config(os.environ.get(CONFIG_ENV), os.environ)
    except KeyboardInterrupt:
        return 0
    except ConfigError as error:
        sys.stderr.write(f"toolhive-apply-proxy: {error}\n")
        return ConfigError.exit_code
    logging.getLogger().setLevel(config.log_level.upper())
    from toolhive_apply.proxy.app import serve  # only this mode needs the HTTP proxy

    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 0
    except Exception:
        logging.getLogger("toolhive_apply.proxy").exception("proxy failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
