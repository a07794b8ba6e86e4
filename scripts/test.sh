#!/usr/bin/env bash
# Sets everything up and runs the whole test suite (no GPU, no network needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
