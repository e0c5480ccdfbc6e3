-- A read-only login for Grafana (or any other reporting tool).
--
-- Run it with psql as the role that owns lorakom's tables (the user in
-- LORAKOM_DB_URL), in lorakom's database, giving the password as a psql variable:
--
--   psql "$LORAKOM_DB_URL" -v reader=grafana_reader -v reader_password='…' \
--        -f deploy/postgres/grafana-readonly.sql
--
-- It is safe to run again (for example to change the password). It grants SELECT on
-- the tables that exist now and, through default privileges, on every table and view
-- that this owner creates later, so `lorakom db upgrade` never needs a new grant.
-- The docker-compose setup runs it once, when the database volume is first created.

\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN', :'reader')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') \gexec

ALTER ROLE :"reader" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'reader_password';

-- Every transaction of this role is read-only, and no dashboard query may run away.
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';

SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'reader') \gexec
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";

-- API key hashes are the API's business alone. The table exists once `lorakom db
-- upgrade` has run; on a fresh database run this file again after the first start.
SELECT format('REVOKE ALL ON TABLE api_key FROM %I', :'reader')
WHERE to_regclass('public.api_key') IS NOT NULL \gexec
