/*
 * pg_peers.js - outbox's peers on PostgreSQL, for bench/engine --store:
 * graphile-worker 0.16 and pg-boss 10, on the same server, measured with
 * the shapes bench_engine measures outbox with:
 *
 *   enqueue-1, enqueue-16   one job per call, 1 and 16 calls in flight
 *   life                    16 producers (one job per call) while workers
 *                           (16 in all for graphile-worker, spread over
 *                           NODES instances; pg-boss: see below) run a
 *                           no-op handler: jobs completed per second
 *   latency-p50/-p99        add one job to an idle queue, time to the start
 *                           of its handler (ms)
 *
 *   node pg_peers.js graphile|pgboss URL SECONDS NODES
 *
 * Each rate is counted over SECONDS after a 0.5 s warm-up, on a fresh
 * schema (graphile-worker) or queue (pg-boss). NODES runners (graphile) or
 * PgBoss instances (pg-boss), each with its own pool, share the database,
 * as several processes would. Prints "result NAME VALUE" lines, as
 * bench_engine does. The packages come from npm (bench/engine installs
 * them; NODE_PATH points at them).
 */
'use strict';

const [, , peer, url, secsArg, nodesArg] = process.argv;
const SECS = Number(secsArg || 5);
const NODES = Number(nodesArg || 1);
const PRODUCERS = 16, WORKERS = 16;
const PAYLOAD = { to: 'someone@example.org', subject: 'welcome', pad: 'p'.repeat(45) };

const now = () => performance.now();
const sleep = ms => new Promise(r => setTimeout(r, ms));
const say = (name, v) => console.log(`result ${name} ${v}`);

/* Run `lanes` loops of `step` until stopped; count() is read at the start
 * and the end of the measured window. */
async function measure(lanes, step, count) {
  let stop = false, added = 0;
  const loops = Array.from({ length: lanes }, async () => {
    while (!stop) {
      await step();
      added++;
    }
  });
  const counter = count || (() => added);
  await sleep(500);
  const c0 = await counter(), t0 = now();
  await sleep(SECS * 1000);
  const c1 = await counter(), t1 = now();
  stop = true;
  await Promise.all(loops);
  return Math.round((c1 - c0) / ((t1 - t0) / 1000));
}

function percentiles(v) {
  v.sort((a, b) => a - b);
  return [v[Math.floor(v.length / 2)], v[Math.floor(v.length * 99 / 100)]];
}

async function graphile() {
  const { run, makeWorkerUtils } = require('graphile-worker');
  const { Pool } = require('pg');
  const admin = new Pool({ connectionString: url, max: 1 });
  /* A fresh schema, and utils whose pool has room for 16 producers. */
  const fresh = async () => {
    await admin.query('SET client_min_messages = warning; DROP SCHEMA IF EXISTS graphile_worker CASCADE');
    const pool = new Pool({ connectionString: url, max: PRODUCERS + 4 });
    const utils = await makeWorkerUtils({ pgPool: pool });
    await utils.migrate();
    return { pool, utils };
  };
  const runners = async (taskList, onSuccess) => {
    const rs = [];
    for (let i = 0; i < NODES; i++) {
      const r = await run({
        connectionString: url, concurrency: Math.ceil(WORKERS / NODES), noHandleSignals: true,
        pollInterval: 2000, taskList, logger: quietLogger(),
      });
      if (onSuccess)
        r.events.on('job:success', onSuccess);
      rs.push(r);
    }
    return rs;
  };
  const stopAll = rs => Promise.all(rs.map(r => r.stop()));

  let f = await fresh();
  say('enqueue-1', await measure(1, () => f.utils.addJob('noop', PAYLOAD)));
  await f.utils.release(); await f.pool.end();
  f = await fresh();
  say('enqueue-16', await measure(PRODUCERS, () => f.utils.addJob('noop', PAYLOAD)));
  await f.utils.release(); await f.pool.end();

  f = await fresh();
  let done = 0;
  let rs = await runners({ noop: async () => {} }, () => done++);
  say('life', await measure(PRODUCERS, () => f.utils.addJob('noop', PAYLOAD), () => done));
  await stopAll(rs);
  await f.utils.release(); await f.pool.end();

  f = await fresh();
  let started = null;
  rs = await runners({ mark: async () => { if (started) started(now()); } });
  const lat = [];
  for (let i = 0; i < 1000; i++) {
    const t = new Promise(r => { started = r; });
    const t0 = now();
    await f.utils.addJob('mark', PAYLOAD);
    lat.push((await t) - t0);
    await sleep(1);
  }
  const [p50, p99] = percentiles(lat);
  say('latency-p50', p50.toFixed(3));
  say('latency-p99', p99.toFixed(3));
  await stopAll(rs);
  await f.utils.release(); await f.pool.end();
  await admin.end();
}

function quietLogger() {
  const { Logger } = require('graphile-worker');
  return new Logger(() => (level, message) => {
    if (level === 'error') console.error(`graphile-worker: ${message}`);
  });
}

async function pgboss() {
  const PgBoss = require('pg-boss');
  const { Client } = require('pg');
  const bosses = [];
  for (let i = 0; i < NODES; i++) {
    const b = new PgBoss({ connectionString: url, max: PRODUCERS + 4 });
    b.on('error', e => console.error(`pg-boss: ${e.message}`));
    await b.start();
    bosses.push(b);
  }
  const boss = bosses[0];
  let k = 0;
  const fresh = async () => {
    const name = `bench-${process.pid}-${k++}`;
    await boss.createQueue(name);
    return name;
  };
  const db = new Client({ connectionString: url });
  await db.connect();
  const completed = async q => Number((await db.query(
    "select count(*) from pgboss.job where name = $1 and state = 'completed'", [q])).rows[0].count);

  let q = await fresh();
  say('enqueue-1', await measure(1, () => boss.send(q, PAYLOAD)));
  q = await fresh();
  say('enqueue-16', await measure(PRODUCERS, () => boss.send(q, PAYLOAD)));

  /* Workers at their best here: one per instance, fetching up to 1,000
   * jobs per poll (measured on this machine, 3 s windows: 16 workers x 16
   * jobs: 502/s; 4 x 250: 1,223/s; 1 x 1,000: 1,522/s; 16 x 1: 32/s); the
   * poll interval at its minimum, 0.5 s. */
  q = await fresh();
  let lane = 0;
  for (let i = 0; i < NODES; i++)
    await bosses[i].work(q, { batchSize: 1000, pollingIntervalSeconds: 0.5 }, async () => {});
  say('life', await measure(PRODUCERS, () => bosses[lane++ % NODES].send(q, PAYLOAD),
                            () => completed(q)));
  for (const b of bosses)
    await b.offWork(q);

  /* Start latency: the poll interval decides it; 40 samples (each waits up
   * to 0.5 s). */
  q = await fresh();
  let started = null;
  for (let i = 0; i < WORKERS; i++)
    await bosses[i % NODES].work(q, { pollingIntervalSeconds: 0.5 },
                                 async () => { if (started) started(now()); });
  const lat = [];
  for (let i = 0; i < 40; i++) {
    const t = new Promise(r => { started = r; });
    const t0 = now();
    await boss.send(q, PAYLOAD);
    lat.push((await t) - t0);
  }
  const [p50, p99] = percentiles(lat);
  say('latency-p50', p50.toFixed(3));
  say('latency-p99', p99.toFixed(3));
  await db.end();
  for (const b of bosses)
    await b.stop({ graceful: false, wait: true });
}

(peer === 'graphile' ? graphile() : peer === 'pgboss' ? pgboss()
  : Promise.reject(new Error('usage: node pg_peers.js graphile|pgboss URL SECONDS NODES')))
  .then(() => process.exit(0))
  .catch(e => { console.error(`${peer}: ${e.stack || e}`); process.exit(1); });
