/**
 * The decision trail end to end (SPEC §5), with the real Envoy 1.40 over mTLS, real upstreams and a
 * real DNS server (loopback only, see demo/world.ts):
 * - every request of a mixed run (an allowed TLS CONNECT, allowed plain HTTP, a deny rule, an
 *   unlisted host, a wrong port, IP literals, DNS rebinding the guard stops) yields exactly one
 *   decision with the right verdict, policy, rule and reason, in GET /v1/decisions, its SSE stream,
 *   the JSON log lines and exitgate_decisions_total;
 * - a dry-run agent's would-be denials go through and are recorded as would-deny;
 * - the entries Envoy sends still map as the recorded fixture the unit tests use
 *   (test/unit/audit/fixtures; `UPDATE_ALS_FIXTURE=1` re-records it);
 * - with the control plane down Envoy keeps enforcing; after a restart its access log stream
 *   reconnects and decisions arrive again. Decisions made while the control plane was down are
 *   lost: Envoy buffers at most `buffer_size_bytes` per worker and drops entries it cannot send.
 */
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { startWorld, TLS_UPSTREAM_IP, HTTP_UPSTREAM_IP, type World, type Sidecar } from '../../src/demo/world';
import { connectThroughProxy, httpsViaConnect, httpViaProxy } from '../../src/demo/proxy-client';
import { startTcpTrap, type TcpTrap } from '../../src/demo/upstreams';
import { startEnvoy } from '../../src/envoy/process';
import { locateEnvoy } from '../../src/envoy/locate';
import { bootstrapConfig } from '../../src/envoy/bootstrap';
import { issueNodeCert } from '../../src/identity/certs';
import { freePort } from '../../src/demo/free-port';
import { listenerAccessLog } from '../../src/translate/filters/access-log';
import { GUARD_REASON, mapHttpEntry, mapTcpEntry, type DecisionDraft, type DecisionEvent, type MappedEntry } from '../../src/audit/decision';
import type { HttpEntryJson, TcpEntryJson } from '../../src/audit/log-entry';
import { createLogger } from '../../src/util/logger';
import { openSse, type SseStream } from '../support/sse-client';

const NODE = { tenant: 'acme', agent: 'coder', instance: 'e2e-1' };
const FIXTURE = path.resolve(__dirname, '..', 'unit', 'audit', 'fixtures', 'envoy-1.40-access-log-entries.json');
const UPDATE_FIXTURE = process.env.UPDATE_ALS_FIXTURE === '1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Captured {
  label: string;
  logName: string;
  node: string;
  http?: HttpEntryJson;
  tcp?: TcpEntryJson;
}

interface Fixture {
  _comment: string;
  ports: Record<string, number>;
  entries: Captured[];
}

function policyYaml(p: { tls: number; http: number; trap: number }): string {
  return `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: coding, tenant: acme }
spec:
  agents: ["coder"]
  allow:
    - name: api
      hosts: ["api.allowed.test", "down.allowed.test"]
      ports: [${p.tls}]
    - name: plain
      hosts: ["plain.allowed.test"]
      ports: [${p.http}]
    - name: rebind
      hosts: ["rebind.allowed.test", "nx.allowed.test"]
      ports: [${p.trap}]
  deny:
    - name: no-evil
      hosts: ["evil.allowed.test"]
---
apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: trial, tenant: acme }
spec:
  agents: ["tryout"]
  mode: dry-run
  allow:
    - name: api
      hosts: ["api.allowed.test"]
      ports: [${p.tls}]
  deny:
    - name: no-evil
      hosts: ["evil.allowed.test"]
`;
}

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000, everyMs = 25): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

function adminGet(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** What identifies a request in its decision, whatever the order decisions arrive in. */
const keyOf = (d: { method?: string; host: string; port: number; path?: string }) => `${d.method ?? '-'} ${d.host}:${d.port}${d.path ?? ''}`;

describe('decision trail with a real Envoy (xDS delta, mTLS)', () => {
  let world: World;
  let sidecar: Sidecar;
  let trap: TcpTrap;
  let ports: { tls: number; http: number; trap: number };
  const logLines: Array<Record<string, unknown>> = [];
  const captured: Captured[] = [];
  let label = 'warm-up';

  const decisionsAfter = async (id: number): Promise<DecisionEvent[]> => {
    const r = await adminGet(world.cp.adminPort, '/v1/decisions?limit=10000');
    expect(r.status).toBe(200);
    return (JSON.parse(r.body) as DecisionEvent[]).filter((d) => d.id > id).reverse();
  };
  const lastId = async (): Promise<number> => (JSON.parse((await adminGet(world.cp.adminPort, '/v1/decisions?limit=1')).body) as DecisionEvent[])[0]?.id ?? 0;
  const counter = async (verdict: string): Promise<number> => {
    const text = (await adminGet(world.cp.adminPort, '/metrics')).body;
    const m = new RegExp(`^exitgate_decisions_total\\{tenant="acme",agent="coder",verdict="${verdict}"\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };

  beforeAll(async () => {
    const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-decisions-'));
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) logLines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    world = await startWorld({
      workDir,
      tlsNames: ['api.allowed.test'],
      mtls: true,
      log: createLogger({ level: 'info', destination: sink }),
      onAccessLogEntry: (s, e) => captured.push({ label, logName: s.logName, node: `${s.node.tenant}/${s.node.agent}/${s.node.instance}`, ...e }),
    });
    trap = await startTcpTrap({ host: '127.0.0.1', name: 'rebinding-target' });
    ports = { tls: world.tlsUpstream.port, http: world.httpUpstream.port, trap: trap.port };
    world.dns.setRecord('api.allowed.test', [TLS_UPSTREAM_IP]);
    world.dns.setRecord('evil.allowed.test', [TLS_UPSTREAM_IP]);
    world.dns.setRecord('plain.allowed.test', [HTTP_UPSTREAM_IP]);
    world.dns.setRecord('exfil.test', [TLS_UPSTREAM_IP]);
    // Nothing listens on the TLS port at this address: an allowed destination that refuses.
    world.dns.setRecord('down.allowed.test', [HTTP_UPSTREAM_IP]);
    // DNS rebinding: an allowlisted name that resolves to loopback, where the trap listens.
    world.dns.setRecord('rebind.allowed.test', ['127.0.0.1']);
    await fs.writeFile(path.join(world.policiesDir, 'acme.yaml'), policyYaml(ports));
    sidecar = await world.addSidecar(NODE, { xdsProtocol: 'delta' });
    await until('the policy in the sidecar', async () => {
      const r = await connectThroughProxy(sidecar.proxy, `api.allowed.test:${ports.tls}`);
      r.socket?.destroy();
      return r.status === 200;
    });
    // The access log stream is up once the warm-up's decisions have arrived.
    await until('the first decision', () => world.cp.decisions.recent({}, 1).length > 0);
    await sleep(300);
  }, 90_000);

  afterAll(async () => {
    await trap?.stop();
    await world?.stop();
  });

  /** Runs one labelled step and waits for the entries it must produce. */
  async function step(name: string, entries: number, fn: () => Promise<unknown>): Promise<void> {
    label = name;
    const before = captured.length;
    await fn();
    await until(`${entries} access log entr${entries === 1 ? 'y' : 'ies'} for ${name}`, () => captured.length >= before + entries);
    await sleep(150); // one more flush interval: nothing else may follow
    expect({ step: name, entries: captured.length - before }).toEqual({ step: name, entries });
    label = 'between-steps';
  }

  it('every request yields exactly one decision with the right verdict, rule and reason, in the list, the SSE stream, the log and the metric', async () => {
    const since = await lastId();
    const allowBefore = await counter('allow');
    const denyBefore = await counter('deny');
    const logBefore = logLines.length;
    const sse: SseStream = openSse({ host: '127.0.0.1', port: world.cp.adminPort }, '/v1/decisions/stream?tenant=acme&agent=coder');
    await sse.ready;
    expect(sse.status).toBe(200);

    await step('connect-tls-get', 2, async () => {
      const r = await httpsViaConnect(sidecar.proxy, { host: 'api.allowed.test', port: ports.tls, path: '/v1/hello?key=s3cr3t', caPem: world.ca.caPem });
      expect([r.connectStatus, r.status]).toEqual([200, 200]);
    });
    await step('http-get-with-query', 1, async () => {
      const r = await httpViaProxy(sidecar.proxy, `http://plain.allowed.test:${ports.http}/ping?token=s3cr3t`, { headers: { authorization: 'Bearer s3cr3t-header' } });
      expect(r.status).toBe(200);
    });
    const refused = (target: string) => async () => expect((await connectThroughProxy(sidecar.proxy, target)).status).toBe(403);
    await step('deny-rule-connect', 1, refused(`evil.allowed.test:${ports.tls}`));
    await step('deny-unlisted-connect', 1, refused(`exfil.test:${ports.tls}`));
    await step('deny-port-connect', 1, refused('api.allowed.test:8443'));
    await step('deny-unlisted-http', 1, async () => expect((await httpViaProxy(sidecar.proxy, `http://exfil.test:${ports.http}/steal?k=s3cr3t`)).status).toBe(403));
    await step('ip-literal-v4-connect', 1, refused(`127.0.0.2:${ports.tls}`));
    await step('ip-literal-v6-connect', 1, refused(`[::1]:${ports.tls}`));
    await step('guard-rebind-connect', 1, async () => {
      const r = await connectThroughProxy(sidecar.proxy, `rebind.allowed.test:${ports.trap}`);
      r.socket?.destroy();
      expect(r.status).toBe(503);
    });
    await step('guard-rebind-http', 1, async () => expect((await httpViaProxy(sidecar.proxy, `http://rebind.allowed.test:${ports.trap}/x`)).status).toBe(503));
    expect(trap.connections).toBe(0);

    const expected: Array<Partial<DecisionEvent> & { host: string; port: number }> = [
      { method: 'CONNECT', host: 'api.allowed.test', port: ports.tls, verdict: 'allow', policy: 'coding', rule: 'api', reason: 'allowed by coding/api', responseCode: 200, tunnel: 'closed' },
      { method: 'GET', host: 'plain.allowed.test', port: ports.http, path: '/ping', verdict: 'allow', policy: 'coding', rule: 'plain', reason: 'allowed by coding/plain', responseCode: 200 },
      { method: 'CONNECT', host: 'evil.allowed.test', port: ports.tls, verdict: 'deny', policy: 'coding', rule: 'no-evil', reason: 'denied by coding/no-evil', responseCode: 403 },
      { method: 'CONNECT', host: 'exfil.test', port: ports.tls, verdict: 'deny', reason: 'no rule matches', responseCode: 403 },
      { method: 'CONNECT', host: 'api.allowed.test', port: 8443, verdict: 'deny', reason: 'no rule matches', responseCode: 403 },
      { method: 'GET', host: 'exfil.test', port: ports.http, path: '/steal', verdict: 'deny', reason: 'no rule matches', responseCode: 403 },
      { method: 'CONNECT', host: '127.0.0.2', port: ports.tls, verdict: 'deny', reason: 'IP literal matches no rule', responseCode: 403 },
      { method: 'CONNECT', host: '::1', port: ports.tls, verdict: 'deny', reason: 'IP literal matches no rule', responseCode: 403 },
      { method: 'CONNECT', host: 'rebind.allowed.test', port: ports.trap, verdict: 'deny', policy: 'coding', rule: 'rebind', reason: GUARD_REASON, responseCode: 503 },
      { method: 'GET', host: 'rebind.allowed.test', port: ports.trap, path: '/x', verdict: 'deny', policy: 'coding', rule: 'rebind', reason: GUARD_REASON, responseCode: 503 },
    ];

    // GET /v1/decisions: exactly these, one each.
    const got = await decisionsAfter(since);
    expect(got.map(keyOf).sort()).toEqual(expected.map(keyOf).sort());
    for (const e of expected) {
      const d = got.find((g) => keyOf(g) === keyOf(e))!;
      expect(d).toMatchObject({ ...NODE, ...e });
      if (!e.policy) expect([d.policy, d.rule]).toEqual([undefined, undefined]);
      expect(d.time).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(d.bytesSent).toBeGreaterThan(0);
      expect(d.durationMs).toBeGreaterThanOrEqual(0);
    }
    const tunnel = got.find((d) => d.method === 'CONNECT' && d.verdict === 'allow')!;
    expect(tunnel.bytesReceived).toBeGreaterThan(1000); // the TLS handshake and the response went through it
    expect(tunnel.upstreamAddress).toBe(`${TLS_UPSTREAM_IP}:${ports.tls}`);

    // The SSE stream: the same decisions (same ids), and the tunnel's close record.
    await until('the SSE events', () => sse.events.filter((e) => e.event === 'decision').length >= expected.length);
    const streamed = sse.events.filter((e) => e.event === 'decision');
    expect(streamed.map((e) => e.id!).sort()).toEqual(got.map((d) => `${world.cp.decisions.epoch}.${d.id}`).sort());
    expect(streamed.find((e) => e.data.id === tunnel.id)!.data).toMatchObject({ tunnel: 'open', verdict: 'allow' });
    expect(sse.events.filter((e) => e.event === 'tunnel-closed').map((e) => e.data.id)).toEqual([tunnel.id]);
    sse.close();

    // The metric counts each once.
    expect((await counter('allow')) - allowBefore).toBe(expected.filter((e) => e.verdict === 'allow').length);
    expect((await counter('deny')) - denyBefore).toBe(expected.filter((e) => e.verdict === 'deny').length);

    // The JSON log lines: one per decision, one for the tunnel's close; no secret anywhere.
    const lines = logLines.slice(logBefore);
    const logged = lines.filter((l) => l.msg === 'decision').map((l) => l.decision as DecisionEvent);
    expect(logged.map((d) => d.id).sort((a, b) => a - b)).toEqual(got.map((d) => d.id).sort((a, b) => a - b));
    expect(lines.filter((l) => l.msg === 'tunnel closed')).toHaveLength(1);
    expect(JSON.stringify(got)).not.toMatch(/s3cr3t/);
    expect(JSON.stringify(lines)).not.toMatch(/s3cr3t/);
  });

  it('the entries Envoy sends still map as the recorded fixture says (UPDATE_ALS_FIXTURE=1 re-records it)', async () => {
    await step('nxdomain-connect', 1, async () => (await connectThroughProxy(sidecar.proxy, `nx.allowed.test:${ports.trap}`)).socket?.destroy());
    await step('upstream-refused-connect', 1, async () => expect((await connectThroughProxy(sidecar.proxy, `down.allowed.test:${ports.tls}`)).status).toBe(503));
    await step('garbage', 1, () => garbage(sidecar.proxy.port));
    await step('tunnel-bytes', 2, async () => {
      const r = await connectThroughProxy(sidecar.proxy, `api.allowed.test:${ports.tls}`);
      r.socket?.write('hello');
      await sleep(100);
      r.socket?.destroy();
    });
    await step('no-filter-chain', 1, () => noFilterChainConnection(world));

    const fresh = captured.filter((c) => !['warm-up', 'between-steps'].includes(c.label));
    const labels = [...new Set(fresh.map((c) => c.label))];
    if (UPDATE_FIXTURE) {
      const fixture: Fixture = {
        _comment:
          'Access log entries as Envoy 1.40 streamed them to the control plane (StreamAccessLogsMessage entries decoded to proto3 JSON), recorded by test/e2e/decisions-e2e.test.ts (UPDATE_ALS_FIXTURE=1) from a real sidecar, each labelled with what the agent did. `ports` are that run\'s upstream ports. The no-filter-chain entry comes from a static Envoy whose only filter chain wants SNI only.test, with the listener access log exitgate generates.',
        ports,
        entries: fresh,
      };
      await fs.writeFile(FIXTURE, `${JSON.stringify(fixture, null, 1)}\n`);
      return;
    }
    const fixture = JSON.parse(await fs.readFile(FIXTURE, 'utf8')) as Fixture;
    expect([...new Set(fixture.entries.map((c) => c.label))].sort()).toEqual(labels.sort());
    for (const l of labels) {
      const now = fresh.filter((c) => c.label === l).map((c) => comparable(c, ports));
      const then = fixture.entries.filter((c) => c.label === l).map((c) => comparable(c, fixture.ports));
      expect({ label: l, mapped: now }).toEqual({ label: l, mapped: then });
    }
  });

  it('dry-run: what enforce mode would deny goes through and is recorded as would-deny; the guard still denies', async () => {
    const DRY = { tenant: 'acme', agent: 'tryout', instance: 'dry-1' };
    const dry = await world.addSidecar(DRY, { xdsProtocol: 'delta' });
    await until('the dry-run policy in its sidecar', async () => {
      const r = await connectThroughProxy(dry.proxy, `api.allowed.test:${ports.tls}`);
      r.socket?.destroy();
      return r.status === 200;
    });
    await sleep(300);
    const since = await lastId();
    const tunnel = async (target: string, status: number) => {
      const r = await connectThroughProxy(dry.proxy, target);
      r.socket?.destroy();
      expect({ target, status: r.status }).toEqual({ target, status });
    };
    await tunnel(`exfil.test:${ports.tls}`, 200);
    await tunnel(`evil.allowed.test:${ports.tls}`, 200);
    await tunnel(`api.allowed.test:${ports.tls}`, 200);
    await tunnel(`rebind.allowed.test:${ports.trap}`, 503);
    expect(trap.connections).toBe(0);
    const mine = async () => (await decisionsAfter(since)).filter((d) => d.agent === 'tryout');
    await until('four dry-run decisions, their tunnels closed', async () => (await mine()).filter((d) => d.tunnel !== 'open').length >= 4);
    await sleep(300);
    const got = await mine();
    expect(got.map((d) => [keyOf(d), d.verdict, d.policy, d.rule, d.reason]).sort()).toEqual(
      [
        [`CONNECT exfil.test:${ports.tls}`, 'would-deny', undefined, undefined, 'no rule matches'],
        [`CONNECT evil.allowed.test:${ports.tls}`, 'would-deny', 'trial', 'no-evil', 'would be denied by trial/no-evil'],
        [`CONNECT api.allowed.test:${ports.tls}`, 'allow', 'trial', 'api', 'allowed by trial/api'],
        [`CONNECT rebind.allowed.test:${ports.trap}`, 'deny', undefined, undefined, GUARD_REASON],
      ].sort(),
    );
    expect(got.every((d) => d.instance === 'dry-1')).toBe(true);
    const text = (await adminGet(world.cp.adminPort, '/metrics')).body;
    expect(text).toMatch(/^exitgate_decisions_total\{tenant="acme",agent="tryout",verdict="would-deny"\} 2$/m);
    expect((JSON.parse((await adminGet(world.cp.adminPort, '/v1/decisions?agent=tryout&verdict=would-deny')).body) as unknown[]).length).toBe(2);
  });

  it('keeps enforcing with the control plane down, and decisions resume when it returns', async () => {
    await world.stopControlPlane();
    expect((await connectThroughProxy(sidecar.proxy, `exfil.test:${ports.tls}`)).status).toBe(403);
    const allowed = await connectThroughProxy(sidecar.proxy, `api.allowed.test:${ports.tls}`);
    allowed.socket?.destroy();
    expect(allowed.status).toBe(200);
    expect((await httpViaProxy(sidecar.proxy, `http://plain.allowed.test:${ports.http}/while-down`)).status).toBe(200);
    await sleep(300);

    await world.restartControlPlane();
    // Envoy reopens its access log stream when it next has entries to send: probe until one arrives.
    let n = 0;
    const started = Date.now();
    const first = await until(
      'a decision after the restart',
      async () => {
        n += 1;
        expect((await connectThroughProxy(sidecar.proxy, `probe-${n}.test:${ports.tls}`)).status).toBe(403);
        return world.cp.decisions.recent({}, 100).find((d) => d.host.startsWith('probe-'));
      },
      30_000,
      200,
    );
    console.log(`decisions resumed ${Date.now() - started} ms after the restart (${n} probe requests); decisions received from while the control plane was down: ${world.cp.decisions.recent({}, 100).filter((d) => d.path === '/while-down' || d.host === 'exfil.test').length} of 3 (best effort: Envoy drops what it cannot send)`);
    expect(first).toMatchObject({ ...NODE, verdict: 'deny', reason: 'no rule matches', method: 'CONNECT' });

    // From now on, each request is one decision again.
    await sleep(300);
    const since = await lastId();
    expect((await httpViaProxy(sidecar.proxy, `http://plain.allowed.test:${ports.http}/after-restart`)).status).toBe(200);
    expect((await connectThroughProxy(sidecar.proxy, `evil.allowed.test:${ports.tls}`)).status).toBe(403);
    await until('two decisions', async () => (await decisionsAfter(since)).length >= 2);
    await sleep(300);
    const after = await decisionsAfter(since);
    expect(after.map((d) => [keyOf(d), d.verdict, d.reason]).sort()).toEqual(
      [
        [`GET plain.allowed.test:${ports.http}/after-restart`, 'allow', 'allowed by coding/plain'],
        [`CONNECT evil.allowed.test:${ports.tls}`, 'deny', 'denied by coding/no-evil'],
      ].sort(),
    );
    // Each probe is one decision, none twice.
    const probes = world.cp.decisions.recent({}, 1000).filter((d) => d.host.startsWith('probe-'));
    expect(new Set(probes.map((d) => d.host)).size).toBe(probes.length);
  });
});

/** Bytes that are not HTTP: the codec refuses them (400). */
function garbage(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GARBAGE\r\n\r\n'));
    s.on('data', () => undefined);
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

/**
 * A connection no filter chain takes. The egress listener takes every connection, so this uses a
 * static Envoy (same node identity and certificate, same listener access log) whose only filter
 * chain wants SNI only.test, and sends it a TLS hello for other.test.
 */
async function noFilterChainConnection(world: World): Promise<void> {
  const dir = path.join(world.workDir, 'nfc');
  await fs.mkdir(dir, { recursive: true });
  const tlsDir = path.join(dir, 'xds-tls');
  await issueNodeCert(path.join(world.workDir, 'xds-ca'), NODE, tlsDir, { validHours: 1 });
  const listenPort = await freePort();
  const adminSocketPath = path.join(dir, 'admin.sock');
  const boot = bootstrapConfig({ node: NODE, xds: { host: '127.0.0.1', port: world.cp.xdsPort }, listen: { address: '127.0.0.1', port: listenPort }, adminSocketPath, tlsDir });
  delete boot.dynamic_resources;
  (boot.static_resources as Record<string, unknown>).listeners = [
    {
      name: 'no-filter-chain',
      address: { socket_address: { address: '127.0.0.1', port_value: listenPort } },
      access_log: listenerAccessLog(),
      listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } }],
      filter_chains: [
        {
          filter_chain_match: { server_names: ['only.test'] },
          filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'x', cluster: 'exitgate-xds' } }],
        },
      ],
    },
  ];
  const envoy = await startEnvoy({ bin: await locateEnvoy(), configYaml: stringify(boot), workDir: dir, adminSocketPath });
  try {
    await envoy.waitReady(20_000); // LIVE: the static listener is bound
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: listenPort, servername: 'other.test', rejectUnauthorized: false });
      s.on('error', () => resolve());
      s.on('close', () => resolve());
    });
    await sleep(500); // flush before this Envoy goes away
  } finally {
    await envoy.stop();
  }
}

/** A mapped entry with what differs from run to run (times, ports, byte counts, ids) taken out. */
function comparable(c: Captured, ports: Record<string, number>): unknown {
  const m: MappedEntry = c.http ? mapHttpEntry(NODE, c.http) : mapTcpEntry(NODE, c.tcp!);
  if (m.kind === 'ignored') return m;
  const names = new Map(Object.entries(ports).map(([k, v]) => [v, k.toUpperCase()]));
  const d: Partial<DecisionDraft> & Record<string, unknown> = { ...m.decision };
  delete d.time;
  delete d.durationMs;
  delete d.bytesSent;
  delete d.bytesReceived;
  // A listener entry names the port of the static listener it came from (a free port of that run).
  if (c.tcp) d.port = 'LISTENER' as unknown as number;
  else if (typeof d.port === 'number') d.port = (names.get(d.port) ?? d.port) as number;
  if (d.upstreamAddress) d.upstreamAddress = d.upstreamAddress.replace(/:(\d+)$/, (_, p: string) => `:${names.get(Number(p)) ?? p}`);
  return { kind: m.kind, tunnel: 'tunnelKey' in m && m.tunnelKey ? 'keyed' : 'none', decision: d, logName: c.logName, node: c.node };
}
