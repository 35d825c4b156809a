// q1.mjs - graphile-worker beside the benchmark's Q1 (issue 19), in its own
// database of the bench's cluster (bench/lib/peers.py runs it):
//
//   node q1.mjs queue N     install graphile-worker's schema, queue N "noop"
//                           jobs whose payload is Q1's input ({"text": 1 KB})
//   node q1.mjs drain N S   4 workers (BENCH_Q1_CONCURRENCY), a no-op task, until
//                           N jobs are done or S seconds have passed
//
// Prints one JSON line. The drain reports jobs/s from the first job's start
// to the last job's completion (as Q1 does from started_at to completed_at)
// and its own CPU; PostgreSQL's CPU is measured by the bench. Logging is at
// warnings and errors only (graphile-worker logs every job at info by
// default): the peer gets the cheaper setting.
// Environment: DATABASE_URL, BENCH_BODY (the JSON body of S3, for the payload).
import { readFileSync } from 'node:fs';
import gw from 'graphile-worker';

const { run, makeWorkerUtils, Logger } = gw;
const [mode, nArg, secondsArg] = process.argv.slice(2);
const n = Number(nArg);
const connectionString = process.env.DATABASE_URL;
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`graphile-worker ${level}: ${message}`);
});

async function queue() {
  const payload = JSON.parse(readFileSync(process.env.BENCH_BODY, 'utf8'));
  const utils = await makeWorkerUtils({ connectionString, logger });
  try {
    await utils.migrate();
    for (let done = 0; done < n; done += 1000) {
      const specs = Array.from({ length: Math.min(1000, n - done) },
        () => ({ identifier: 'noop', payload }));
      await utils.addJobs(specs);
    }
  } finally {
    await utils.release();
  }
  console.log(JSON.stringify({ queued: n }));
}

async function drain() {
  const concurrency = Number(process.env.BENCH_Q1_CONCURRENCY) || 4;
  let first = null;
  let last = null;
  let completed = 0;
  let failed = 0;
  let finish;
  const ended = new Promise((resolve) => { finish = resolve; });
  const deadline = setTimeout(() => finish('timeout'), Number(secondsArg) * 1000);
  const runner = await run({
    connectionString, concurrency, logger, noHandleSignals: true,
    taskList: { noop: async () => {} },
  });
  runner.events.on('job:start', () => { first ??= performance.now(); });
  runner.events.on('job:success', () => { completed++; });
  runner.events.on('job:failed', () => { failed++; }); // failed for good
  runner.events.on('job:complete', () => {
    last = performance.now();
    if (completed + failed >= n) finish('drained');
  });
  const why = await ended;
  clearTimeout(deadline);
  await runner.stop();
  const cpu = process.cpuUsage();
  const seconds = first !== null && last !== null ? (last - first) / 1000 : 0;
  console.log(JSON.stringify({ why, completed, failed, seconds, concurrency,
    cpu_s: (cpu.user + cpu.system) / 1e6 }));
}

if (mode === 'queue') await queue();
else if (mode === 'drain') await drain();
else {
  console.error('usage: node q1.mjs queue N | drain N SECONDS');
  process.exitCode = 2;
}
