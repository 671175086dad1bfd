/**
 * A configuration the real Envoy rejects: NACKed, reported per node (admin API, `exitgate status`,
 * CSDS, metric) with Envoy's own error text, never resent, the last good configuration stays in
 * force, and the next valid change is accepted. Over SotW and Delta ADS.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startWorld, TLS_UPSTREAM_IP, type World, type Sidecar } from '../../src/demo/world';
import { connectThroughProxy } from '../../src/demo/proxy-client';
import { translate } from '../../src/translate/translate';
import { serviceDefinition } from '../../src/xds/grpc-codec';
import { formatStatus } from '../../src/cli/status';
import type { NodeStatus } from '../../src/xds/node-registry';
import { TYPE } from '../../src/xds/type-urls';

const ROUTE = TYPE.route;

function policy(port: number, rules: string[]): string {
  return `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: coding, tenant: acme }
spec:
  agents: ["*"]
  allow:
${rules.map((r) => `    - name: ${r}\n      hosts: ["${r}.allowed.test"]\n      ports: [${port}]\n`).join('')}`;
}

/** Duplicates a virtual host: valid protobuf (our strict encoder accepts it), invalid for Envoy. */
let poison = false;
const poisonable: typeof translate = (ir, node, options) => {
  const set = translate(ir, node, options);
  if (!poison) return set;
  return {
    ...set,
    routes: set.routes.map((r) => {
      const rc = structuredClone(r.resource) as { virtual_hosts: Array<Record<string, unknown>> };
      rc.virtual_hosts.push({ ...rc.virtual_hosts[0]!, name: `${String(rc.virtual_hosts[0]!.name)}/duplicate` });
      return { name: r.name, resource: rc };
    }),
  };
};

describe('a configuration Envoy rejects (NACK)', () => {
  let world: World;
  let sotw: Sidecar;
  let delta: Sidecar;
  let port: number;

  const writePolicy = async (rules: string[]) => {
    const file = path.join(world.policiesDir, 'acme.yaml');
    await fs.writeFile(`${file}.tmp`, policy(port, rules));
    await fs.rename(`${file}.tmp`, file);
  };
  const verdict = async (s: Sidecar, host: string) => {
    const r = await connectThroughProxy(s.proxy, `${host}:${port}`);
    r.socket?.destroy();
    return r.status === 200 ? 'allow' : 'deny';
  };
  const routeStatus = (node: string) => world.cp.registry.list().find((n) => n.node === node)?.resources[ROUTE];
  const routePushes = async () => (await world.cp.metrics.pushes.get()).values.find((v) => v.labels.type === 'RouteConfiguration')?.value ?? 0;
  async function until(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await predicate())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  beforeAll(async () => {
    const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-nack-'));
    world = await startWorld({ workDir, tlsNames: ['api.allowed.test'], translate: poisonable });
    port = world.tlsUpstream.port;
    for (const name of ['api', 'other', 'extra']) world.dns.setRecord(`${name}.allowed.test`, [TLS_UPSTREAM_IP]);
    await writePolicy(['api', 'other']);
    sotw = await world.addSidecar({ tenant: 'acme', agent: 'coder', instance: 'sotw' }, { xdsProtocol: 'sotw' });
    delta = await world.addSidecar({ tenant: 'acme', agent: 'coder', instance: 'delta' }, { xdsProtocol: 'delta' });
    for (const s of [sotw, delta]) await until('the sidecar to allow other.allowed.test', async () => (await verdict(s, 'other.allowed.test')) === 'allow');
  }, 90_000);

  afterAll(async () => {
    await world?.stop();
  });

  it('is reported with Envoy’s error, never resent, and the last good configuration stays', async () => {
    poison = true;
    await writePolicy(['api']); // revokes "other", but in a configuration Envoy will reject
    for (const node of ['acme/coder/sotw', 'acme/coder/delta']) {
      await until(`a NACK from ${node}`, () => !!routeStatus(node)?.lastNack);
      const status = routeStatus(node)!;
      expect(status.lastNack!.message).toMatch(/unique values for domains|duplicate/i);
      expect(status.lastNack!.version).toBe(status.sentVersion);
      expect(status.ackedVersion).not.toBe(status.sentVersion);
    }
    const pushesAfterNack = await routePushes();
    // The last good configuration is still enforced: "other" was never revoked in Envoy.
    for (const s of [sotw, delta]) {
      expect(await verdict(s, 'other.allowed.test')).toBe('allow');
      expect(await verdict(s, 'api.allowed.test')).toBe('allow');
      expect(await verdict(s, 'exfil.allowed.test')).toBe('deny');
    }
    // Not resent: no further RouteConfiguration responses while nothing changes.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await routePushes()).toBe(pushesAfterNack);

    const nacks = (await world.cp.metrics.nacks.get()).values.find((v) => v.labels.type === 'RouteConfiguration')?.value ?? 0;
    expect(nacks).toBeGreaterThanOrEqual(2);

    const nodes = (await (await fetch(`http://127.0.0.1:${world.cp.adminPort}/v1/nodes`)).json()) as NodeStatus[];
    const table = formatStatus(nodes);
    expect(table).toMatch(/acme\/coder\/sotw\s+RouteConfiguration\s+\S+\s+\S+ \(pending\)\s+\S+: .*(unique|duplicate)/i);
    expect(table).toMatch(/acme\/coder\/delta\s+RouteConfiguration/);
  });

  it('shows up in CSDS as ERROR with Envoy’s error, the rest SYNCED', async () => {
    const Client = grpc.makeGenericClientConstructor(serviceDefinition('envoy.service.status.v3.ClientStatusDiscoveryService'), 'CSDS');
    const client = new Client(`127.0.0.1:${world.cp.xdsPort}`, grpc.credentials.createInsecure()) as unknown as {
      FetchClientStatus(req: unknown, cb: (err: grpc.ServiceError | null, res: { config: Array<{ node: { id: string }; genericXdsConfigs: Array<{ typeUrl: string; name: string; configStatus: string; clientStatus: string; errorState?: { details: string } }> }> }) => void): void;
      close(): void;
    };
    const res = await new Promise<Parameters<Parameters<typeof client.FetchClientStatus>[1]>[1]>((resolve, reject) =>
      client.FetchClientStatus({ nodeMatchers: [{ nodeId: { exact: 'acme/coder/sotw' } }] }, (err, r) => (err ? reject(err) : resolve(r))),
    );
    client.close();
    expect(res.config.map((c) => c.node.id)).toEqual(['acme/coder/sotw']);
    const byType = new Map(res.config[0]!.genericXdsConfigs.map((g) => [g.typeUrl, g]));
    expect(byType.get(ROUTE)).toMatchObject({ name: 'exitgate/acme/coder/egress', configStatus: 'ERROR', clientStatus: 'NACKED' });
    expect(byType.get(ROUTE)!.errorState!.details).toMatch(/unique values for domains|duplicate/i);
    expect(byType.get(TYPE.cluster)).toMatchObject({ configStatus: 'SYNCED', clientStatus: 'ACKED' });
    expect(byType.get(TYPE.listener)).toMatchObject({ configStatus: 'SYNCED', clientStatus: 'ACKED' });
  });

  it('accepts the next valid change', async () => {
    poison = false;
    await writePolicy(['api', 'extra']);
    for (const s of [sotw, delta]) {
      await until('the valid change to apply', async () => (await verdict(s, 'other.allowed.test')) === 'deny');
      expect(await verdict(s, 'extra.allowed.test')).toBe('allow');
      expect(await verdict(s, 'api.allowed.test')).toBe('allow');
    }
    for (const node of ['acme/coder/sotw', 'acme/coder/delta']) {
      await until(`${node} to ACK`, () => routeStatus(node)?.ackedVersion === routeStatus(node)?.sentVersion);
    }
  });
});
