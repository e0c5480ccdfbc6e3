#!/bin/sh
# Runs when the TimescaleDB container initialises an empty data volume, and again by hand
# after the first `lorakom db upgrade`: creates Grafana's read-only login and maps it to
# GRAFANA_DB_MUNICIPALITY (unset: the region). Before the upgrade it can read nothing.
set -eu
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD in deploy/lorakom.env}"
psql --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v reader="${GRAFANA_DB_USER:-grafana_reader}" \
    -v reader_password="$GRAFANA_DB_PASSWORD" \
    -v municipality="${GRAFANA_DB_MUNICIPALITY:-}" \
    -f /etc/lorakom/grafana-readonly.sql
