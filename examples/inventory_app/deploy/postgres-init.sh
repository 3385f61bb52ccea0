#!/bin/sh
# Runs once, as the postgres superuser, when the data volume is first created.
#
# - inventory: owns the database and its tables; only the one-shot `migrate`
#   service connects as it.
# - tenantkit_app: what the API and the worker connect as. NOINHERIT, no
#   SUPERUSER, no BYPASSRLS, owns nothing: row-level security binds it. The
#   migrations grant it the tables.
# - tenantkit_crosstenant: entered only by unscoped() transactions (SET LOCAL ROLE).
#
# tenantkit's migrations would create the two tenantkit roles themselves, but
# the owner here may not create roles (least privilege), so the superuser does.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="$INVENTORY_OWNER_PASSWORD" -v app_password="$TENANTKIT_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE inventory LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD :'owner_password';
CREATE ROLE tenantkit_crosstenant NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE tenantkit_app LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS PASSWORD :'app_password';
GRANT tenantkit_crosstenant TO tenantkit_app;
CREATE DATABASE inventory OWNER inventory;
SQL
