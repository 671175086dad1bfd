/**
 * The real gRPC server end to end: XdsServer on loopback, a real @grpc/grpc-js client built from
 * ADS_SERVICE, one bidi StreamAggregatedResources call per test. Checks the wire: codec, node
 * handshake, ACK bookkeeping, pushes on policy change, and the status a refused stream ends with.
 */
import * as grpc from '@grpc/grpc-js';
import { XdsServer } from '../../src/xds/server';
import { ADS_SERVICE } from '../../src/xds/grpc-codec';
import type { DiscoveryRequestIn, DiscoveryResponseOut } from '../../src/xds/messages';
import { NodeRegistry } from '../../src/xds/node-registry';
import { TYPE } from '../../src/xds/type-urls';
import { decodeToJson } from '../../src/xds/proto';
import { SnapshotCache } from '../../src/cache/snapshot-cache';
import { parsePolicyText } from '../../src/policy/parse';
import type { PolicySet } from '../../src/policy/documents';
import { silentLogger } from '../../src/util/logger';
import { Metrics } from '../../src/util/metrics';

type Req = Partial<DiscoveryRequestIn> & { node?: { id: string; metadata?: Record<string, unknown> } };
type Call = grpc.ClientDuplexStream<Req, DiscoveryResponseOut>;

const META = { exitgate: { listen: '127.0.0.1:15001' } };
/** A distinct instance per test: the registry keeps a node's state for a grace period after it leaves. */
let instance = 0;
const nextNode = () => ({ id: `acme/bot/i-${++instance}`, metadata: META });
const ROUTES = 'exitgate/acme/bot/egress';

function policySet(hosts: string): PolicySet {
  const f = parsePolicyText(
    'policies/acme.yaml',
    `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: bot-policy, tenant: acme}\nspec:\n  agents: [bot]\n  allow:\n    - name: r1\n      hosts: ${hosts}\n`,
  );
  if (f.errors.length > 0) throw new Error(JSON.stringify(f.errors));
  return { policies: f.policies, credentials: [] };
}

/** A bidi call with an awaitable queue of responses and its final status. */
class AdsCall {
  readonly call: Call;
  private readonly queue: DiscoveryResponseOut[] = [];
  private waiters: Array<() => void> = [];
  status?: { code: number; details: string };
  error?: grpc.ServiceError;
  private readonly ended: Promise<void>;

  constructor(client: grpc.Client) {
    const method = (client as unknown as Record<string, (this: grpc.Client) => Call>).StreamAggregatedResources!;
    this.call = method.call(client);
    this.call.on('data', (r: DiscoveryResponseOut) => {
      this.queue.push(r);
      this.wake();
    });
    this.ended = new Promise((resolve) => {
      this.call.on('status', (s: grpc.StatusObject) => {
        this.status = { code: s.code, details: s.details };
        this.wake();
        resolve();
      });
    });
    this.call.on('error', (e: grpc.ServiceError) => {
      this.error = e;
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  send(r: Req): void {
    this.call.write(r);
  }

  async next(timeoutMs = 5000): Promise<DiscoveryResponseOut> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.status) throw new Error(`stream ended: ${this.status.code} ${this.status.details}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a response');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.queue.shift()!;
  }

  /** Waits a little and returns whatever arrived (expecting usually nothing). */
  async drain(ms = 300): Promise<DiscoveryResponseOut[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.splice(0);
  }

  async finished(timeoutMs = 5000): Promise<{ code: number; details: string }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no status')), timeoutMs);
    });
    try {
      await Promise.race([this.ended, timeout]);
    } finally {
      clearTimeout(timer);
    }
    return this.status!;
  }

  end(): void {
    this.call.end();
  }
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const nameOf = (r: DiscoveryResponseOut, i = 0) => (decodeToJson(r.typeUrl, r.resources[i]!.value) as { name: string }).name;

describe('XdsServer over real gRPC', () => {
  let server: XdsServer;
  let cache: SnapshotCache;
  let registry: NodeRegistry;
  let client: grpc.Client;
  const calls: AdsCall[] = [];

  const openCall = (): AdsCall => {
    const c = new AdsCall(client);
    calls.push(c);
    return c;
  };

  beforeAll(async () => {
    cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
    cache.setPolicies(policySet('[api.example.test]'));
    registry = new NodeRegistry();
    server = new XdsServer({ watcher: cache, registry, log: silentLogger(), metrics: new Metrics() });
    const port = await server.listen('127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
    expect(port).toBeGreaterThan(0);
    const Client = grpc.makeGenericClientConstructor(ADS_SERVICE, 'AggregatedDiscoveryService');
    client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  afterEach(async () => {
    for (const c of calls.splice(0)) c.call.cancel();
    await until(() => registry.connected === 0);
  });

  afterAll(async () => {
    client.close();
    await server.close();
  });

  it('handshake: CDS, LDS and RDS are served and ACKs are recorded', async () => {
    const NODE = nextNode();
    const mine = () => registry.list().find((n) => n.node === NODE.id);
    const c = openCall();
    c.send({ node: NODE, typeUrl: TYPE.cluster });
    const cds = await c.next();
    expect(cds.typeUrl).toBe(TYPE.cluster);
    expect(cds.versionInfo).toMatch(/^[0-9a-f]{16}$/);
    expect(nameOf(cds)).toBe('exitgate/dfp');
    c.send({ typeUrl: TYPE.cluster, versionInfo: cds.versionInfo, responseNonce: cds.nonce });

    c.send({ typeUrl: TYPE.listener });
    const lds = await c.next();
    expect(lds.typeUrl).toBe(TYPE.listener);
    expect(nameOf(lds)).toBe('exitgate/acme/bot/egress');
    c.send({ typeUrl: TYPE.listener, versionInfo: lds.versionInfo, responseNonce: lds.nonce });

    c.send({ typeUrl: TYPE.route, resourceNames: [ROUTES] });
    const rds = await c.next();
    expect(rds.typeUrl).toBe(TYPE.route);
    expect(nameOf(rds)).toBe(ROUTES);
    c.send({ typeUrl: TYPE.route, versionInfo: rds.versionInfo, responseNonce: rds.nonce, resourceNames: [ROUTES] });

    await until(() => mine()?.resources[TYPE.route]?.ackedVersion === rds.versionInfo);
    const status = mine()!;
    expect(status).toMatchObject({ node: NODE.id, tenant: 'acme', agent: 'bot' });
    expect(status.resources[TYPE.cluster]).toEqual({ sentVersion: cds.versionInfo, ackedVersion: cds.versionInfo });
    expect(status.resources[TYPE.listener]).toEqual({ sentVersion: lds.versionInfo, ackedVersion: lds.versionInfo });
    expect(status.resources[TYPE.route]).toEqual({ sentVersion: rds.versionInfo, ackedVersion: rds.versionInfo });
    // ACKs trigger nothing more
    expect(await c.drain()).toEqual([]);
  });

  it('a policy change is pushed on the open stream; a NACK is recorded and not answered', async () => {
    const NODE = nextNode();
    const mine = () => registry.list().find((n) => n.node === NODE.id);
    const c = openCall();
    c.send({ node: NODE, typeUrl: TYPE.route, resourceNames: [ROUTES] });
    const first = await c.next();
    c.send({ typeUrl: TYPE.route, versionInfo: first.versionInfo, responseNonce: first.nonce, resourceNames: [ROUTES] });
    await until(() => mine()?.resources[TYPE.route]?.ackedVersion === first.versionInfo);

    cache.setPolicies(policySet('[api.example.test, new.example.test]'));
    const pushed = await c.next();
    expect(pushed.typeUrl).toBe(TYPE.route);
    expect(pushed.versionInfo).not.toBe(first.versionInfo);
    c.send({ typeUrl: TYPE.route, versionInfo: first.versionInfo, responseNonce: pushed.nonce, resourceNames: [ROUTES], errorDetail: { code: 3, message: 'rejected by test' } });
    await until(() => mine()?.resources[TYPE.route]?.lastNack !== undefined);
    expect(mine()!.resources[TYPE.route]!.lastNack).toMatchObject({ version: pushed.versionInfo, message: 'rejected by test' });
    expect(await c.drain()).toEqual([]);
    cache.setPolicies(policySet('[api.example.test]'));
  });

  it('a stream whose first request has no node ends with INVALID_ARGUMENT', async () => {
    const c = openCall();
    c.send({ typeUrl: TYPE.cluster });
    const status = await c.finished();
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toMatch(/node/);
    expect(registry.connected).toBe(0);
  });

  it('a stream with a malformed node id ends with INVALID_ARGUMENT', async () => {
    const c = openCall();
    c.send({ node: { id: 'not-a-node-id', metadata: META }, typeUrl: TYPE.cluster });
    const status = await c.finished();
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(registry.connected).toBe(0);
    expect(registry.list().some((n) => n.node === 'not-a-node-id')).toBe(false);
  });

  it('closing the stream marks the node disconnected (state kept for the grace period)', async () => {
    const NODE = nextNode();
    const mine = () => registry.list().find((n) => n.node === NODE.id);
    const c = openCall();
    c.send({ node: NODE, typeUrl: TYPE.cluster });
    await c.next();
    expect(registry.connected).toBe(1);
    expect(mine()?.disconnectedAt).toBeUndefined();
    c.end();
    await until(() => registry.connected === 0);
    expect(mine()?.disconnectedAt).toBeDefined();
  });
});
