#!/usr/bin/env bash
# Sets everything up and runs the bot (long polling). Configuration: environment variables or .env.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m app "$@"
