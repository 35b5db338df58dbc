#!/usr/bin/env bash
# Installs the peers that bench/peers.py runs beside toolhive-apply; safe to run again (does nothing when present).
#
# * docker-compose 1.29 from Debian (apt-get): the classic Python compose, as the issue asks. Installed without
#   recommends so that apt never touches the docker.io engine that is already running.
# * ansible from PyPI, in its own venv (bench/.peers-venv, gitignored) so that it cannot disturb the project's
#   environment. The `ansible` package bundles the community.docker collection; there is no fallback to
#   `ansible-galaxy collection install`, because Galaxy is not reachable from this machine (only PyPI, Debian and
#   npm are), so this script checks the collection is there and fails loudly if it is not.
#   community.docker's modules run under the venv's interpreter (ansible_python_interpreter), which also gets the
#   Docker SDK for Python and requests.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${PEERS_VENV:-$HERE/.peers-venv}"
PYTHON="${PEERS_PYTHON:-python3}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

say() { printf '[install_peers] %s\n' "$*"; }

# --- docker-compose (Debian) ------------------------------------------------------------------------
if command -v docker-compose >/dev/null 2>&1 && docker-compose version --short 2>/dev/null | grep -q '^1\.29'; then
    say "docker-compose $(docker-compose version --short) already installed"
else
    say "installing docker-compose 1.29 with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    say "docker-compose $(docker-compose version --short) installed"
fi

# --- ansible (PyPI, separate venv) ---------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if "$VENV/bin/python" -c 'import ansible, docker, requests' 2>/dev/null && [ -x "$VENV/bin/ansible-playbook" ]; then
    say "ansible already installed in $VENV"
else
    say "installing ansible, docker and requests from PyPI into $VENV"
    # (pip's notes about find-links folders absent on this machine are noise: filtered out)
    "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | { grep -v "is ignored: it is neither" || true; }
    "$VENV/bin/python" -m pip install -q ansible docker requests 2>&1 | { grep -v "is ignored: it is neither" || true; }
fi

# the collection must come with the ansible package: Galaxy cannot be reached from here
if ! "$VENV/bin/ansible-doc" -t module community.docker.docker_container >/dev/null 2>&1; then
    say "ERROR: the community.docker collection is not in the installed ansible package, and"
    say "       'ansible-galaxy collection install community.docker' needs Galaxy, which this machine cannot reach"
    exit 1
fi
COLLECTION="$("$VENV/bin/ansible-galaxy" collection list community.docker 2>/dev/null | awk '$1 == "community.docker" {print $2}' | head -n1)"
say "ansible $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ansible"))')" \
    "(ansible-core $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ansible-core"))')," \
    "community.docker ${COLLECTION:-?}) ready in $VENV"
