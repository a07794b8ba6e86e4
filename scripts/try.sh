#!/usr/bin/env bash
# The playground: the bot in a web chat on http://127.0.0.1:8765, no Telegram token, no GPU needed.
# Options go to `python -m playground` (--port, --backend fake|diffusers, --language ru, --open).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m playground "$@"
