/**
 * GET /v1/decisions and GET /v1/decisions/stream on a real admin HTTP server: newest first,
 * filters and limits, tenant tokens confined to their tenant, server-sent events live and resumed
 * with Last-Event-ID, tunnel close records, and the decision counter at /metrics.
 */
import * as http from 'node:http';
import { AdminServer } from '../../../src/admin/server';
import { DecisionTrail } from '../../../src/audit/decision-trail';
import type { DecisionDraft } from '../../../src/audit/decision';
import { NodeRegistry } from '../../../src/xds/node-registry';
import { silentLogger } from '../../../src/util/logger';
import { Metrics } from '../../../src/util/metrics';
import type { AdminDeps } from '../../../src/admin/server';
import { openSse } from '../../support/sse-client';

const ADMIN = 'admin-token-0123456789';
const ACME = 'acme-token-0123456789';

const draft = (tenant: string, agent: string, verdict: 'allow' | 'deny', extra: Partial<DecisionDraft> = {}): DecisionDraft => ({
  time: '2026-01-01T00:00:00.000Z',
  tenant,
  agent,
  instance: 'i-1',
  host: 'api.example.test',
  port: 443,
  method: 'CONNECT',
  verdict,
  reason: verdict === 'allow' ? 'allowed by p/r' : 'no rule matches',
  ...(verdict === 'allow' ? { policy: 'p', rule: 'r' } : {}),
  bytesSent: 10,
  bytesReceived: 20,
  durationMs: 1,
  ...extra,
});

function get(port: number, path: string, token?: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
  });
}

const openStream = (port: number, path: string, token: string, headers: http.OutgoingHttpHeaders = {}) =>
  openSse({ host: '127.0.0.1', port }, path, { authorization: `Bearer ${token}`, ...headers });

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('admin API: decisions', () => {
  let admin: AdminServer;
  let port: number;
  let trail: DecisionTrail;
  let metrics: Metrics;

  beforeAll(async () => {
    metrics = new Metrics();
    trail = new DecisionTrail({ log: silentLogger(), metrics, capacity: 50 });
    const deps: AdminDeps = {
      log: silentLogger(),
      metrics,
      registry: new NodeRegistry({ graceMs: 0 }),
      ready: () => true,
      effective: () => {
        throw new Error('not used');
      },
      store: {} as AdminDeps['store'],
      decisions: trail,
      tokens: { admin: [ADMIN], tenants: { acme: [ACME] } },
    };
    admin = new AdminServer(deps);
    port = await admin.listen('127.0.0.1', 0);
    trail.record(draft('acme', 'coder', 'allow'));
    trail.record(draft('globex', 'coder', 'deny'));
    trail.record(draft('acme', 'other', 'deny'));
  });

  afterAll(async () => {
    await admin.close();
  });

  it('lists newest first; an admin sees every tenant', async () => {
    const r = await get(port, '/v1/decisions', ADMIN);
    expect(r.status).toBe(200);
    const list = JSON.parse(r.body) as Array<{ id: number; tenant: string }>;
    expect(list.map((d) => [d.id, d.tenant])).toEqual([
      [3, 'acme'],
      [2, 'globex'],
      [1, 'acme'],
    ]);
  });

  it('filters by tenant, agent and verdict, and limits', async () => {
    const ids = async (q: string) => (JSON.parse((await get(port, `/v1/decisions${q}`, ADMIN)).body) as Array<{ id: number }>).map((d) => d.id);
    expect(await ids('?tenant=acme')).toEqual([3, 1]);
    expect(await ids('?tenant=acme&agent=coder')).toEqual([1]);
    expect(await ids('?verdict=deny')).toEqual([3, 2]);
    expect(await ids('?limit=1')).toEqual([3]);
    expect(await ids('?limit=1000000')).toEqual([3, 2, 1]);
  });

  it.each([
    ['?limit=0', /limit must be an integer from 1 to 50/],
    ['?limit=x', /limit/],
    ['?verdict=maybe', /verdict must be one of allow, deny, would-deny/],
    ['?tenant=Not_A_Label', /not a DNS label/],
  ])('%s is a 400', async (q, message) => {
    const r = await get(port, `/v1/decisions${q}`, ADMIN);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).error).toMatch(message);
  });

  it('a tenant token sees only its tenant, and may not ask for another', async () => {
    const mine = JSON.parse((await get(port, '/v1/decisions', ACME)).body) as Array<{ tenant: string }>;
    expect(mine.map((d) => d.tenant)).toEqual(['acme', 'acme']);
    expect((await get(port, '/v1/decisions?tenant=acme', ACME)).status).toBe(200);
    const other = await get(port, '/v1/decisions?tenant=globex', ACME);
    expect(other.status).toBe(403);
    expect((await get(port, '/v1/decisions/stream?tenant=globex', ACME)).status).toBe(403);
  });

  it('needs a token', async () => {
    expect((await get(port, '/v1/decisions')).status).toBe(401);
    expect((await get(port, '/v1/decisions', 'wrong-token-0123456789')).status).toBe(401);
    expect((await get(port, '/v1/decisions/stream')).status).toBe(401);
  });

  it('streams new decisions as server-sent events, filtered for a tenant token', async () => {
    const s = openStream(port, '/v1/decisions/stream', ACME);
    await s.ready;
    expect(s.status).toBe(200);
    expect(s.contentType).toMatch(/^text\/event-stream/);
    trail.record(draft('globex', 'coder', 'allow'));
    const mine = trail.record(draft('acme', 'coder', 'allow', { tunnel: 'open' }));
    trail.apply({ kind: 'tunnel-end', tunnelKey: 'unknown', decision: draft('acme', 'coder', 'allow', { tunnel: 'closed' }) }); // a close never seen opened: a decision
    await until(() => s.events.length >= 2);
    expect(s.events.map((e) => [e.event, e.data.tenant])).toEqual([
      ['decision', 'acme'],
      ['decision', 'acme'],
    ]);
    expect(s.events[0]!.id).toBe(`${trail.epoch}.${mine.id}`);
    expect(s.events[0]!.data).toMatchObject({ id: mine.id, verdict: 'allow', tunnel: 'open' });
    s.close();
  });

  it('resumes after Last-Event-ID with the buffered decisions, then goes live', async () => {
    const before = (JSON.parse((await get(port, '/v1/decisions?limit=1', ADMIN)).body) as Array<{ id: number }>)[0]!.id;
    const s = openStream(port, '/v1/decisions/stream', ADMIN, { 'last-event-id': `${trail.epoch}.${before - 2}` });
    await s.ready;
    await until(() => s.events.length >= 2);
    expect(s.events.map((e) => e.id)).toEqual([`${trail.epoch}.${before - 1}`, `${trail.epoch}.${before}`]);
    const next = trail.record(draft('acme', 'coder', 'deny'));
    await until(() => s.events.length >= 3);
    expect(s.events[2]).toMatchObject({ id: `${trail.epoch}.${next.id}`, event: 'decision', data: { verdict: 'deny' } });
    s.close();
    const since = openStream(port, `/v1/decisions/stream?since=${next.id - 1}`, ADMIN);
    await until(() => since.events.length >= 1);
    expect(since.events.map((e) => e.data.id)).toEqual([next.id]);
    since.close();
    expect((await get(port, '/v1/decisions/stream?since=abc', ADMIN)).status).toBe(400);
    expect((await get(port, '/v1/decisions/stream', ADMIN, { 'last-event-id': '17' })).status).toBe(400);
  });

  it('a Last-Event-ID from an earlier control plane process replays every buffered decision', async () => {
    const all = JSON.parse((await get(port, '/v1/decisions?tenant=globex', ADMIN)).body) as Array<{ id: number }>;
    const s = openStream(port, '/v1/decisions/stream?tenant=globex', ADMIN, { 'last-event-id': `0.${all[0]!.id + 1000}` });
    await until(() => s.events.length >= all.length);
    expect(s.events.map((e) => e.data.id)).toEqual(all.map((d) => d.id).reverse());
    s.close();
  });

  it('sends a tunnel-closed event when an open tunnel closes, and the list shows it completed', async () => {
    const s = openStream(port, '/v1/decisions/stream?agent=tunnels', ADMIN);
    await s.ready;
    trail.apply({ kind: 'decision', tunnelKey: 'acme/tunnels/i-1#s1', decision: draft('acme', 'tunnels', 'allow', { tunnel: 'open', bytesSent: 73, bytesReceived: 0 }) });
    trail.apply({ kind: 'tunnel-end', tunnelKey: 'acme/tunnels/i-1#s1', decision: draft('acme', 'tunnels', 'allow', { tunnel: 'closed', bytesSent: 650, bytesReceived: 1834, durationMs: 9.7 }) });
    await until(() => s.events.length >= 2);
    const [opened, closed] = s.events;
    expect(opened).toMatchObject({ event: 'decision', data: { tunnel: 'open', bytesSent: 73 } });
    expect(closed).toMatchObject({ event: 'tunnel-closed', data: { id: opened!.data.id, bytesSent: 650, bytesReceived: 1834, durationMs: 9.7 } });
    expect(closed!.id).toBeUndefined();
    const listed = JSON.parse((await get(port, '/v1/decisions?agent=tunnels', ADMIN)).body) as unknown[];
    expect(listed).toEqual([expect.objectContaining({ id: opened!.data.id, tunnel: 'closed', bytesSent: 650, bytesReceived: 1834 })]);
    s.close();
  });

  it('counts decisions at /metrics beside the xDS metrics', async () => {
    const r = await get(port, '/metrics', ADMIN);
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/exitgate_decisions_total\{tenant="globex",agent="coder",verdict="deny"\} 1/);
    expect(r.body).toMatch(/exitgate_decisions_total\{tenant="acme",agent="coder",verdict="allow"\} \d+/);
    for (const name of ['exitgate_xds_connected_nodes', 'exitgate_xds_pushes_total', 'exitgate_xds_acks_total', 'exitgate_xds_nacks_total', 'exitgate_xds_push_ack_seconds', 'exitgate_access_log_streams']) {
      expect(r.body).toContain(`# TYPE ${name}`);
    }
    expect((await get(port, '/metrics', ACME)).status).toBe(403);
  });

  it('closing the server ends open streams', async () => {
    const extra = new AdminServer({
      log: silentLogger(),
      metrics: new Metrics(),
      registry: new NodeRegistry({ graceMs: 0 }),
      ready: () => true,
      effective: () => {
        throw new Error('not used');
      },
      store: {} as AdminDeps['store'],
      decisions: trail,
      tokens: { admin: [ADMIN], tenants: {} },
    });
    const p = await extra.listen('127.0.0.1', 0);
    const s = openStream(p, '/v1/decisions/stream', ADMIN);
    await s.ready;
    await extra.close();
    await s.closed;
  });
});
