-- A read-only login for Grafana (or any other reporting tool), confined to one municipality.
--
-- Run it with psql as the role that owns lorakom's tables (the user in LORAKOM_DB_URL), in
-- lorakom's database, after `lorakom db upgrade`, giving the login, its password and the
-- municipality's slug as psql variables (no slug, or an empty one: the region's login, which
-- reads what municipalities shared with the region):
--
--   psql "$LORAKOM_DB_URL" -v reader=grafana_wendlingen -v reader_password='…' \
--        -v municipality=wendlingen -f deploy/postgres/grafana-readonly.sql
--
-- The login joins the group `lorakom_reader` and is entered in `reader_role`; row-level
-- security (migration 0009) then shows it its municipality's rows and what other
-- municipalities shared with it, nothing else. It can read neither API keys, nor webhook
-- secrets, nor the mapping itself, and it writes nothing. The time series are read through
-- the filtered views of the schema `lorakom_scoped`, first in its search_path, so that
-- dashboard SQL naming `reading` or `uplink` reads the filtered rows.
--
-- It is safe to run again (to change the password or the municipality). Before the first
-- `lorakom db upgrade` (the compose setup's first start) it only creates the login, which
-- can read nothing yet: run it again after the upgrade.

\set ON_ERROR_STOP on
\if :{?municipality}
\else
\set municipality ''
\endif

SELECT format('CREATE ROLE %I LOGIN', :'reader')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') \gexec

-- INHERIT: the row-level security policies name the group, and apply to its members through it.
ALTER ROLE :"reader" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS INHERIT
    PASSWORD :'reader_password';

-- Every transaction of this role is read-only, and no dashboard query may run away.
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';
SELECT format('ALTER ROLE %I IN DATABASE %I SET search_path = lorakom_scoped, public',
              :'reader', current_database()) \gexec

SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'reader') \gexec

-- Earlier versions of this file granted SELECT on every table to the login itself.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"reader";
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM :"reader";

SELECT format('GRANT lorakom_reader TO %I', :'reader')
WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = 'lorakom_reader') \gexec

SELECT to_regclass('public.reader_role') IS NOT NULL AS migrated \gset
\if :migrated
-- The municipality it reads; a slug that names none stops here, before anything is mapped.
SELECT format('DO $$ BEGIN RAISE EXCEPTION %L; END $$', 'no municipality ' || :'municipality')
WHERE :'municipality' <> '' AND NOT EXISTS (SELECT FROM municipality WHERE slug = :'municipality') \gexec

SELECT format(
    'INSERT INTO reader_role (role_name, municipality_id) VALUES (%L, %s) '
    'ON CONFLICT (role_name) DO UPDATE SET municipality_id = excluded.municipality_id',
    :'reader',
    CASE WHEN :'municipality' = '' THEN 'NULL'
         ELSE format('(SELECT id FROM municipality WHERE slug = %L)', :'municipality') END) \gexec
\else
\echo 'lorakom''s schema is not there yet: the login reads nothing until this file runs again after `lorakom db upgrade`'
\endif
