#!/usr/bin/env bash
# Validates Stockline events (one event, a JSON array, or NDJSON; `-` for stdin) against the event contract.
# Exit codes: 0 all valid, 1 some invalid (each violation printed), 2 unreadable input or bad usage.
set -uo pipefail
if [ "$#" -ne 1 ]; then
  echo "usage: validators/validate-schema.sh FILE|-" >&2
  exit 2
fi
exec node "$(dirname "$0")/../bin/stockline.js" validate "$1"
