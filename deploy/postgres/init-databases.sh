#!/usr/bin/env bash
# Postgres runs this once, on the first start of an empty data volume (/docker-entrypoint-initdb.d).
# Mnemo and Temporal get a role each, so neither can read or drop the other's data, and neither is a
# superuser. Changing a password later takes an ALTER ROLE: this script never runs again.
# The entrypoint may source this file rather than run it, so it sets no shell options of its own.

: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}"
: "${MNEMO_DB_PASSWORD:?MNEMO_DB_PASSWORD must be set}"
: "${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD must be set}"

# Passwords go in as psql variables (:'name' quotes them as literals), never spliced into SQL text.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v mnemo_password="$MNEMO_DB_PASSWORD" -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE mnemo LOGIN PASSWORD :'mnemo_password';
CREATE DATABASE mnemo OWNER mnemo;
CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
SQL

# pgvector is not a trusted extension: only a superuser may create it, so it is made here and
# Mnemo's migrations find it in place.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname mnemo \
    -c 'CREATE EXTENSION IF NOT EXISTS vector'
