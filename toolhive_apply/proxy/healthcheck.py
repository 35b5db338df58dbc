"""The image's HEALTHCHECK: ``python -m toolhive_apply.proxy.healthcheck`` exits 0 when ``/health`` answers 200.

Reads the listen port from the same ``THV_PROXY_CONFIG`` as the proxy, so the Dockerfile needs no port baked in.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

from toolhive_apply.proxy.config import CONFIG_ENV


def main() -> int:
    try:
        port = int(json.loads(os.environ.get(CONFIG_ENV, "{}"))["listen_port"])
    except (ValueError, KeyError, TypeError):
        print("healthcheck: no listen_port in THV_PROXY_CONFIG", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as response:
            print(response.read(500).decode(errors="replace"))
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as error:
        print(error.read(500).decode(errors="replace"))
        return 1
    except (OSError, ValueError) as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
