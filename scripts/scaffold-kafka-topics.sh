#!/usr/bin/env bash
# Creates or checks the Kafka engine's topics and ACLs: `stockline topics scaffold` under another name.
#   scripts/scaffold-kafka-topics.sh --config config/kafka-dev.yaml [--dry-run] [--json]
set -euo pipefail
exec node "$(dirname "$0")/../bin/stockline.js" topics scaffold "$@"
