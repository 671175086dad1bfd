/**
 * SPEC §2 `mode: dry-run` and `limits`, with the real Envoy: in dry-run what enforce would deny is
 * allowed (and `check` says would-deny), while the guard still refuses forbidden addresses; a
 * request rate above requestsPerMinute gets 429, and connections above maxConnections are refused.
 */
import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { startWorld, TLS_UPSTREAM_IP, HTTP_UPSTREAM_IP, type World, type Sidecar } from '../../src/demo/world';
import { connectThroughProxy, httpViaProxy } from '../../src/demo/proxy-client';
import { startTcpTrap, type TcpTrap } from '../../src/demo/upstreams';
import { loadPolicyDir } from '../../src/policy/load';
import { buildAgentIr } from '../../src/ir/build-ir';
import { decide, formatDecision } from '../../src/ir/decide';
import { parseTarget } from '../../src/ir/target';

describe('dry-run and limits', () => {
  let world: World;
  let trial: Sidecar;
  let limited: Sidecar;
  let trap: TcpTrap;
  let tls: number;
  let http: number;

  const check = async (agent: string, target: string) => {
    const set = await loadPolicyDir(world.policiesDir);
    if (!set.ok) throw new Error('invalid');
    const t = parseTarget(target);
    if (!t.ok) throw new Error(t.reason);
    return formatDecision(decide(buildAgentIr(set.value, 'acme', agent), t.value));
  };
  const connect = async (s: Sidecar, target: string) => {
    const r = await connectThroughProxy(s.proxy, target);
    r.socket?.destroy();
    return r.status;
  };

  beforeAll(async () => {
    const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-dryrun-'));
    world = await startWorld({ workDir, tlsNames: ['api.allowed.test'] });
    trap = await startTcpTrap({ host: '127.0.0.1', name: 'guarded' });
    tls = world.tlsUpstream.port;
    http = world.httpUpstream.port;
    world.dns.setRecord('api.allowed.test', [TLS_UPSTREAM_IP]);
    world.dns.setRecord('exfil.test', [TLS_UPSTREAM_IP]);
    world.dns.setRecord('plain.allowed.test', [HTTP_UPSTREAM_IP]);
    world.dns.setRecord('rebind.test', ['127.0.0.1']);
    await fs.writeFile(
      path.join(world.policiesDir, 'acme.yaml'),
      `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: trial-run, tenant: acme }
spec:
  agents: ["trial"]
  mode: dry-run
  allow: [{ name: api, hosts: ["api.allowed.test"], ports: [${tls}] }]
---
apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: limited, tenant: acme }
spec:
  agents: ["limited"]
  limits: { requestsPerMinute: 5, maxConnections: 2 }
  allow:
    - { name: api, hosts: ["api.allowed.test"], ports: [${tls}] }
    - { name: plain, hosts: ["plain.allowed.test"], ports: [${http}] }
---
apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: looser, tenant: acme }
spec:
  agents: ["limited"]
  limits: { requestsPerMinute: 1000 }
  allow: []
`,
    );
    trial = await world.addSidecar({ tenant: 'acme', agent: 'trial', instance: 'dry-1' });
    limited = await world.addSidecar({ tenant: 'acme', agent: 'limited', instance: 'lim-1' });
  }, 90_000);

  afterAll(async () => {
    await trap?.stop();
    await world?.stop();
  });

  it('dry-run allows what enforce would deny, and check says would-deny', async () => {
    expect(await connect(trial, `exfil.test:${tls}`)).toBe(200);
    expect(await check('trial', `exfil.test:${tls}`)).toBe('would-deny (no rule matches)');
    expect(await connect(trial, `api.allowed.test:${tls}`)).toBe(200);
    expect(await check('trial', `api.allowed.test:${tls}`)).toBe('allow (trial-run/api)');
  });

  it('dry-run never opens the guard: a name resolving to loopback is still refused', async () => {
    world.dns.clearQueries();
    expect(await connect(trial, `rebind.test:${trap.port}`)).not.toBe(200);
    expect(world.dns.queriedNames().has('rebind.test')).toBe(true); // the attempt was really made
    expect(trap.connections).toBe(0);
  });

  it('limits: the strictest requestsPerMinute applies; the excess gets 429', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i += 1) statuses.push((await httpViaProxy(limited.proxy, `http://plain.allowed.test:${http}/n/${i}`)).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses.slice(5)).toEqual([429, 429]);
  });

  it('limits: connections beyond maxConnections are refused', async () => {
    const open: net.Socket[] = [];
    for (let i = 0; i < 2; i += 1) {
      const s = net.connect(limited.proxy.port, limited.proxy.host);
      await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
      open.push(s);
    }
    await new Promise((r) => setTimeout(r, 100));
    const third = net.connect(limited.proxy.port, limited.proxy.host);
    const closedQuickly = await new Promise<boolean>((resolve) => {
      third.once('close', () => resolve(true));
      third.on('error', () => undefined);
      setTimeout(() => resolve(false), 3000);
    });
    expect(closedQuickly).toBe(true);
    const stats = await limited.envoy.stats('connection_limit');
    expect([...stats.entries()].some(([k, v]) => k.includes('limited_connections') && v >= 1)).toBe(true);
    open.forEach((s) => s.destroy());
  });
});
