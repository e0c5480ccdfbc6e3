#!/bin/sh
# Runs once, when the TimescaleDB container initialises an empty data volume: creates
# Grafana's read-only login. lorakom's tables do not exist yet at this point; default
# privileges make them readable as soon as `lorakom db upgrade` creates them.
set -eu
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD in deploy/lorakom.env}"
psql --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v reader="${GRAFANA_DB_USER:-grafana_reader}" \
    -v reader_password="$GRAFANA_DB_PASSWORD" \
    -f /etc/lorakom/grafana-readonly.sql
