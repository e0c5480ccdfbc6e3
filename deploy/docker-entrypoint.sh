#!/bin/sh
# The lorakom container: bring the schema up to date, then run the given command
# (by default `lorakom run --config /etc/lorakom/sources.toml`: bridge and API).
# `lorakom db upgrade` is idempotent, so every start may run it.
set -eu
lorakom db upgrade
exec lorakom "$@"
