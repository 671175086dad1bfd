/**
 * Node churn does not grow memory (research/xds-protocol-notes.md: "snapshot memory never released
 * for gone nodes", jcp#136): 10,000 simulated sidecars connect to one XdsServer over real gRPC
 * (Delta ADS), subscribe to CDS, LDS and RDS, receive their responses, ACK and close, in rounds of
 * 500. After the last stream closed, the heap (after forced GC) is back within 10% of where it was
 * after a warm-up round, and no per-node state is left: NodeRegistry.size === 0 (reconnect grace
 * period set to 0 here) and SnapshotCache.watchedSnapshots === 0.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as grpc from '@grpc/grpc-js';
import { XdsServer } from '../../src/xds/server';
import { serviceDefinition } from '../../src/xds/grpc-codec';
import type { DeltaRequestIn, DeltaResponseOut } from '../../src/xds/messages';
import { NodeRegistry } from '../../src/xds/node-registry';
import { TYPE } from '../../src/xds/type-urls';
import { SnapshotCache } from '../../src/cache/snapshot-cache';
import { parsePolicyText } from '../../src/policy/parse';
import type { PolicySet } from '../../src/policy/documents';
import { silentLogger } from '../../src/util/logger';
import { Metrics } from '../../src/util/metrics';

const AGENTS = 50;
const ROUNDS = 20;
const PER_ROUND = 500;
const CHANNELS = 4;

v8.setFlagsFromString('--expose_gc');
const gc = vm.runInNewContext('gc') as () => void;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 8; i++) {
    gc();
    await sleep(30);
  }
  return process.memoryUsage().heapUsed;
}

function policySet(): PolicySet {
  const docs: string[] = [];
  for (let i = 0; i < AGENTS; i++) {
    docs.push(
      `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: policy-${i}, tenant: acme}\nspec:\n  agents: [agent-${i}]\n  allow:\n    - name: r1\n      hosts: [api-${i}.example.test]\n`,
    );
  }
  const f = parsePolicyText('policies/acme.yaml', docs.join('---\n'));
  if (f.errors.length > 0) throw new Error(JSON.stringify(f.errors));
  return { policies: f.policies, credentials: f.credentials };
}

/** One short-lived sidecar: first requests, its three responses (each ACKed), then a clean close. */
function oneNode(client: grpc.Client, id: string, agent: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const call = (client as unknown as Record<string, (this: grpc.Client) => grpc.ClientDuplexStream<Partial<DeltaRequestIn>, DeltaResponseOut>>).DeltaAggregatedResources!.call(client);
    let received = 0;
    const timer = setTimeout(() => {
      call.cancel();
      reject(new Error(`${id}: ${received} responses after 20 s`));
    }, 20_000);
    call.on('data', (r: DeltaResponseOut) => {
      received += 1;
      call.write({ typeUrl: r.typeUrl, responseNonce: r.nonce });
      if (received === 3) call.end();
    });
    call.on('error', (e: grpc.ServiceError) => {
      clearTimeout(timer);
      reject(new Error(`${id}: ${e.code} ${e.details}`));
    });
    call.on('status', (s: grpc.StatusObject) => {
      clearTimeout(timer);
      if (s.code === grpc.status.OK) resolve(received);
      else reject(new Error(`${id}: status ${s.code} ${s.details}`));
    });
    call.write({ node: { id, metadata: { exitgate: { listen: '127.0.0.1:15001', xds: 'delta' } } }, typeUrl: TYPE.cluster });
    call.write({ typeUrl: TYPE.listener });
    call.write({ typeUrl: TYPE.route, resourceNamesSubscribe: [`exitgate/acme/${agent}/egress`] });
  });
}

describe('node churn releases per-node state', () => {
  let server: XdsServer;
  let cache: SnapshotCache;
  let registry: NodeRegistry;
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
    cache.setPolicies(policySet());
    registry = new NodeRegistry({ graceMs: 0 });
    server = new XdsServer({ watcher: cache, registry, log: silentLogger(), metrics: new Metrics() });
    const port = await server.listen('127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
    const Client = grpc.makeGenericClientConstructor(serviceDefinition('envoy.service.discovery.v3.AggregatedDiscoveryService'), 'AggregatedDiscoveryService');
    for (let c = 0; c < CHANNELS; c++) clients.push(new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await server.close();
  });

  async function round(tag: string): Promise<void> {
    const pending: Array<Promise<number>> = [];
    for (let i = 0; i < PER_ROUND; i++) {
      const agent = `agent-${i % AGENTS}`;
      pending.push(oneNode(clients[i % CHANNELS]!, `acme/${agent}/${tag}-${i}`, agent));
    }
    const counts = await Promise.all(pending);
    expect(counts.every((c) => c === 3)).toBe(true);
  }

  it(`${ROUNDS * PER_ROUND} nodes connect and disconnect; the heap returns within 10% and no node state is left`, async () => {
    await round('warmup');
    await sleep(100);
    expect(registry.size).toBe(0);
    expect(cache.watchedSnapshots).toBe(0);
    const before = await settledHeap();

    const t0 = performance.now();
    for (let r = 0; r < ROUNDS; r++) await round(`r${r}`);
    const elapsed = performance.now() - t0;

    // The server has seen every stream end (its 'end' handler runs before the client's status).
    const deadline = Date.now() + 5_000;
    while ((registry.size > 0 || cache.watchedSnapshots > 0) && Date.now() < deadline) await sleep(20);
    expect(registry.size).toBe(0);
    expect(registry.connected).toBe(0);
    expect(cache.watchedSnapshots).toBe(0);

    const after = await settledHeap();
    const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
    // eslint-disable-next-line no-console
    console.log(
      `churn: ${ROUNDS * PER_ROUND} nodes in ${(elapsed / 1000).toFixed(1)} s; heapUsed before ${mb(before)} MB, after ${mb(after)} MB (${(((after - before) / before) * 100).toFixed(1)}%)`,
    );
    expect(after).toBeLessThanOrEqual(before * 1.1);
  }, 120_000);
});
