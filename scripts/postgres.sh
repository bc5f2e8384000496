#!/usr/bin/env bash
# Starts the machine's PostgreSQL cluster (no systemd here), makes sure the `postgres` role
# can log in over TCP with password `postgres`, and creates the database named in
# DATABASE_URL (default triggeriq). Prints nothing but errors and the URL.
set -euo pipefail

version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf "%f\n" | sort -V | tail -n 1)
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
  pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | grep -q "^$version main .* online"; then
  pg_ctlcluster "$version" main start || {
    echo "PostgreSQL $version did not start; see /var/log/postgresql/postgresql-$version-main.log" >&2
    exit 1
  }
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.5
done
su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
url="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/triggeriq}"
db="${url##*/}"
db="${db%%\?*}"
if ! su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = '$db'\"" | grep -q 1; then
  su postgres -c "createdb '$db'"
fi
echo "$url"
