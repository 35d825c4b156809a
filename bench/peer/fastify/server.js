// server.js - the benchmark's reference peer (issue 19): S1-S3 of NexusAPI
// written as a Node developer would write them with Fastify and pg, on
// NexusAPI's own database, so "req/s against the best Node stack" is
// measured in the same run as NexusAPI (bench/lib/peers.py starts it).
//
//   GET  /health                 SELECT 1 on the pool, a good answer kept 1 s
//   GET  /api/v1/users?limit=20  tenant transaction: nx_tenant_begin, api_users_list
//   POST /api/v1/summarise       tenant transaction: nx_tenant_begin, jobs_create
//
// The SQL is NexusAPI's own, read from src/ by the bench at run time
// (PEER_SQL, a JSON file), so the two cannot drift apart; the bench also
// checks that this server answers what NexusAPI answers before it measures
// it. Each request runs BEGIN, the tenant statement, the handler's
// statement and COMMIT on one pooled connection, as named (prepared)
// statements: node-postgres has no pipelining, so that is four round trips
// where NexusAPI sends one pipeline.
//
// node:cluster, one worker per core (PEER_WORKERS), a pg Pool of
// PEER_POOL_SIZE connections per worker logged in as the owner with role
// nexus_app and kept open, like the server's. No access log (Fastify's
// default).
// Environment: PORT, DATABASE_URL, JWT_SECRET_KEY, PEER_SQL, PEER_WORKERS,
// PEER_POOL_SIZE, PEER_ROLE (default nexus_app).
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import Fastify from 'fastify';
import pg from 'pg';
import { createVerifier } from 'fast-jwt';

const env = process.env;

if (cluster.isPrimary) {
  const workers = Number(env.PEER_WORKERS) || availableParallelism();
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 2000).unref();
  };
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code, signal) => {
    if (!stopping) {
      console.error(`worker ${w.process.pid} exited (${signal || code}); stopping`);
      stop();
      process.exitCode = 1;
    }
    if (Object.keys(cluster.workers).length === 0) process.exit();
  });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // whoever started us is gone: stop by ourselves
  const parent = process.ppid;
  setInterval(() => { if (process.ppid !== parent) stop(); }, 1000).unref();
} else {
  await serve();
}

function problem(reply, status, title, detail) {
  return reply.code(status).type('application/problem+json')
    .send({ type: `/problems/${title.toLowerCase().replace(/ /g, '-')}`, title, status, detail });
}

// The cursor names its list as NexusAPI's does: the low 32 bits of the
// FNV-1a-style hash of the route pattern (src/api/common.c, nx_hash_bytes in
// src/core/util.c, whose offset basis is 1469598103934665603).
function listTag(route) {
  let h = 1469598103934665603n;
  for (const b of Buffer.from(route)) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return (h & 0xffffffffn).toString(16).padStart(8, '0');
}

async function serve() {
  const conf = JSON.parse(readFileSync(env.PEER_SQL, 'utf8'));
  const sql = conf.statements;
  const pool = new pg.Pool({
    connectionString: env.DATABASE_URL,
    options: `-c role=${env.PEER_ROLE || 'nexus_app'}`,
    max: Number(env.PEER_POOL_SIZE) || 8,
    idleTimeoutMillis: 0, // keep idle connections, as the server keeps its own
  });
  const verify = createVerifier({
    key: env.JWT_SECRET_KEY,
    algorithms: ['HS256'],
    allowedIss: 'nexusapi',
    checkTyp: 'at+jwt',
    requiredClaims: ['sub', 'org_id', 'role', 'exp', 'iat', 'jti'],
    clockTolerance: 30000,
  });
  const usersTag = listTag('/api/v1/users');
  const app = Fastify({ logger: false });

  // the caller: a verified access token naming a user of an organisation
  app.decorateRequest('claims', null);
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  app.addHook('onRequest', async (req, reply) => {
    const route = req.routeOptions.url;
    if (!route || route === '/health') return;
    const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
    let c;
    try {
      c = verify(m ? m[1] : '');
    } catch {
      c = null;
    }
    if (!c || !uuid.test(c.sub) || !uuid.test(c.org_id) || !['admin', 'member'].includes(c.role))
      return problem(reply, 401, 'Unauthorized', 'A valid access token is required.');
    req.claims = c;
  });

  // BEGIN, the tenant (sets nexus.org_id, checks membership), one statement, COMMIT
  async function inTenant(claims, stmt, values) {
    const client = await pool.connect();
    let broken;
    try {
      await client.query('BEGIN');
      await client.query({ name: 'nx_tenant_begin', text: sql.nx_tenant_begin,
        values: [claims.org_id, claims.sub, 'member'] });
      const r = await client.query({ name: stmt, text: sql[stmt], values, rowMode: 'array' });
      await client.query('COMMIT');
      return r.rows;
    } catch (e) {
      await client.query('ROLLBACK').catch((err) => { broken = err; });
      throw e;
    } finally {
      client.release(broken);
    }
  }

  app.setErrorHandler((e, req, reply) => {
    if (e.validation) return problem(reply, 422, 'Validation failed', e.message);
    if (e.code === '28000') return problem(reply, 401, 'Unauthorized', 'The user is not a member of the organisation.');
    if (e.code === '42501') return problem(reply, 403, 'Forbidden', 'This needs another role.');
    if (e.statusCode >= 400 && e.statusCode < 500) return problem(reply, e.statusCode, 'Bad request', e.message);
    console.error(`${req.method} ${req.url}: ${e.message}`);
    return problem(reply, 503, 'Service unavailable', 'Try again later.');
  });

  let okUntil = 0;
  app.get('/health', async (req, reply) => {
    const now = performance.now();
    let ok = okUntil > now;
    if (!ok) {
      ok = await pool.query('SELECT 1').then(() => true, () => false);
      okUntil = ok ? now + 1000 : 0;
    }
    reply.code(ok ? 200 : 503).header('cache-control', 'no-store');
    return { status: ok ? 'ok' : 'degraded', database: ok ? 'ok' : 'unavailable', version: conf.version };
  });

  app.get('/api/v1/users', {
    schema: {
      querystring: {
        type: 'object',
        properties: {
          limit: { type: 'integer', minimum: 1, maximum: conf.page_max, default: conf.page_default },
          cursor: { type: 'string', pattern: `^${usersTag}_[0-9]{1,19}_[0-9a-f-]{36}$` },
        },
      },
    },
  }, async (req, reply) => {
    const { limit, cursor } = req.query;
    const [, us, id] = cursor ? cursor.split('_') : [];
    const rows = await inTenant(req.claims, 'api_users_list',
      [req.claims.org_id, us ?? null, id ?? null, limit + 1]);
    const shown = rows.slice(0, limit);
    const last = shown[shown.length - 1];
    // plain columns, as NexusAPI reads them (columns 1 and 2: the cursor)
    const items = shown.map((r) => ({
      id: r[2], organisation_id: r[3], email: r[4], name: r[5], role: r[6],
      avatar_url: r[7], created_at: r[0], updated_at: r[8],
    }));
    return {
      items,
      next_cursor: rows.length > limit ? `${usersTag}_${last[1]}_${last[2]}` : null,
    };
  });

  app.post('/api/v1/summarise', {
    schema: {
      body: {
        type: 'object',
        required: ['text'],
        properties: { text: { type: 'string', minLength: 1, maxLength: conf.text_max } },
      },
    },
  }, async (req, reply) => {
    const { text } = req.body;
    if (text.includes('\0')) return problem(reply, 422, 'Validation failed', 'text must not contain NUL characters');
    const rows = await inTenant(req.claims, 'jobs_create',
      [req.claims.org_id, conf.cost_summarise, 'summarise', conf.max_attempts, text, '{}', 1,
        null, conf.credits_low, null, null, null]);
    if (rows.length !== 1) return problem(reply, 402, 'Payment required', "The organisation's credit balance is too low for this job.");
    reply.code(202).header('location', `/api/v1/jobs/${rows[0][0]}`).type('application/json');
    return rows[0][1];
  });

  process.on('SIGTERM', () => app.close().then(() => pool.end()).finally(() => process.exit(0)));
  await app.listen({ host: '127.0.0.1', port: Number(env.PORT) });
}
