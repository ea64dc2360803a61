#!/usr/bin/env bash
# Each service's PostgreSQL login: the role onewindow_<service> with LOGIN and its password from
# <SERVICE>_DB_PASSWORD. The services' migrations create these roles (without a password) and grant
# each its own schema only (services/<service>/grants.sql); this sets the passwords, out of band.
# Run by the `db-logins` job of docker-compose.yml as the owner (PG* variables); idempotent.
set -euo pipefail
for service in intake router mediation audit; do
  var="${service^^}_DB_PASSWORD"
  [ -n "${!var:-}" ] || { echo "set $var" >&2; exit 1; }
  psql -v ON_ERROR_STOP=1 -q -v role="onewindow_$service" -v password="${!var}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\gexec
ALTER ROLE :"role" LOGIN PASSWORD :'password';
SQL
done
echo "service logins ready"
