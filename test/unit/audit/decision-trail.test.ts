/**
 * The decision trail: one decision per request and per tunnel, sent to every sink (JSON lines,
 * buffer, subscribers, exitgate_decisions_total), tunnels completed by their close record, and the
 * bounded buffer behind GET /v1/decisions.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { DecisionTrail, type TrailEvent } from '../../../src/audit/decision-trail';
import { DecisionBuffer } from '../../../src/audit/decision-buffer';
import type { DecisionEvent } from '../../../src/audit/decision';
import type { HttpEntryJson, StreamAccessLogsMessageJson, TcpEntryJson } from '../../../src/audit/log-entry';
import { createLogger } from '../../../src/util/logger';
import { Metrics } from '../../../src/util/metrics';

interface Captured {
  label: string;
  http?: HttpEntryJson;
  tcp?: TcpEntryJson;
}
const captured = (JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'envoy-1.40-access-log-entries.json'), 'utf8')) as { entries: Captured[] }).entries;
const byLabel = (label: string) => captured.filter((c) => c.label === label);
const message = (cs: Captured[]): StreamAccessLogsMessageJson =>
  cs[0]!.tcp ? { tcpLogs: { logEntry: cs.map((c) => c.tcp!) } } : { httpLogs: { logEntry: cs.map((c) => c.http!) } };
const SOURCE = { node: { tenant: 'acme', agent: 'coder', instance: 'e2e-1' }, logName: 'exitgate/egress/http' };

function setup(opts: { capacity?: number; maxOpenTunnels?: number } = {}) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const metrics = new Metrics();
  const trail = new DecisionTrail({ log: createLogger({ level: 'info', destination: sink }), metrics, ...opts });
  const events: TrailEvent[] = [];
  trail.subscribe((e) => events.push(e));
  return { trail, lines, metrics, events };
}

async function counted(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.decisions.get()).values) out[`${v.labels.tenant}/${v.labels.agent}/${v.labels.verdict}`] = v.value;
  return out;
}

describe('DecisionTrail', () => {
  it('turns every captured request into exactly one decision, in every sink', async () => {
    const { trail, lines, metrics, events } = setup();
    const labels = [...new Set(captured.map((c) => c.label))].filter((l) => l !== 'no-filter-chain');
    for (const label of labels) trail.receive(SOURCE, message(byLabel(label)));
    trail.receive({ ...SOURCE, logName: 'exitgate/egress/listener' }, message(byLabel('no-filter-chain')));

    const all = trail.recent({}, 1000);
    expect(all).toHaveLength(labels.length + 1);
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => b - a)); // newest first
    expect(events.filter((e) => e.type === 'decision')).toHaveLength(labels.length + 1);
    // Two tunnels were established and closed: each closed once, completing its decision.
    expect(events.filter((e) => e.type === 'tunnel-closed')).toHaveLength(2);
    expect(all.filter((e) => e.tunnel === 'closed')).toHaveLength(2);
    expect(all.filter((e) => e.tunnel === 'open')).toHaveLength(0);

    expect(lines.filter((l) => l.msg === 'decision')).toHaveLength(labels.length + 1);
    expect(lines.filter((l) => l.msg === 'tunnel closed')).toHaveLength(2);
    for (const l of lines) expect(l.module === undefined || typeof l.module === 'string').toBe(true);
    expect(JSON.stringify(lines)).not.toMatch(/s3cr3t/);

    const allow = all.filter((e) => e.verdict === 'allow').length;
    const deny = all.filter((e) => e.verdict === 'deny').length;
    expect(await counted(metrics)).toEqual({ 'acme/coder/allow': allow, 'acme/coder/deny': deny });
    expect(allow + deny).toBe(all.length);
  });

  it('completes an open tunnel with its close record, in the buffer, without counting it again', async () => {
    const { trail, lines, metrics, events } = setup();
    const [open, close] = byLabel('connect-tls-get');
    trail.receive(SOURCE, message([open!]));
    const [decision] = trail.recent({}, 10);
    expect(decision).toMatchObject({ verdict: 'allow', tunnel: 'open', bytesReceived: 0 });
    trail.receive(SOURCE, message([close!]));
    expect(trail.recent({}, 10)).toEqual([{ ...decision, tunnel: 'closed', bytesSent: expect.any(Number), bytesReceived: expect.any(Number), durationMs: expect.any(Number) }]);
    const closedEvent = events.find((e) => e.type === 'tunnel-closed')!;
    expect(closedEvent.event).toMatchObject({ id: decision!.id, tenant: 'acme', agent: 'coder', instance: 'e2e-1', verdict: 'allow' });
    expect(closedEvent.event.bytesReceived).toBeGreaterThan(1000);
    expect(lines.map((l) => l.msg)).toEqual(['decision', 'tunnel closed']);
    expect((lines[1]!.tunnelClosed as { id: number }).id).toBe(decision!.id);
    expect(await counted(metrics)).toEqual({ 'acme/coder/allow': 1 });
    const entries = (await metrics.accessLogEntries.get()).values.map((v) => [v.labels.outcome, v.value]);
    expect(Object.fromEntries(entries)).toEqual({ decision: 1, 'tunnel-closed': 1 });
  });

  it('a dry-run tunnel (would-deny) closes with its verdict', () => {
    const { trail, events } = setup();
    const [open, close] = byLabel('tunnel-bytes').map((c) => structuredClone(c));
    for (const c of [open!, close!]) c.http!.commonProperties!.routeName = 'would-deny/default-deny';
    trail.receive(SOURCE, message([open!, close!]));
    expect(trail.recent({}, 10)).toEqual([expect.objectContaining({ verdict: 'would-deny', reason: 'no rule matches', tunnel: 'closed' })]);
    expect(events.map((e) => [e.type, e.event.verdict])).toEqual([
      ['decision', 'would-deny'],
      ['tunnel-closed', 'would-deny'],
    ]);
  });

  it('a close record whose tunnel it never saw opened is the decision (control plane restarted meanwhile)', async () => {
    const { trail, metrics } = setup();
    trail.receive(SOURCE, message([byLabel('tunnel-bytes')[1]!]));
    expect(trail.recent({}, 10)).toEqual([expect.objectContaining({ verdict: 'allow', tunnel: 'closed', bytesSent: 78 })]);
    expect(await counted(metrics)).toEqual({ 'acme/coder/allow': 1 });
  });

  it('tunnels are told apart by node: the same Envoy stream id from two instances is two tunnels', () => {
    const { trail } = setup();
    const [open, close] = byLabel('tunnel-bytes');
    const other = { ...SOURCE, node: { ...SOURCE.node, instance: 'e2e-2' } };
    trail.receive(SOURCE, message([open!]));
    trail.receive(other, message([open!]));
    trail.receive(SOURCE, message([close!]));
    const [second, first] = trail.recent({}, 10);
    expect([first!.instance, first!.tunnel]).toEqual(['e2e-1', 'closed']);
    expect([second!.instance, second!.tunnel]).toEqual(['e2e-2', 'open']);
  });

  it('forgets the oldest open tunnel beyond its bound (its close then counts as a decision)', () => {
    const { trail } = setup({ maxOpenTunnels: 1 });
    const [openA, closeA] = byLabel('tunnel-bytes');
    const [openB] = byLabel('connect-tls-get');
    trail.receive(SOURCE, message([openA!, openB!, closeA!]));
    expect(trail.recent({}, 10).map((e) => e.tunnel)).toEqual(['closed', 'open', 'open']);
  });

  it('filters by tenant, agent and verdict, newest first, up to a limit', () => {
    const { trail } = setup();
    trail.receive(SOURCE, message(byLabel('deny-unlisted-connect')));
    trail.receive({ ...SOURCE, node: { tenant: 'globex', agent: 'coder', instance: 'g' } }, message(byLabel('http-get-with-query')));
    trail.receive({ ...SOURCE, node: { tenant: 'acme', agent: 'other', instance: 'o' } }, message(byLabel('http-get-with-query')));
    expect(trail.recent({ tenant: 'acme' }, 10).map((e) => e.agent)).toEqual(['other', 'coder']);
    expect(trail.recent({ tenant: 'acme', agent: 'coder' }, 10)).toHaveLength(1);
    expect(trail.recent({ verdict: 'allow' }, 10).map((e) => e.tenant)).toEqual(['acme', 'globex']);
    expect(trail.recent({}, 2)).toHaveLength(2);
    expect(trail.after(1, { tenant: 'acme' }).map((e) => e.id)).toEqual([3]);
  });

  it('a subscriber that throws does not stop the others', () => {
    const { trail, events } = setup();
    trail.subscribe(() => {
      throw new Error('closed socket');
    });
    trail.receive(SOURCE, message(byLabel('deny-unlisted-connect')));
    expect(events).toHaveLength(1);
  });
});

describe('DecisionBuffer', () => {
  const ev = (id: number): DecisionEvent => ({ id, time: '', tenant: 't', agent: 'a', instance: 'i', host: 'h', port: 1, verdict: 'allow', reason: '', bytesSent: 0, bytesReceived: 0, durationMs: 0 });

  it('keeps the newest `capacity` events, addressable by id', () => {
    const b = new DecisionBuffer(3);
    expect(b.newest({}, 10)).toEqual([]);
    for (let id = 1; id <= 5; id++) b.push(ev(id));
    expect(b.size).toBe(3);
    expect(b.newest({}, 10).map((e) => e.id)).toEqual([5, 4, 3]);
    expect(b.get(2)).toBeUndefined();
    expect(b.get(4)?.id).toBe(4);
    expect(b.after(0, {}).map((e) => e.id)).toEqual([3, 4, 5]);
    expect(b.after(4, {}).map((e) => e.id)).toEqual([5]);
    expect(b.replace({ ...ev(2), host: 'x' })).toBe(false);
    expect(b.replace({ ...ev(4), host: 'x' })).toBe(true);
    expect(b.get(4)?.host).toBe('x');
  });

  it('refuses ids out of sequence and nonsense capacities', () => {
    const b = new DecisionBuffer(2);
    b.push(ev(7));
    expect(() => b.push(ev(9))).toThrow(/pushed after 7/);
    expect(() => new DecisionBuffer(0)).toThrow();
  });

  it('holds 10,000 by default and stays bounded', () => {
    const b = new DecisionBuffer();
    for (let id = 1; id <= 25_000; id++) b.push(ev(id));
    expect(b.size).toBe(10_000);
    expect(b.newest({}, 1)[0]!.id).toBe(25_000);
    expect(b.after(0, {})[0]!.id).toBe(15_001);
  });
});
