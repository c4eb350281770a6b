#!/usr/bin/env bash
# Installs the machine-level tools the test suite uses: promtool and Prometheus (alert rule tests), Chromium
# (dashboard tests), Java and Maven (the test Kafka broker), and logical replication on the local PostgreSQL.
# Idempotent: does nothing when all is there. Installing needs root; without it, it says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: these Debian packages are needed: ${missing[*]} (run this script as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "install-system-deps: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The change-data-capture tests stream from the local PostgreSQL: it needs wal_level=logical.
if [ "$(psql -h 127.0.0.1 -U postgres -tAc 'SHOW wal_level' 2>/dev/null || true)" != "logical" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: PostgreSQL on 127.0.0.1:5432 needs wal_level=logical; run scripts/pg-enable-logical.sh as root" >&2
    exit 1
  fi
  bash scripts/pg-enable-logical.sh
fi
