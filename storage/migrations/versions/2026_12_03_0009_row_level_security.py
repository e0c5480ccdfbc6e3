"""row-level security: every municipality's rows kept to it by the database itself

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 17:00:00

Until now isolation between municipalities lived only in the queries. This revision
puts it into PostgreSQL, so that a query that forgets its `WHERE municipality_id`
cannot cross towns:

- `lorakom_tenant` (NOLOGIN): the API switches into it for every transaction of a
  municipality's request (`storage.tenancy`), with `lorakom.municipality_id` set
  transaction-locally. The app's own login becomes a member so that it may switch.
- `lorakom_reader` (NOLOGIN): the group of dashboard logins. Which municipality a
  login reads comes from `reader_role`, which no reader can read or write: never
  from a setting the reader could change itself.
- Row-level security with policies keyed by municipality on every table that
  holds a municipality's rows. Sharing grants open a use case for reading, never
  for writing: the devices their owner registered under that use case
  (`device.use_case`) with their latest values and readings, and the owner's
  parking zones (parking) or soil thresholds (soil). Raw frames, receptions,
  gateways, alerts and keys stay the owner's alone. Readings and latest values
  have no municipality column: their policies follow the device (the time series
  through a set of visible device ids computed once per statement, which keeps the
  history's index scan; `bench/bench_tenancy.py` measures it). The tables' owner (the app's login: bridge, jobs, migrations) is not
  subject to them (no FORCE), so ingest keeps writing for every town.
- The four time-series tables (`uplink`, `reception`, `reading`,
  `gateway_heartbeat`) become TimescaleDB hypertables with compression where
  TimescaleDB is installed, and TimescaleDB refuses compression on a table with
  row security (in either order). So on every backend alike they get no policies
  and no grants; the two roles read them through security-barrier views of the
  same names in the schema `lorakom_scoped`, which comes first in their
  search_path. A view filters through functions that run as the caller, so the
  same policies decide. `storage.timescale` adds such views for the continuous
  aggregates, which cannot carry row security either.

(Plain tuples rather than dataclasses: Alembic loads a migration without registering its module.)

Roles are cluster-wide: creating them tolerates another database of the same
cluster doing the same at the same moment (the test suite creates many). No `%` in the SQL:
Alembic's offline rendering (the TimescaleDB check runs it) would double it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from alembic import context, op

from storage import timescale

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = "lorakom_tenant"
READER = "lorakom_reader"
SCOPED = "lorakom_scoped"

# The municipality the caller acts for, and the (owner, use case) pairs shared with it;
# in sub-selects so that each is computed once per statement, not once per row.
ME = "(SELECT lorakom_scope_municipality())"
SHARED = "(SELECT owner_municipality_id, use_case FROM lorakom_shares())"
WRITER = "(SELECT lorakom_tenant_municipality())"


class TablePolicies(NamedTuple):
    """Who reads and who writes which rows of one table.

    `read` applies to both roles (None: neither reads a row); `write` to the tenant only
    (None: the API never writes the table). `reader_grant` says whether dashboard logins
    may select from it at all.
    """

    table: str
    read: str | None
    write: str | None
    reader_grant: bool = True
    write_using: str | None = None  # rows an UPDATE/DELETE may touch, where it differs from `write`


OWN = f"municipality_id = {ME}"
OWN_WRITE = f"municipality_id = {WRITER}"

POLICIES: tuple[TablePolicies, ...] = (
    TablePolicies(
        "device",
        read=f"municipality_id = {ME} OR (municipality_id, use_case) IN {SHARED}",
        write=OWN_WRITE,
    ),
    # A device's latest values follow the device, shared ones included (the device's own
    # policy applies inside the sub-select).
    TablePolicies(
        "device_state",
        read="device_id IN (SELECT id FROM device)",
        write=f"device_id IN (SELECT id FROM device WHERE municipality_id = {WRITER})",
    ),
    # A gateway is seen by the municipality that runs it and by those whose devices it carries,
    # as the API lists them (`storage.gateways`); only its runner (or anyone, while unowned) edits it.
    TablePolicies(
        "gateway",
        read=(
            f"municipality_id = {ME} OR gateway_id IN (SELECT gateway_id FROM gateway_heard) "
            "OR gateway_id IN (SELECT last_gateway_id FROM device_activity)"
        ),
        write=f"municipality_id = {WRITER} OR municipality_id IS NULL",
    ),
    TablePolicies("gateway_heard", read=OWN, write=OWN_WRITE),
    TablePolicies(
        "device_activity",
        read=f"municipality_id = {ME} OR dev_eui IN (SELECT dev_eui FROM device WHERE municipality_id = {ME})",
        write=OWN_WRITE,
    ),
    # Gateway-wide counters: whoever sees the gateway sees them.
    TablePolicies("gateway_activity", read="gateway_id IN (SELECT gateway_id FROM gateway)", write=None),
    # Which DevEUIs a gateway hears: only the caller's own DevEUIs (registered, or heard by its
    # sources and not yet registered), never the neighbours'.
    TablePolicies(
        "gateway_device",
        read=(
            f"dev_eui IN (SELECT dev_eui FROM device WHERE municipality_id = {ME}) "
            f"OR dev_eui IN (SELECT dev_eui FROM device_activity WHERE municipality_id = {ME})"
        ),
        write=None,
    ),
    TablePolicies("alert_rule", read=OWN, write=OWN_WRITE),
    TablePolicies("alert_event", read=OWN, write=OWN_WRITE),
    TablePolicies(
        "parking_zone",
        read=f"municipality_id = {ME} OR (municipality_id, 'parking') IN {SHARED}",
        write=OWN_WRITE,
    ),
    TablePolicies(
        "soil_threshold",
        read=f"municipality_id = {ME} OR (municipality_id, 'soil') IN {SHARED}",
        write=OWN_WRITE,
    ),
    # Scripts without an owner are the region's, usable by every municipality's devices.
    TablePolicies(
        "codec_script",
        read=f"owner_municipality_id = {ME} OR owner_municipality_id IS NULL",
        write=f"owner_municipality_id = {WRITER}",
    ),
    TablePolicies(
        "sharing_grant",
        read=(
            f"owner_municipality_id = {ME} OR grantee_municipality_id = {ME} "
            "OR grantee_municipality_id IS NULL"
        ),
        write=f"owner_municipality_id = {WRITER}",
    ),
    # Secrets: the API's key administration and webhook routes only, never a dashboard.
    TablePolicies("api_key", read=None, write=OWN_WRITE, reader_grant=False),
    TablePolicies("webhook_subscription", read=None, write=OWN_WRITE, reader_grant=False),
    TablePolicies(
        "webhook_delivery",
        read=None,
        write="subscription_id IN (SELECT id FROM webhook_subscription)",
        reader_grant=False,
    ),
    TablePolicies(
        "webhook_attempt",
        read=None,
        write="delivery_id IN (SELECT id FROM webhook_delivery)",
        reader_grant=False,
    ),
    # Kept by source, and sources are configured outside the database: no municipality's.
    TablePolicies("rejected_message", read=None, write=None),
)


class ScopedView(NamedTuple):
    """A time-series table as the two roles see it: the same columns, filtered rows."""

    table: str
    condition: str


SCOPED_VIEWS: tuple[ScopedView, ...] = (
    ScopedView("uplink", f"municipality_id = {ME}"),
    ScopedView("reception", f"municipality_id = {ME}"),
    ScopedView("reading", "device_id IN (SELECT lorakom_visible_devices())"),
    ScopedView("gateway_heartbeat", "gateway_id IN (SELECT lorakom_visible_gateways())"),
)

ROLES = f"""
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['{TENANT}', '{READER}'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE 'CREATE ROLE ' || quote_ident(name) || ' NOLOGIN';
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- another database of this cluster created it just now
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION USING
                        MESSAGE = 'the role ' || name || ' does not exist and ' || current_user
                            || ' may not create roles',
                        HINT = 'let an administrator run: CREATE ROLE ' || quote_ident(name) || ' NOLOGIN';
            END;
        END IF;
    END LOOP;
    -- The app's login switches into the tenant role per transaction (SET ROLE needs membership).
    IF NOT pg_has_role(current_user, '{TENANT}', 'MEMBER') THEN
        BEGIN
            EXECUTE 'GRANT {TENANT} TO ' || quote_ident(current_user);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION USING
                    MESSAGE = current_user || ' may not join the role {TENANT}',
                    HINT = 'let an administrator run: GRANT {TENANT} TO ' || quote_ident(current_user);
        END;
    END IF;
END
$$"""

FUNCTIONS = [
    # What the API set for this transaction; only ever consulted for the tenant role.
    "CREATE FUNCTION lorakom_tenant_municipality() RETURNS integer LANGUAGE sql STABLE "
    "AS $$ SELECT nullif(current_setting('lorakom.municipality_id', true), '')::integer $$",
    # A dashboard login's municipality, from the mapping it cannot read; by session_user, which
    # SET ROLE does not change. NULL for the region and for a login without a mapping.
    "CREATE FUNCTION lorakom_reader_municipality() RETURNS integer LANGUAGE sql STABLE "
    "SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
    "AS $$ SELECT municipality_id FROM public.reader_role WHERE role_name = session_user $$",
    "CREATE FUNCTION lorakom_tenant_grants() RETURNS TABLE (owner_municipality_id integer, use_case text) "
    "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ "
    "SELECT g.owner_municipality_id, g.use_case::text FROM public.sharing_grant g "
    "WHERE g.grantee_municipality_id = public.lorakom_tenant_municipality() "
    "OR (g.grantee_municipality_id IS NULL AND public.lorakom_tenant_municipality() IS NOT NULL) $$",
    # A mapped login reads grants to its municipality and to the region; the region's login
    # (NULL) those to the region; a login without a mapping none.
    "CREATE FUNCTION lorakom_reader_grants() RETURNS TABLE (owner_municipality_id integer, use_case text) "
    "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ "
    "SELECT g.owner_municipality_id, g.use_case::text FROM public.sharing_grant g "
    "JOIN public.reader_role r ON r.role_name = session_user "
    "WHERE g.grantee_municipality_id = r.municipality_id OR g.grantee_municipality_id IS NULL $$",
    # The dispatch runs as the caller (it must see who that is); PL/pgSQL checks the privilege
    # on a function only when it is called, so each role needs EXECUTE on its own branch only.
    f"CREATE FUNCTION lorakom_scope_municipality() RETURNS integer LANGUAGE plpgsql STABLE AS $$ "
    f"BEGIN IF current_user = '{TENANT}' THEN RETURN public.lorakom_tenant_municipality(); END IF; "
    "RETURN public.lorakom_reader_municipality(); END $$",
    f"CREATE FUNCTION lorakom_shares() RETURNS TABLE (owner_municipality_id integer, use_case text) "
    f"LANGUAGE plpgsql STABLE AS $$ BEGIN IF current_user = '{TENANT}' THEN "
    "RETURN QUERY SELECT * FROM public.lorakom_tenant_grants(); ELSE "
    "RETURN QUERY SELECT * FROM public.lorakom_reader_grants(); END IF; END $$",
    # A DevEUI is unique across the platform, so registering one must learn whether another
    # municipality has it, without seeing that municipality's row: existence only, as the API's
    # 409 and the import's row error tell it anyway.
    "CREATE FUNCTION lorakom_devices_elsewhere(municipality integer, dev_euis text[]) RETURNS SETOF text "
    "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ "
    "SELECT dev_eui::text FROM public.device WHERE dev_eui = ANY(dev_euis) AND municipality_id <> municipality $$",
    # For the views: run as the caller, so the policies of `device` and `gateway` decide.
    "CREATE FUNCTION lorakom_visible_devices() RETURNS SETOF integer LANGUAGE plpgsql STABLE AS $$ "
    "BEGIN RETURN QUERY SELECT id FROM public.device; END $$",
    "CREATE FUNCTION lorakom_visible_gateways() RETURNS SETOF text LANGUAGE plpgsql STABLE AS $$ "
    "BEGIN RETURN QUERY SELECT gateway_id::text FROM public.gateway; END $$",
]

FUNCTION_NAMES = (
    "lorakom_devices_elsewhere(integer, text[])",
    "lorakom_visible_gateways()",
    "lorakom_visible_devices()",
    "lorakom_shares()",
    "lorakom_scope_municipality()",
    "lorakom_reader_grants()",
    "lorakom_tenant_grants()",
    "lorakom_reader_municipality()",
    "lorakom_tenant_municipality()",
)

EXECUTE_GRANTS = [
    *(f"REVOKE ALL ON FUNCTION {name} FROM PUBLIC" for name in FUNCTION_NAMES),
    "GRANT EXECUTE ON FUNCTION lorakom_tenant_municipality(), lorakom_tenant_grants(), "
    f"lorakom_devices_elsewhere(integer, text[]) TO {TENANT}",
    f"GRANT EXECUTE ON FUNCTION lorakom_reader_municipality(), lorakom_reader_grants() TO {READER}",
    "GRANT EXECUTE ON FUNCTION lorakom_scope_municipality(), lorakom_shares(), lorakom_visible_devices(), "
    f"lorakom_visible_gateways() TO {TENANT}, {READER}",
]


READER_ROLE_TABLE = [
    "CREATE TABLE reader_role (role_name text NOT NULL, municipality_id integer NULL, "
    "CONSTRAINT pk_reader_role PRIMARY KEY (role_name), "
    "CONSTRAINT fk_reader_role_municipality_id_municipality FOREIGN KEY (municipality_id) "
    "REFERENCES municipality (id) ON DELETE CASCADE)",
    # No policy and no grant: only the owner (and the functions it defines) read it.
    "ALTER TABLE reader_role ENABLE ROW LEVEL SECURITY",
]


def policy_statements() -> list[str]:
    result = [
        "ALTER TABLE municipality ENABLE ROW LEVEL SECURITY",
        # The API names other municipalities (sharing, gateway owners) by slug; a reader sees its
        # own and those that share with it.
        f"CREATE POLICY municipality_tenant ON municipality FOR SELECT TO {TENANT} USING (true)",
        f"CREATE POLICY municipality_reader ON municipality FOR SELECT TO {READER} "
        f"USING (id = {ME} OR id IN (SELECT owner_municipality_id FROM lorakom_shares()))",
        f"GRANT SELECT ON municipality TO {TENANT}, {READER}",
    ]
    for spec in POLICIES:
        result.append(f"ALTER TABLE {spec.table} ENABLE ROW LEVEL SECURITY")
        if spec.read is not None:
            roles = f"{TENANT}, {READER}" if spec.reader_grant else TENANT
            result.append(
                f"CREATE POLICY {spec.table}_read ON {spec.table} FOR SELECT TO {roles} USING ({spec.read})"
            )
        if spec.write is not None:
            result.append(
                f"CREATE POLICY {spec.table}_write ON {spec.table} FOR ALL TO {TENANT} "
                f"USING ({spec.write_using or spec.write}) WITH CHECK ({spec.write})"
            )
            result.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {spec.table} TO {TENANT}")
        else:
            result.append(f"GRANT SELECT ON {spec.table} TO {TENANT}")
        if spec.reader_grant:
            result.append(f"GRANT SELECT ON {spec.table} TO {READER}")
    return result


def scoped_view_statements() -> list[str]:
    result = [
        f"CREATE SCHEMA IF NOT EXISTS {SCOPED}",
        f"REVOKE ALL ON SCHEMA {SCOPED} FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA {SCOPED} TO {TENANT}, {READER}",
    ]
    for view in SCOPED_VIEWS:
        result.append(
            f"CREATE VIEW {SCOPED}.{view.table} WITH (security_barrier) AS "
            f"SELECT * FROM public.{view.table} WHERE {view.condition}"
        )
        result.append(f"GRANT SELECT ON {SCOPED}.{view.table} TO {TENANT}, {READER}")
    return result


def upgrade() -> None:
    for statement in [
        ROLES,
        *READER_ROLE_TABLE,
        *FUNCTIONS,
        *EXECUTE_GRANTS,
        *policy_statements(),
        f"GRANT USAGE ON SCHEMA public TO {TENANT}, {READER}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {TENANT}",
        *scoped_view_statements(),
    ]:
        op.execute(statement)
    if context.is_offline_mode() or timescale.timescale_enabled(op.get_bind()):
        for statement in timescale.scoped_aggregate_statements():
            op.execute(statement)


def downgrade() -> None:
    op.execute(f"DROP SCHEMA IF EXISTS {SCOPED} CASCADE")
    for spec in POLICIES:
        for suffix in ("read", "write"):
            op.execute(f"DROP POLICY IF EXISTS {spec.table}_{suffix} ON {spec.table}")
        op.execute(f"ALTER TABLE {spec.table} DISABLE ROW LEVEL SECURITY")
        op.execute(f"REVOKE ALL ON {spec.table} FROM {TENANT}, {READER}")
    op.execute("DROP POLICY IF EXISTS municipality_tenant ON municipality")
    op.execute("DROP POLICY IF EXISTS municipality_reader ON municipality")
    op.execute("ALTER TABLE municipality DISABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE ALL ON municipality FROM {TENANT}, {READER}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {TENANT}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {TENANT}, {READER}")
    for name in FUNCTION_NAMES:
        op.execute(f"DROP FUNCTION IF EXISTS {name}")
    op.execute("DROP TABLE reader_role")
    # The roles stay: they are the cluster's, and other databases of it may use them.
