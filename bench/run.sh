#!/usr/bin/env bash
# THE one command of the peers benchmark (issue #9): `bash bench/run.sh [peers.py options]`.
#
# On a fresh machine with dockerd running: installs the peers (docker-compose from Debian, ansible from PyPI in
# bench/.peers-venv), the project itself if it is not importable, builds the local test images if they are missing,
# then measures `--help` start-up and the peak memory of a 1,000-workload plan (bench/footprint.py) and runs
# toolhive-apply, docker-compose, Ansible and the docker-py floor side by side (bench/peers.py; default N = 10 50
# 100 200, 3 life cycles per tool and N, 1 at N = 200, where one Ansible life cycle takes about 10 min).
# Everything goes to bench/results/<UTC timestamp>/ (gitignored): footprint.json, peers.json, run.log and
# results.md (the tables, ready for bench/README.md). Takes about an hour on 2 cores.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PYTHON="${PYTHON:-python3}"
OUT="$HERE/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
cd "$ROOT"

say() { printf '[run] %s\n' "$*"; }
started=$(date +%s)

docker info >/dev/null 2>&1 || { say "dockerd is not reachable (docker info failed)"; exit 1; }
bash "$HERE/install_peers.sh"
if ! "$PYTHON" -c 'import toolhive_apply, pytest, yaml, docker' 2>/dev/null; then
    say "installing the project (pip install -e .[dev])"
    "$PYTHON" -m pip install -q -e ".[dev]"
fi
say "test images"
"$PYTHON" tests/images/build_images.py

ARGS=("$@")
if [ ${#ARGS[@]} -eq 0 ]; then ARGS=(--sizes 10 50 100 200 --repeat 3 --repeat-large 1); fi

{
    echo "# peers benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "* machine: $(nproc) cores / $(free -g | awk '/^Mem:/ {print $2}') GiB, $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "* dockerd $(docker version --format '{{.Server.Version}}') (API $(docker version --format '{{.Server.APIVersion}}'))"
    echo "* $("$PYTHON" --version), toolhive-apply $("$PYTHON" -c 'import toolhive_apply; print(toolhive_apply.__version__)')"
    echo "* docker-compose $(docker-compose version --short)"
    echo "* ansible $("$HERE/.peers-venv/bin/python" -c 'import importlib.metadata as m; print(m.version("ansible"), "/ ansible-core", m.version("ansible-core"))')"
    echo "* peers.py ${ARGS[*]}"
    echo
} >"$OUT/results.md"

say "footprint: --help start-up and plan of 1,000 workloads"
"$PYTHON" "$HERE/footprint.py" --out "$OUT/footprint.json" 2>&1 | tee "$OUT/footprint.log" || say "footprint FAILED (see footprint.log); going on with the peers"
say "peers: toolhive-apply, docker-compose, Ansible, floor"
"$PYTHON" "$HERE/peers.py" "${ARGS[@]}" --out "$OUT/peers.json" 2>&1 | tee "$OUT/run.log"

{
    echo '```'
    cat "$OUT/footprint.log"
    echo '```'
    echo
    sed -n '/^#### /,/^\[.*\] total/p' "$OUT/run.log" | grep -v '^\[.*\] total'
    echo "total benchmark time: $(( $(date +%s) - started )) s"
} >>"$OUT/results.md"
say "done in $(( $(date +%s) - started )) s: $OUT/results.md"
