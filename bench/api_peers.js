/*
 * api_peers.js - the peers of bench/api, driven by their own Node.js
 * clients at their best: BullMQ on Redis (appendfsync always) and pg-boss
 * 10 on PostgreSQL 15 (synchronous_commit on). Both are durable, like
 * outboxd's 202.
 *
 *   node api_peers.js bullmq REDIS_PORT SECONDS
 *   node api_peers.js pgboss POSTGRES_URL SECONDS
 *
 * Each enqueue mode runs for SECONDS on a fresh queue, with the same
 * ~300-byte job as bench/post_job.lua; the life cycle adds jobs in bulk for
 * SECONDS while workers run, then waits (at most 120 s) until every added
 * job is completed. Like for like with outboxd's http.request jobs, each
 * worker makes the request its job describes: a POST of its body to
 * OB_HOOK_URL (nginx's `return 200` in bench/api), over kept-alive
 * connections as libcurl's. Prints one line per measure: "PEER MODE JOBS/S".
 * Run by bench/api, which installs the packages (NODE_PATH points at them).
 */
'use strict';

const [, , peer, where, secsArg] = process.argv;
const SECS = Number(secsArg || 10);
const DATA = {
  method: 'POST',
  url: 'http://127.0.0.1:9/hook',
  headers: { 'Content-Type': 'text/plain' },
  body: 'x'.repeat(165), /* the job is about 300 bytes, as in post_job.lua */
};
const BULK = 100;
const HOOK = new URL(process.env.OB_HOOK_URL || DATA.url);
const agent = new (require('http').Agent)({ keepAlive: true, maxSockets: 64 });

/* What an http.request job does: its POST, answered 2xx, or a failure. */
function hook(data) {
  return new Promise((resolve, reject) => {
    const req = require('http').request(
      { host: HOOK.hostname, port: HOOK.port, path: HOOK.pathname, method: data.method,
        headers: data.headers, agent },
      res => {
        res.resume();
        res.on('end', () => (res.statusCode < 300 ? resolve() : reject(new Error(`${res.statusCode}`))));
      });
    req.on('error', reject);
    req.end(data.body);
  });
}

const now = () => performance.now() / 1000;

/* Run `lanes` loops of `step` (each step adds `per` jobs) for SECS:
 * the number of jobs added. */
async function add(lanes, per, step) {
  let n = 0;
  const end = now() + SECS;
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (now() < end) {
      await step();
      n += per;
    }
  }));
  return n;
}

/* The same, as jobs added per second. */
async function drive(lanes, per, step) {
  const t0 = now(), n = await add(lanes, per, step);
  return n / (now() - t0);
}

async function untilDone(count, total, t0) {
  const deadline = now() + 120;
  while ((await count()) < total) {
    if (now() > deadline)
      throw new Error(`only ${await count()} of ${total} jobs completed in 120 s`);
    await new Promise(r => setTimeout(r, 20));
  }
  return total / (now() - t0);
}

function say(mode, rate) {
  console.log(`${peer} ${mode} ${rate.toFixed(0)}`);
}

async function bullmq(port) {
  const { Queue, Worker } = require('bullmq');
  const connection = { host: '127.0.0.1', port: Number(port) };
  let k = 0;
  const fresh = () => new Queue(`bench-${process.pid}-${k++}`, { connection });
  const bulk = () => Array.from({ length: BULK }, () => ({ name: 'job', data: DATA }));

  let q = fresh();
  say('add-1', await drive(1, 1, () => q.add('job', DATA)));
  await q.close();
  q = fresh();
  say('add-64', await drive(64, 1, () => q.add('job', DATA)));
  await q.close();
  q = fresh();
  say('addBulk-100', await drive(1, BULK, () => q.addBulk(bulk())));
  await q.close();
  q = fresh();
  say('addBulk-100x4', await drive(4, BULK, () => q.addBulk(bulk())));
  await q.close();

  q = fresh();
  let done = 0;
  const w = new Worker(q.name, job => hook(job.data), { connection, concurrency: 64 });
  w.on('completed', () => done++);
  await w.waitUntilReady();
  const t0 = now();
  const added = await add(4, BULK, () => q.addBulk(bulk()));
  say('lifecycle', await untilDone(async () => done, added, t0));
  await w.close();
  await q.close();
}

async function pgboss(url) {
  const PgBoss = require('pg-boss');
  const { Client } = require('pg');
  const boss = new PgBoss({ connectionString: url, max: 20 });
  boss.on('error', e => console.error(`pg-boss: ${e.message}`));
  await boss.start();
  let k = 0;
  const fresh = async () => {
    const name = `bench-${process.pid}-${k++}`;
    await boss.createQueue(name);
    return name;
  };
  const bulk = name => Array.from({ length: BULK }, () => ({ name, data: DATA }));

  let q = await fresh();
  say('send-1', await drive(1, 1, () => boss.send(q, DATA)));
  q = await fresh();
  say('send-64', await drive(64, 1, () => boss.send(q, DATA)));
  q = await fresh();
  say('insert-100', await drive(1, BULK, () => boss.insert(bulk(q))));
  q = await fresh();
  say('insert-100x4', await drive(4, BULK, () => boss.insert(bulk(q))));

  /* Workers poll (0.5 s at the least) and take batches: four workers of
   * 250 jobs each keep up with the inserts on this machine. */
  q = await fresh();
  for (let i = 0; i < 4; i++)
    await boss.work(q, { batchSize: 250, pollingIntervalSeconds: 0.5 },
                    jobs => Promise.all(jobs.map(j => hook(j.data))));
  const db = new Client({ connectionString: url });
  await db.connect();
  const completed = async () => Number((await db.query(
    "select count(*) from pgboss.job where name = $1 and state = 'completed'", [q])).rows[0].count);
  const t0 = now();
  const added = await add(4, BULK, () => boss.insert(bulk(q)));
  say('lifecycle', await untilDone(completed, added, t0));
  await db.end();
  await boss.stop({ graceful: false, wait: true });
}

(peer === 'bullmq' ? bullmq(where) : peer === 'pgboss' ? pgboss(where)
  : Promise.reject(new Error('usage: node api_peers.js bullmq PORT SECS | pgboss URL SECS')))
  .then(() => process.exit(0))
  .catch(e => { console.error(`${peer}: ${e.stack || e}`); process.exit(1); });
