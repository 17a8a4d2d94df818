#!/bin/sh
# One-shot, before the Temporal server starts: applies Temporal's own SQL schema to the two
# databases that deploy/postgres/init-databases.sh created. Safe to re-run on every `up`:
# setup-schema and update-schema are no-ops on a database that is already current, and an
# upgraded admin-tools image brings the versioned migrations for an upgraded server.
# Connection settings come from SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER and SQL_PASSWORD,
# which temporal-sql-tool reads itself.
set -eu

schema_dir=/etc/temporal/schema/postgresql/v12

for target in "${TEMPORAL_DB:-temporal}:temporal" "${TEMPORAL_VISIBILITY_DB:-temporal_visibility}:visibility"; do
    db="${target%%:*}"
    kind="${target#*:}"
    echo "temporal schema: ${db}"
    temporal-sql-tool --db "$db" setup-schema -v 0.0
    temporal-sql-tool --db "$db" update-schema -d "${schema_dir}/${kind}/versioned"
done
