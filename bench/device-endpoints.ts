/**
 * Device endpoints with 1,000,000 registrations in PostgreSQL (200,000 devices × 5 passes of 100,000; made with
 * SQL): register (POST, 90% re-registrations of existing pairs, 10% new devices) and list-updatable (GET, with and
 * without passesUpdatedSince) through the real app, against a bare Fastify route (no plugins, no hooks) running
 * the same single SQL statement with `pg` (prepared by name, as ours is). The two are measured alternately
 * (bench/serving.ts's alternate()), and EXPLAIN ANALYZE of each statement is printed. Needs BENCH_DATABASE_URL (PostgreSQL).
 */
import Fastify from 'fastify';
import pg from 'pg';
import pino from 'pino';
import { openDatabase } from '../src/db/database.js';
import { listUpdatableStatement, registerDeviceStatement } from '../src/db/registrations.js';
import { createFreshPostgresDatabase } from '../test/support/database.js';
import { startTestServer } from '../test/support/server.js';
import type { LoadRequest } from './load.js';
import { alternate, summarize } from './serving.js';
import { perSecond, printTargets, skippedLine, type TargetLine } from './targets.js';

const DEVICES = Number(process.env.BENCH_DEVICE_DEVICES ?? 200_000);
const PASSES = Number(process.env.BENCH_DEVICE_PASSES ?? 100_000);
const PER_DEVICE = 5;
const CONNECTIONS = Number(process.env.BENCH_DEVICE_CONNECTIONS ?? 64);
const ROUNDS = Number(process.env.BENCH_DEVICE_ROUNDS ?? 3);
const DURATION_MS = Number(process.env.BENCH_DEVICE_SECONDS ?? 5) * 1000;
const log = pino({ level: 'silent' });
const scenarioNames = [
  'register (90% re-registrations)',
  'list-updatable, no tag',
  'list-updatable, with tag',
] as const;
const goal = `≥ 0.8× the bare route, p99 < 20 ms at ${CONNECTIONS} clients`;
const plansFigure = 'Device endpoints: query plans (EXPLAIN ANALYZE, printed by the bench)';
const plansGoal = 'indexes, no sequential scans';

const tokenOf = (pass: number) => `tok-${pass.toString().padStart(12, '0')}-bench-token`;
const serialOf = (pass: number) => `bench-${pass}`;
const deviceOf = (device: number) => `device${device.toString().padStart(8, '0')}`;
/** Device d (1-based) holds passes (d·5 + k) mod PASSES + 1, k = 0…4: every pass is on DEVICES·5/PASSES devices. */
const passOf = (device: number, k: number) => ((device * PER_DEVICE + k) % PASSES) + 1;

async function populate(client: pg.Client, passTypeIdentifier: string): Promise<string> {
  await client.query(
    `INSERT INTO passes (id, pass_type_identifier, serial_number, authentication_token, template, last_modified)
     SELECT i, $1, 'bench-' || i, 'tok-' || lpad(i::text, 12, '0') || '-bench-token', 'event',
            date_trunc('second', now())
     FROM generate_series(1, $2::int) i`,
    [passTypeIdentifier, PASSES],
  );
  await client.query(
    `INSERT INTO devices (id, device_library_identifier, push_token)
     SELECT i, 'device' || lpad(i::text, 8, '0'), md5(i::text) || md5(i::text) FROM generate_series(1, $1::int) i`,
    [DEVICES],
  );
  await client.query(
    `INSERT INTO registrations (device_id, pass_id, push_token)
     SELECT d, ((d * ${PER_DEVICE} + k) % $2::int) + 1, md5(d::text) || md5(d::text)
     FROM generate_series(1, $1::int) d, generate_series(0, ${PER_DEVICE - 1}) k`,
    [DEVICES, PASSES],
  );
  await client.query(`SELECT setval('passes_id_seq', $1::int)`, [PASSES]);
  await client.query(`SELECT setval('devices_id_seq', $1::int)`, [DEVICES]);
  // A later change of 1% of the passes: a tag taken before it finds those only.
  const [tag] = (await client.query<{ tag: string }>('SELECT pg_current_snapshot()::text AS tag')).rows;
  await client.query(
    `UPDATE passes SET version = 2, update_xid = pg_current_xact_id()::text::bigint WHERE id % 100 = 0`,
  );
  await client.query('VACUUM ANALYZE');
  // The load's writes flushed now, so that neither side's rounds pay for them (a checkpoint started by them).
  await client.query('CHECKPOINT');
  return tag?.tag ?? '';
}

export async function benchDeviceEndpoints(): Promise<TargetLine[]> {
  const baseUrl = process.env.BENCH_DATABASE_URL;
  if (!baseUrl) {
    console.log(
      '\nDevice endpoints (bench/device-endpoints.ts): skipped, set BENCH_DATABASE_URL (PostgreSQL)',
    );
    return [
      ...scenarioNames.map((name) => skippedLine(`Device endpoints: ${name}`, goal)),
      skippedLine(plansFigure, plansGoal),
    ];
  }
  const fresh = await createFreshPostgresDatabase(baseUrl);
  const database = await openDatabase({ databaseUrl: fresh.url, dataDir: '', log });
  const server = await startTestServer({
    database,
    log,
    rateLimits: {
      perMinute: 100_000_000,
      perDevicePerMinute: 100_000_000,
      perPassPerMinute: 100_000_000,
      authFailuresPerMinute: 100_000_000,
    },
  });
  const passType = server.identity.passTypeIdentifier;
  const client = new pg.Client({ connectionString: fresh.url });
  await client.connect();
  const started = performance.now();
  const since = await populate(client, passType);
  const counts = (
    await client.query<{ registrations: string }>('SELECT count(*)::text AS registrations FROM registrations')
  ).rows[0];
  console.log(
    `\nDevice endpoints (bench/device-endpoints.ts): ${counts?.registrations} registrations, ${DEVICES} devices, ` +
      `${PASSES} passes, made in ${((performance.now() - started) / 1000).toFixed(1)} s; ${CONNECTIONS} connections, ` +
      `${ROUNDS}×${DURATION_MS / 1000} s per side, alternating; medians`,
  );

  // The baseline: Fastify with nothing registered, the same statements through a pg pool of pg's default size
  // (PrismaPg's pool is the same pg.Pool with the same default), prepared by name as ours are.
  const pool = new pg.Pool({ connectionString: fresh.url });
  const bare = Fastify();
  bare.post<{
    Params: { device: string; type: string; serial: string };
    Body: { pushToken: string };
  }>('/v1/devices/:device/registrations/:type/:serial', async (request, reply) => {
    const token = /^ApplePass\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1] ?? '';
    const { rows } = await pool.query<{ authenticated: boolean; created: boolean }>({
      ...registerDeviceStatement,
      values: [
        request.params.type,
        request.params.serial,
        token,
        request.params.device,
        request.body.pushToken,
        new Date(),
      ],
    });
    if (!rows[0]?.authenticated) return reply.code(401).send({});
    return reply.code(rows[0].created ? 201 : 200).send({});
  });
  bare.get<{ Params: { device: string; type: string }; Querystring: { passesUpdatedSince?: string } }>(
    '/v1/devices/:device/registrations/:type',
    async (request, reply) => {
      const { rows } = await pool.query<{ serial_number: string; tag: string }>({
        ...listUpdatableStatement,
        values: [request.params.device, request.params.type, request.query.passesUpdatedSince ?? null],
      });
      if (!rows[0]) return reply.code(204).send();
      return { serialNumbers: rows.map((row) => row.serial_number), lastUpdated: rows[0].tag };
    },
  );
  await bare.listen({ port: 0, host: '127.0.0.1' });
  const barePort = (bare.server.address() as { port: number }).port;
  const ourPort = Number(new URL(server.baseUrl).port);

  // Requests spread over all devices (a different device on every request).
  const device = (i: number) => ((i * 7919) % DEVICES) + 1;
  const register = (fresh: string): LoadRequest[] =>
    Array.from({ length: 40_000 }, (_, i) => {
      const isNew = i % 10 === 9;
      const pass = passOf(device(i), i % PER_DEVICE);
      return {
        method: 'POST',
        path: `/v1/devices/${isNew ? `new-${fresh}-${i}` : deviceOf(device(i))}/registrations/${passType}/${serialOf(pass)}`,
        headers: { authorization: `ApplePass ${tokenOf(pass)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ pushToken: `${'ab'.repeat(32)}` }),
      };
    });
  const list = (tag: boolean): LoadRequest[] =>
    Array.from({ length: 40_000 }, (_, i) => ({
      method: 'GET',
      path: `/v1/devices/${deviceOf(device(i))}/registrations/${passType}${tag ? `?passesUpdatedSince=${encodeURIComponent(since)}` : ''}`,
    }));

  const rows: string[] = [];
  const lines: TargetLine[] = [];
  const scenarios: Array<{ name: string; ours: LoadRequest[]; bare: LoadRequest[] }> = [
    // New devices get distinct names per side, so that both sides create (not find) them.
    { name: scenarioNames[0], ours: register('o'), bare: register('b') },
    { name: scenarioNames[1], ours: list(false), bare: list(false) },
    { name: scenarioNames[2], ours: list(true), bare: list(true) },
  ];
  for (const scenario of scenarios) {
    const [ours, baseline] = await alternate(
      [
        { name: 'ours', port: ourPort, requests: scenario.ours },
        { name: 'bare', port: barePort, requests: scenario.bare },
      ],
      ROUNDS,
      DURATION_MS,
      CONNECTIONS,
    );
    if (!ours || !baseline) throw new Error('no results');
    const a = summarize(ours);
    const b = summarize(baseline);
    console.log(
      `  ${scenario.name}: runs ours ${ours.runs.map((r) => r.requestsPerSecond.toFixed(0)).join(', ')}; ` +
        `bare ${baseline.runs.map((r) => r.requestsPerSecond.toFixed(0)).join(', ')}`,
    );
    lines.push({
      figure: `Device endpoints: ${scenario.name}`,
      ours: `${perSecond(a.rps)} (${(a.rps / b.rps).toFixed(2)}×), p99 ${a.p99.toFixed(1)} ms`,
      baseline: `${perSecond(b.rps)} (bare Fastify + pg), p99 ${b.p99.toFixed(1)} ms`,
      goal,
      met: a.rps / b.rps >= 0.8 && a.p99 < 20,
    });
    rows.push(
      `| ${scenario.name} | ${a.rps.toFixed(0)} | ${a.p99.toFixed(1)} | ${b.rps.toFixed(0)} | ${b.p99.toFixed(1)} | ` +
        `${(a.rps / b.rps).toFixed(2)} | ${a.cpuMsPerThousand.toFixed(1)} / ${b.cpuMsPerThousand.toFixed(1)} | ` +
        `${a.statuses} / ${b.statuses} | ${a.errors}/${b.errors} |`,
    );
  }
  console.log(
    '| endpoint | ours r/s | ours p99 ms | bare r/s | bare p99 ms | ratio | CPU ms per 1000, ours / bare | statuses | errors |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---|---|');
  for (const row of rows) console.log(row);

  // The plans, with representative parameters (a re-registration in a transaction rolled back, not to change data).
  const explain = async (title: string, sql: string, parameters: unknown[]) => {
    await client.query('BEGIN');
    const plan = await client.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN (ANALYZE, COSTS OFF) ${sql}`,
      parameters,
    );
    await client.query('ROLLBACK');
    console.log(`\nEXPLAIN ANALYZE: ${title}`);
    for (const line of plan.rows) console.log(`  ${line['QUERY PLAN']}`);
    return plan.rows.some((line) => line['QUERY PLAN'].includes('Seq Scan'));
  };
  const pass = passOf(1234, 0);
  const sequentialScans = [
    await explain('register (re-registration)', registerDeviceStatement.text, [
      passType,
      serialOf(pass),
      tokenOf(pass),
      deviceOf(1234),
      'ab'.repeat(32),
      new Date(),
    ]),
    await explain('list-updatable, no tag', listUpdatableStatement.text, [deviceOf(1234), passType, null]),
    await explain('list-updatable, with tag', listUpdatableStatement.text, [deviceOf(1234), passType, since]),
  ].filter(Boolean).length;
  lines.push({
    figure: plansFigure,
    ours: sequentialScans ? `${sequentialScans} of 3 statements scan a table` : 'index scans only',
    baseline: '',
    goal: plansGoal,
    met: sequentialScans === 0,
  });

  await client.end();
  await bare.close();
  await pool.end();
  await server.app.close();
  await database.close();
  await fresh.drop();
  return lines;
}

if (process.argv[1] === import.meta.filename) printTargets(await benchDeviceEndpoints());
