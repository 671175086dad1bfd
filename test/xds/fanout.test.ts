/**
 * Push fan-out over real gRPC: one XdsServer, 1,000 simulated sidecars (50 agents x 20 instances;
 * half SotW ADS, half Delta ADS) on real grpc-js client channels, each subscribed to CDS, LDS and
 * its agent's RDS route configuration and ACKing every response as Envoy does.
 *
 * A policy change for one agent must reach exactly that agent's 20 streams (one RDS response
 * each) and nobody else; re-applying an unchanged policy set must reach nobody (SPEC §6.1).
 */
import * as grpc from '@grpc/grpc-js';
import { XdsServer } from '../../src/xds/server';
import { serviceDefinition } from '../../src/xds/grpc-codec';
import type { DeltaRequestIn, DeltaResponseOut, DiscoveryRequestIn, DiscoveryResponseOut } from '../../src/xds/messages';
import { NodeRegistry } from '../../src/xds/node-registry';
import { TYPE } from '../../src/xds/type-urls';
import { decodeToJson } from '../../src/xds/proto';
import { SnapshotCache } from '../../src/cache/snapshot-cache';
import { parsePolicyText } from '../../src/policy/parse';
import type { PolicySet } from '../../src/policy/documents';
import { silentLogger } from '../../src/util/logger';
import { Metrics } from '../../src/util/metrics';

const AGENTS = 50;
const PER_AGENT = 20;
const CHANNELS = 4;
const QUIET_MS = 1000;
const TYPES = [TYPE.cluster, TYPE.listener, TYPE.route] as const;

const agentName = (i: number) => `agent-${i}`;
const routeName = (agent: string) => `exitgate/acme/${agent}/egress`;

function policySet(hostsOf: (i: number) => string[]): PolicySet {
  const docs: string[] = [];
  for (let i = 0; i < AGENTS; i++) {
    docs.push(
      `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: policy-${i}, tenant: acme}\nspec:\n  agents: [${agentName(i)}]\n  allow:\n    - name: r1\n      hosts: [${hostsOf(i).join(', ')}]\n`,
    );
  }
  const f = parsePolicyText('policies/acme.yaml', docs.join('---\n'));
  if (f.errors.length > 0) throw new Error(JSON.stringify(f.errors));
  return { policies: f.policies, credentials: f.credentials };
}

type Received = { type: string; version: string; names: string[]; removed: string[] };

/** One simulated sidecar: a bidi ADS stream that subscribes to CDS, LDS, RDS and ACKs everything. */
class SimNode {
  readonly received: Received[] = [];
  readonly call: grpc.ClientDuplexStream<unknown, unknown>;
  ended = false;

  constructor(
    client: grpc.Client,
    readonly id: string,
    readonly agent: string,
    readonly protocol: 'sotw' | 'delta',
  ) {
    const method = protocol === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources';
    this.call = (client as unknown as Record<string, (this: grpc.Client) => grpc.ClientDuplexStream<unknown, unknown>>)[method]!.call(client);
    this.call.on('data', (r: unknown) => (protocol === 'sotw' ? this.onSotw(r as DiscoveryResponseOut) : this.onDelta(r as DeltaResponseOut)));
    this.call.on('error', () => undefined); // CANCELLED at the end of the test
    this.call.on('status', () => {
      this.ended = true;
    });
  }

  start(): void {
    const node = { id: this.id, metadata: { exitgate: { listen: '127.0.0.1:15001', xds: this.protocol } } };
    if (this.protocol === 'sotw') {
      const send = (r: Partial<DiscoveryRequestIn>) => this.call.write(r);
      send({ node, typeUrl: TYPE.cluster });
      send({ typeUrl: TYPE.listener });
      send({ typeUrl: TYPE.route, resourceNames: [routeName(this.agent)] });
    } else {
      const send = (r: Partial<DeltaRequestIn>) => this.call.write(r);
      send({ node, typeUrl: TYPE.cluster });
      send({ typeUrl: TYPE.listener });
      send({ typeUrl: TYPE.route, resourceNamesSubscribe: [routeName(this.agent)] });
    }
  }

  private onSotw(r: DiscoveryResponseOut): void {
    const names = r.resources.map((x) => (decodeToJson(r.typeUrl, x.value) as { name: string }).name);
    this.received.push({ type: r.typeUrl, version: r.versionInfo, names, removed: [] });
    // ACK like Envoy: echo version and nonce, repeat the subscription
    this.call.write({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce, resourceNames: r.typeUrl === TYPE.route ? [routeName(this.agent)] : [] });
  }

  private onDelta(r: DeltaResponseOut): void {
    this.received.push({ type: r.typeUrl, version: r.systemVersionInfo, names: r.resources.map((x) => x.name), removed: r.removedResources });
    this.call.write({ typeUrl: r.typeUrl, responseNonce: r.nonce });
  }

  take(): Received[] {
    return this.received.splice(0);
  }
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function total(counter: Metrics['acks']): Promise<number> {
  return (await counter.get()).values.reduce((sum, v) => sum + v.value, 0);
}

describe('push fan-out: 1,000 nodes, 50 agents, SotW and Delta over real gRPC', () => {
  let server: XdsServer;
  let cache: SnapshotCache;
  let registry: NodeRegistry;
  let metrics: Metrics;
  const clients: grpc.Client[] = [];
  const nodes: SimNode[] = [];

  beforeAll(async () => {
    cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
    cache.setPolicies(policySet((i) => [`api-${i}.example.test`]));
    registry = new NodeRegistry({ graceMs: 0 });
    metrics = new Metrics();
    server = new XdsServer({ watcher: cache, registry, log: silentLogger(), metrics });
    const port = await server.listen('127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
    const Client = grpc.makeGenericClientConstructor(serviceDefinition('envoy.service.discovery.v3.AggregatedDiscoveryService'), 'AggregatedDiscoveryService');
    for (let c = 0; c < CHANNELS; c++) {
      // a local subchannel pool: each client gets its own HTTP/2 connection
      clients.push(new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
    }
  });

  afterAll(async () => {
    for (const n of nodes) n.call.cancel();
    await until(() => registry.size === 0, 10_000, 'all streams to close').catch(() => undefined);
    for (const c of clients) c.close();
    await server.close();
  });

  it('a change of one agent reaches exactly its 20 streams; an unchanged policy set reaches nobody', async () => {
    const t0 = performance.now();
    let k = 0;
    for (let a = 0; a < AGENTS; a++) {
      for (let i = 0; i < PER_AGENT; i++) {
        const protocol = i % 2 === 0 ? 'sotw' : 'delta';
        const node = new SimNode(clients[k % CHANNELS]!, `acme/${agentName(a)}/${protocol}-${i}`, agentName(a), protocol);
        nodes.push(node);
        node.start();
        k += 1;
      }
    }
    expect(nodes).toHaveLength(1000);
    expect(new Set(nodes.map((n) => n.id)).size).toBe(1000);
    expect(nodes.filter((n) => n.protocol === 'sotw')).toHaveLength(500);

    // Synced: every node has had CDS, LDS and RDS, and the server has recorded every ACK.
    await until(() => nodes.every((n) => n.received.length >= 3), 20_000, 'initial responses');
    await until(async () => (await total(metrics.acks)) === 3 * nodes.length, 10_000, 'initial ACKs');
    const tSynced = performance.now();
    expect(registry.size).toBe(1000);
    expect(registry.connected).toBe(1000);
    expect(cache.watchedSnapshots).toBe(AGENTS); // one per agent: SotW and Delta ADS nodes share it
    for (const n of nodes) {
      const initial = n.take();
      expect(initial.map((r) => r.type)).toEqual([...TYPES]);
      expect(initial.map((r) => r.names)).toEqual([['exitgate/dfp'], [routeName(n.agent)], [routeName(n.agent)]]);
    }
    const status = new Map(registry.list().map((s) => [s.node, s]));
    for (const n of nodes) for (const t of TYPES) expect(status.get(n.id)?.resources[t]?.ackedVersion).toBeDefined();

    // Change agent-7's policy only.
    const changed = policySet((i) => (i === 7 ? ['api-7.example.test', 'new-7.example.test'] : [`api-${i}.example.test`]));
    const tChange = performance.now();
    expect(cache.setPolicies(changed)).toEqual({ changed: 1, unchanged: AGENTS - 1, failed: 0 });
    const agent7 = nodes.filter((n) => n.agent === 'agent-7');
    expect(agent7).toHaveLength(PER_AGENT);
    await until(() => agent7.every((n) => n.received.length >= 1), 5_000, 'agent-7 pushes');
    const tPushed = performance.now();
    await sleep(QUIET_MS);
    for (const n of nodes) {
      const got = n.take();
      if (n.agent === 'agent-7') {
        expect(got).toHaveLength(1);
        expect(got[0]).toMatchObject({ type: TYPE.route, names: [routeName('agent-7')], removed: [] });
      } else {
        expect({ node: n.id, got }).toEqual({ node: n.id, got: [] });
      }
    }
    await until(async () => (await total(metrics.acks)) === 3 * nodes.length + PER_AGENT, 5_000, 'ACKs of the push');

    // The same set again: a change to nothing.
    expect(cache.setPolicies(changed)).toEqual({ changed: 0, unchanged: AGENTS, failed: 0 });
    await sleep(QUIET_MS);
    for (const n of nodes) expect({ node: n.id, got: n.take() }).toEqual({ node: n.id, got: [] });
    expect(await total(metrics.pushes)).toBe(3 * nodes.length + PER_AGENT);
    expect(nodes.some((n) => n.ended)).toBe(false);

    // eslint-disable-next-line no-console
    console.log(
      `fan-out: 1000 nodes synced in ${(tSynced - t0).toFixed(0)} ms; agent-7 change reached its 20 streams in ${(tPushed - tChange).toFixed(0)} ms`,
    );
  }, 60_000);
});
