#!/usr/bin/env bash
# Turns on logical decoding on a local PostgreSQL cluster (wal_level=logical), restarting it only when a setting changed.
#
# Run as root (or as the cluster's owner) on a machine where PostgreSQL listens on 127.0.0.1 with
# trust (or password-less) access for the superuser. Safe to run again: when every setting is
# already high enough, it changes nothing and does not restart.
#
# Environment (all optional):
#   PGHOST (127.0.0.1) PGPORT (5432) PGUSER (postgres)
#   PG_VERSION (15) PG_CLUSTER (main)          which cluster pg_ctlcluster restarts
#   STOCKLINE_PG_SLOTS_MIN (16)                 floor for max_replication_slots
#   STOCKLINE_PG_SENDERS_MIN (16)               floor for max_wal_senders
#   STOCKLINE_PG_READY_TIMEOUT_S (60)           how long to wait for the restarted cluster
set -euo pipefail

host=${PGHOST:-127.0.0.1}
port=${PGPORT:-5432}
user=${PGUSER:-postgres}
version=${PG_VERSION:-15}
cluster=${PG_CLUSTER:-main}
slots_min=${STOCKLINE_PG_SLOTS_MIN:-16}
senders_min=${STOCKLINE_PG_SENDERS_MIN:-16}
ready_timeout_s=${STOCKLINE_PG_READY_TIMEOUT_S:-60}

sql() {
  psql -X -At -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U "$user" -d postgres -c "$1"
}

# The value the server runs with now (SHOW), not what postgresql.auto.conf holds for the next start.
running() {
  sql "SHOW $1"
}

restart_needed=0

if [ "$(running wal_level)" != "logical" ]; then
  sql "ALTER SYSTEM SET wal_level = logical" >/dev/null
  echo "pg-enable-logical: wal_level set to logical"
  restart_needed=1
fi

raise_floor() {
  local name=$1 floor=$2 current
  current=$(running "$name")
  if [ "$current" -lt "$floor" ]; then
    sql "ALTER SYSTEM SET $name = $floor" >/dev/null
    echo "pg-enable-logical: $name raised from $current to $floor"
    restart_needed=1
  fi
}

raise_floor max_replication_slots "$slots_min"
raise_floor max_wal_senders "$senders_min"

if [ "$restart_needed" -eq 0 ]; then
  echo "pg-enable-logical: already logical (max_replication_slots=$(running max_replication_slots), max_wal_senders=$(running max_wal_senders)); nothing to do"
  exit 0
fi

echo "pg-enable-logical: restarting cluster $version/$cluster"
pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" restart

deadline=$(( $(date +%s) + ready_timeout_s ))
until pg_isready -q -h "$host" -p "$port"; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "pg-enable-logical: cluster not ready after ${ready_timeout_s}s" >&2
    exit 1
  fi
  sleep 0.5
done

level=$(running wal_level)
if [ "$level" != "logical" ]; then
  echo "pg-enable-logical: wal_level is still $level after the restart" >&2
  exit 1
fi
echo "pg-enable-logical: wal_level=logical, max_replication_slots=$(running max_replication_slots), max_wal_senders=$(running max_wal_senders)"
