/**
 * Secrets the agent never holds (SPEC §2 Credential), with the real Envoy: the agent speaks plain
 * HTTP through the proxy, Envoy originates TLS (verifying the upstream against the test CA) and
 * injects the credential; the agent's own Authorization never arrives; a credential bound to host A
 * is never sent to host B; L7 rules (methods, paths) hold; a credential that cannot be loaded fails
 * closed; rotating the file changes the next request's value without restarting Envoy; and nothing
 * the system wrote contains a secret value.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { startWorld, TLS_UPSTREAM_IP, HTTP_UPSTREAM_IP, type World, type Sidecar } from '../../src/demo/world';
import { connectThroughProxy, httpViaProxy } from '../../src/demo/proxy-client';
import { loadPolicyDir } from '../../src/policy/load';
import { buildAgentIr } from '../../src/ir/build-ir';
import { decide } from '../../src/ir/decide';
import { parseTarget } from '../../src/ir/target';

const SECRET_1 = 'pd-secret-3f9a1c7e0b2d4e6f';
const SECRET_2 = 'pd-rotated-8c1e5a9d7f3b2a10';
const AGENT_OWN = 'Bearer agent-own-token-5d2c';

describe('credentials injected by Envoy', () => {
  let world: World;
  let sidecar: Sidecar;
  let port: number;
  let secretFile: string;
  const logs: string[] = [];

  const policy = (p: number, secretPath: string, plainPort: number) => `apiVersion: exitgate.dev/v1
kind: Credential
metadata: { name: pd-key, tenant: acme }
spec:
  header: Authorization
  prefix: "Token token="
  source: { file: ${JSON.stringify(secretPath)} }
---
apiVersion: exitgate.dev/v1
kind: Credential
metadata: { name: missing-key, tenant: acme }
spec:
  header: X-Api-Key
  source: { file: ${JSON.stringify(path.join(path.dirname(secretPath), 'does-not-exist'))} }
---
apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: paging, tenant: acme }
spec:
  agents: ["coder"]
  allow:
    - name: pagerduty
      hosts: ["events.pagerduty.test"]
      ports: [${p}]
      tls: originate
      http: { methods: [POST], paths: ["/v2/enqueue", "/v2/change/*"] }
      credential: pd-key
    - name: other-api
      hosts: ["api.other.test", "unverified.other.test"]
      ports: [${p}]
      tls: originate
    - name: plain-api
      hosts: ["plain.internal.test"]
      ports: [${plainPort}]
      http: { methods: [GET] }
      credential: pd-key
    - name: broken
      hosts: ["broken.pagerduty.test"]
      ports: [${p}]
      tls: originate
      credential: missing-key
`;

  async function send(url: string, method = 'POST', headers: Record<string, string> = { authorization: AGENT_OWN }) {
    const before = world.tlsUpstream.requests.length;
    const r = await httpViaProxy(sidecar.proxy, url, { method, headers, body: '{"event":"x"}' });
    const received = world.tlsUpstream.requests.slice(before);
    return { status: r.status, body: r.body, received };
  }

  async function checkSays(url: string, method = 'POST'): Promise<string> {
    const set = await loadPolicyDir(world.policiesDir);
    if (!set.ok) throw new Error('invalid policies');
    const t = parseTarget(url);
    if (!t.ok) throw new Error(t.reason);
    return decide(buildAgentIr(set.value, 'acme', 'coder'), { ...t.value, method }).verdict;
  }

  beforeAll(async () => {
    const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-cred-'));
    const sink = new Writable({ write: (chunk: Buffer, _enc, cb) => (logs.push(chunk.toString()), cb()) });
    world = await startWorld({
      workDir,
      tlsNames: ['events.pagerduty.test', 'api.other.test', 'broken.pagerduty.test'],
      log: pino({ level: 'trace' }, sink),
    });
    port = world.tlsUpstream.port;
    for (const n of ['events.pagerduty.test', 'api.other.test', 'unverified.other.test', 'broken.pagerduty.test']) world.dns.setRecord(n, [TLS_UPSTREAM_IP]);
    world.dns.setRecord('plain.internal.test', [HTTP_UPSTREAM_IP]);
    await fs.mkdir(path.join(workDir, 'secrets'));
    secretFile = path.join(workDir, 'secrets', 'pd');
    await fs.writeFile(secretFile, `${SECRET_1}\n`, { mode: 0o600 });
    await fs.writeFile(path.join(world.policiesDir, 'acme.yaml'), policy(port, secretFile, world.httpUpstream.port));
    sidecar = await world.addSidecar({ tenant: 'acme', agent: 'coder', instance: 'cred-1' });
  }, 90_000);

  afterAll(async () => {
    await world?.stop();
  });

  it('injects the credential over verified TLS, replacing the agent’s own header', async () => {
    const r = await send(`http://events.pagerduty.test:${port}/v2/enqueue`);
    expect(r.status).toBe(200);
    expect(r.received).toHaveLength(1);
    expect(r.received[0]!.headers.authorization).toBe(`Token token=${SECRET_1}`);
    expect(JSON.stringify(r.received[0]!.headers)).not.toContain('agent-own-token');
    // (The test upstream echoes request headers in its body; a destination that reflects its own
    // auth header would hand it to the caller. Trusting a destination with a credential includes that.)
  });

  it('a port-less URL goes to the rule’s first port, over TLS, with the credential', async () => {
    const r = await send('http://events.pagerduty.test/v2/change/42');
    expect(r.status).toBe(200);
    expect(r.received[0]!.headers.authorization).toBe(`Token token=${SECRET_1}`);
  });

  it.each([
    ['GET on a POST-only rule', '/v2/enqueue', 'GET'],
    ['a path outside the rule', '/v2/admin', 'POST'],
    ['a dot-segment escape', '/v2/change/../../admin', 'POST'],
    ['an encoded dot-segment escape', '/v2/change/%2e%2e/%2e%2e/admin', 'POST'],
    ['an encoded slash', '/v2/change%2f..%2fadmin', 'POST'],
  ])('refuses %s, and nothing reaches the upstream', async (_what, p, method) => {
    const url = `http://events.pagerduty.test:${port}${p}`;
    const r = await send(url, method);
    expect([403, 400]).toContain(r.status);
    expect(r.received).toEqual([]);
    expect(await checkSays(url, method)).toBe('deny');
  });

  it('injects over plain HTTP where the rule says the destination speaks it (SPEC §2)', async () => {
    const before = world.httpUpstream.requests.length;
    const r = await httpViaProxy(sidecar.proxy, `http://plain.internal.test:${world.httpUpstream.port}/status`, { headers: { authorization: AGENT_OWN } });
    expect(r.status).toBe(200);
    const seen = world.httpUpstream.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers.authorization).toBe(`Token token=${SECRET_1}`);
  });

  it('never sends host A’s credential to host B', async () => {
    const r = await send(`http://api.other.test:${port}/v1/data`, 'GET', {});
    expect(r.status).toBe(200);
    expect(r.received[0]!.headers.authorization).toBeUndefined();
    expect(JSON.stringify(r.received[0]!.headers)).not.toContain(SECRET_1);
  });

  it('verifies the upstream certificate for the name it dials', async () => {
    const r = await send(`http://unverified.other.test:${port}/`, 'GET', {});
    expect(r.status).toBe(503); // the upstream's certificate does not name unverified.other.test
    expect(r.received).toEqual([]);
  });

  it('refuses a CONNECT that only an L7 rule would match (rules cannot be enforced in a tunnel)', async () => {
    const c = await connectThroughProxy(sidecar.proxy, `events.pagerduty.test:${port}`);
    c.socket?.destroy();
    expect(c.status).toBe(403);
    expect(await checkSays(`events.pagerduty.test:${port}`)).toBe('deny');
  });

  it('fails closed when a credential cannot be loaded', async () => {
    const r = await send(`http://broken.pagerduty.test:${port}/`, 'GET');
    expect(r.status).toBe(503);
    expect(r.body).toContain('credential for this destination is unavailable');
    expect(r.received).toEqual([]);
  });

  it('rotates the credential when its file changes, without restarting Envoy', async () => {
    const pid = sidecar.envoy.pid;
    await fs.writeFile(`${secretFile}.tmp`, `${SECRET_2}\n`, { mode: 0o600 });
    await fs.rename(`${secretFile}.tmp`, secretFile);
    const started = performance.now();
    let seen = '';
    while (performance.now() - started < 10_000) {
      const r = await send(`http://events.pagerduty.test:${port}/v2/enqueue`);
      seen = String(r.received[0]?.headers.authorization);
      if (seen === `Token token=${SECRET_2}`) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(seen).toBe(`Token token=${SECRET_2}`);
    expect(sidecar.envoy.pid).toBe(pid);
    expect(sidecar.envoy.exitStatus).toBeUndefined();
    console.log(`credential rotated in Envoy ${(performance.now() - started).toFixed(0)} ms after the file changed (pid ${pid} unchanged)`);
  });

  it('no secret value appears in logs, admin responses or Envoy’s output', async () => {
    const admin = `http://127.0.0.1:${world.cp.adminPort}`;
    const responses = await Promise.all(
      ['/v1/nodes', '/v1/tenants/acme/agents/coder/effective', '/v1/tenants/acme/policies', '/v1/tenants/acme/policies/paging', '/metrics', '/v1/decisions'].map(async (p) => (await fetch(`${admin}${p}`)).text()),
    );
    const everything = [...logs, ...responses, sidecar.envoy.recentLogs(), JSON.stringify(world.cp.registry.list())].join('\n');
    expect(everything.length).toBeGreaterThan(1000); // the search was over real output
    for (const secret of [SECRET_1, SECRET_2]) expect(everything.includes(secret)).toBe(false);
  });
});
