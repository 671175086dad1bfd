/**
 * The SotW stream state machine (src/xds/sotw-stream.ts), driven through a fake transport and a
 * real SnapshotCache: node identification, content-hash versions, ACK/NACK bookkeeping, stale
 * nonces, restart stability, per-agent isolation and make-before-break push order
 * (research/xds-protocol-notes.md; SPEC §6 guarantees 1, 4, 6, 7).
 */
import { createHash } from 'node:crypto';
import { SotwStream } from '../../src/xds/sotw-stream';
import { GRPC_STATUS, type DiscoveryRequestIn, type DiscoveryResponseOut, type StreamTransport } from '../../src/xds/messages';
import { NodeRegistry } from '../../src/xds/node-registry';
import { TYPE } from '../../src/xds/type-urls';
import { decodeToJson } from '../../src/xds/proto';
import { SnapshotCache, type ConfigWatcher, type NodeDescriptor, type Watch } from '../../src/cache/snapshot-cache';
import { translate } from '../../src/translate/translate';
import type { DrainEpochs } from '../../src/store/drain-epochs';

const NO_DRAIN: DrainEpochs = { get: () => undefined, set: () => undefined };
import type { Snapshot } from '../../src/cache/snapshot';
import { parsePolicyText } from '../../src/policy/parse';
import type { PolicySet } from '../../src/policy/documents';
import { silentLogger } from '../../src/util/logger';
import { Metrics } from '../../src/util/metrics';
import { parseCidr } from '../../src/util/cidr';

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

const LISTEN = '127.0.0.1:15001';
const nodeOf = (id: string) => ({ id, metadata: { exitgate: { listen: LISTEN } } });
const BOT = nodeOf('acme/bot/i-1');
const BOT_ROUTES = 'exitgate/acme/bot/egress';
const OTHER_ROUTES = 'exitgate/acme/other/egress';
const GLOBEX_ROUTES = 'exitgate/globex/bot/egress';

class FakeTransport implements StreamTransport {
  readonly sent: DiscoveryResponseOut[] = [];
  failure?: { code: number; message: string };
  send(response: DiscoveryResponseOut): void {
    this.sent.push(response);
  }
  fail(code: number, message: string): void {
    this.failure = { code, message };
  }
  /** Responses since the last call. */
  private seen = 0;
  take(): DiscoveryResponseOut[] {
    const out = this.sent.slice(this.seen);
    this.seen = this.sent.length;
    return out;
  }
}

const doc = (name: string, tenant: string, agents: string, hosts: string): string =>
  `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: ${name}, tenant: ${tenant}}\nspec:\n  agents: ${agents}\n  allow:\n    - name: r1\n      hosts: ${hosts}\n`;

function policySet(...docs: string[]): PolicySet {
  const f = parsePolicyText('policies/test.yaml', docs.join('---\n'));
  if (f.errors.length > 0) throw new Error(JSON.stringify(f.errors));
  return { policies: f.policies, credentials: f.credentials };
}

const BASE = [
  doc('bot-policy', 'acme', '[bot]', '[api.example.test]'),
  doc('other-policy', 'acme', '[other]', '[other.example.test]'),
  doc('globex-policy', 'globex', '[bot]', '[globex.example.test]'),
];

function newCache(set: PolicySet = policySet(...BASE), guardAllow: string[] = []): SnapshotCache {
  const cache = new SnapshotCache(
    {
      guardAllow: guardAllow.map((t) => {
        const r = parseCidr(t);
        if (!r.ok) throw new Error(r.reason);
        return r.value;
      }),
    },
    silentLogger(),
    translate,
    // Revocations drain listeners (a Listener push); that has its own tests (revocation.test.ts).
    // These focus on the stream protocol, so their policy changes never bump the drain epoch.
    NO_DRAIN,
  );
  cache.setPolicies(set);
  return cache;
}

interface Harness {
  stream: SotwStream;
  transport: FakeTransport;
  registry: NodeRegistry;
  metrics: Metrics;
}

function open(watcher: ConfigWatcher, registry = new NodeRegistry(), metrics = new Metrics()): Harness {
  const transport = new FakeTransport();
  const stream = new SotwStream(watcher, registry, transport, silentLogger(), metrics);
  return { stream, transport, registry, metrics };
}

const req = (typeUrl: string, fields: Partial<DiscoveryRequestIn> = {}): DiscoveryRequestIn => ({
  versionInfo: '',
  resourceNames: [],
  typeUrl,
  responseNonce: '',
  ...fields,
});

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');
const nameOf = (typeUrl: string, bytes: Uint8Array): string => (decodeToJson(typeUrl, bytes) as { name: string }).name;
const names = (r: DiscoveryResponseOut): string[] => r.resources.map((x) => nameOf(r.typeUrl, x.value));
const routeJson = (r: DiscoveryResponseOut) => r.resources.map((x) => decodeToJson(r.typeUrl, x.value) as { name: string; virtualHosts?: Array<{ domains: string[] }> });
const domainsOf = (r: DiscoveryResponseOut): string[] => routeJson(r).flatMap((rc) => (rc.virtualHosts ?? []).flatMap((vh) => vh.domains));

/** The content hash of what a response carries: names and the bytes of each resource. */
function contentVersion(r: DiscoveryResponseOut): string {
  const entries = r.resources.map((x) => `${nameOf(r.typeUrl, x.value)}=${sha256(x.value)}`).sort();
  return sha256(entries.join('\n')).slice(0, 16);
}

/** Opens a stream for BOT and completes CDS, LDS and RDS with ACKs; returns the versions. */
function handshake(h: Harness, node = BOT, routes = BOT_ROUTES) {
  h.stream.onRequest(req(TYPE.cluster, { node }));
  const [cds] = h.transport.take();
  h.stream.onRequest(req(TYPE.cluster, { versionInfo: cds!.versionInfo, responseNonce: cds!.nonce }));
  h.stream.onRequest(req(TYPE.listener));
  const [lds] = h.transport.take();
  h.stream.onRequest(req(TYPE.listener, { versionInfo: lds!.versionInfo, responseNonce: lds!.nonce }));
  h.stream.onRequest(req(TYPE.route, { resourceNames: [routes] }));
  const [rds] = h.transport.take();
  h.stream.onRequest(req(TYPE.route, { versionInfo: rds!.versionInfo, responseNonce: rds!.nonce, resourceNames: [routes] }));
  expect(h.transport.take()).toEqual([]);
  return { cds: cds!, lds: lds!, rds: rds! };
}

const typeStatus = (registry: NodeRegistry, node: string, type: string) => registry.list().find((n) => n.node === node)?.resources[type];

/** Delegates to a real SnapshotCache, and can also deliver a snapshot built by another real cache. */
class SwitchableWatcher implements ConfigWatcher {
  private readonly callbacks: Array<(s: Snapshot) => void> = [];
  constructor(private readonly inner: SnapshotCache) {}
  watch(node: NodeDescriptor, onChange: (s: Snapshot) => void): Watch {
    this.callbacks.push(onChange);
    return this.inner.watch(node, onChange);
  }
  deliver(s: Snapshot): void {
    for (const cb of this.callbacks) cb(s);
  }
}

function snapshotFrom(cache: SnapshotCache, node: NodeDescriptor): Snapshot {
  const w = cache.watch(node, () => undefined);
  expect(w.current).toBeDefined();
  return w.current!;
}

const BOT_DESCRIPTOR: NodeDescriptor = { tenant: 'acme', agent: 'bot', listen: { address: '127.0.0.1', port: 15001 } };

// ---------------------------------------------------------------------------------------------

describe('node identification', () => {
  it('a first request without node fails the stream with INVALID_ARGUMENT', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.cluster));
    expect(h.transport.failure?.code).toBe(GRPC_STATUS.INVALID_ARGUMENT);
    expect(h.transport.failure?.message).toMatch(/node/);
    expect(h.transport.sent).toEqual([]);
    expect(h.registry.size).toBe(0);
    // the stream is dead: a later request with a node gets nothing
    h.stream.onRequest(req(TYPE.cluster, { node: BOT }));
    expect(h.transport.sent).toEqual([]);
    expect(h.registry.size).toBe(0);
  });

  it('a node without an id fails with INVALID_ARGUMENT', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.cluster, { node: { id: '', metadata: BOT.metadata } }));
    expect(h.transport.failure?.code).toBe(GRPC_STATUS.INVALID_ARGUMENT);
  });

  it.each(['acme/bot', 'acme/bot/i-1/extra', 'Acme/bot/i-1', 'acme/bot_1/i-1', 'acme/bot/i 1', '/bot/i-1', 'acme//i-1', '../../etc'])(
    'a bad node id (%j) fails with INVALID_ARGUMENT and is not registered',
    (id) => {
      const h = open(newCache());
      h.stream.onRequest(req(TYPE.cluster, { node: nodeOf(id) }));
      expect(h.transport.failure?.code).toBe(GRPC_STATUS.INVALID_ARGUMENT);
      expect(h.transport.sent).toEqual([]);
      expect(h.registry.size).toBe(0);
    },
  );

  it('a node without exitgate.listen metadata fails with INVALID_ARGUMENT', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.cluster, { node: { id: 'acme/bot/i-1' } }));
    expect(h.transport.failure?.code).toBe(GRPC_STATUS.INVALID_ARGUMENT);
    expect(h.transport.failure?.message).toMatch(/listen/);
  });

  it('the node only has to be on the first request', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.cluster, { node: BOT }));
    h.stream.onRequest(req(TYPE.listener)); // no node
    expect(h.transport.failure).toBeUndefined();
    expect(h.transport.sent.map((r) => r.typeUrl)).toEqual([TYPE.cluster, TYPE.listener]);
  });

  it('registers the node while its stream is open; keeps its state for the reconnect grace period', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.cluster, { node: BOT }));
    expect(h.registry.list().map((n) => [n.node, n.tenant, n.agent])).toEqual([['acme/bot/i-1', 'acme', 'bot']]);
    expect(h.registry.connected).toBe(1);
    expect(h.registry.list()[0]!.disconnectedAt).toBeUndefined();
    h.stream.onClose();
    expect(h.registry.connected).toBe(0);
    expect(h.registry.list()[0]!.disconnectedAt).toBeDefined();
    expect(h.registry.list()[0]!.resources[TYPE.cluster]?.sentVersion).toBeDefined(); // history kept
  });

  it('with no grace period the node is dropped when its last stream closes', () => {
    const h = open(newCache(), new NodeRegistry({ graceMs: 0 }));
    h.stream.onRequest(req(TYPE.cluster, { node: BOT }));
    expect(h.registry.size).toBe(1);
    h.stream.onClose();
    expect(h.registry.size).toBe(0);
  });
});

describe('initial requests and content-hash versions', () => {
  it('CDS and LDS wildcard (empty names) requests get the full state, versioned by content', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.cluster, { node: BOT }));
    h.stream.onRequest(req(TYPE.listener));
    const [cds, lds] = h.transport.take();
    expect(cds!.typeUrl).toBe(TYPE.cluster);
    expect(names(cds!)).toEqual(['exitgate/dfp']);
    expect(cds!.resources.every((r) => r.typeUrl === TYPE.cluster)).toBe(true);
    expect(lds!.typeUrl).toBe(TYPE.listener);
    expect(names(lds!)).toEqual(['exitgate/acme/bot/egress']);
    for (const r of [cds!, lds!]) {
      expect(r.versionInfo).toMatch(/^[0-9a-f]{16}$/);
      expect(r.versionInfo).toBe(contentVersion(r));
      expect(r.nonce).not.toBe('');
    }
    expect(cds!.nonce).not.toBe(lds!.nonce);
  });

  it('records what was sent per type, and nothing as acknowledged yet', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.cluster, { node: BOT }));
    const [cds] = h.transport.take();
    expect(typeStatus(h.registry, 'acme/bot/i-1', TYPE.cluster)).toEqual({ sentVersion: cds!.versionInfo });
  });

  it('the same content has the same version in an independent cache (a restarted control plane)', () => {
    const a = open(newCache());
    const b = open(newCache());
    const va = handshake(a);
    const vb = handshake(b);
    expect([vb.cds.versionInfo, vb.lds.versionInfo, vb.rds.versionInfo]).toEqual([va.cds.versionInfo, va.lds.versionInfo, va.rds.versionInfo]);
  });

  it('different content has a different version', () => {
    const a = handshake(open(newCache()));
    const b = handshake(open(newCache(policySet(doc('bot-policy', 'acme', '[bot]', '[changed.example.test]')))));
    expect(b.rds.versionInfo).not.toBe(a.rds.versionInfo);
    expect(b.cds.versionInfo).toBe(a.cds.versionInfo); // clusters do not depend on policy
  });
});

describe('ACK', () => {
  it('an ACK is recorded per type and triggers no response', () => {
    const h = open(newCache());
    const v = handshake(h);
    const node = 'acme/bot/i-1';
    expect(typeStatus(h.registry, node, TYPE.cluster)).toEqual({ sentVersion: v.cds.versionInfo, ackedVersion: v.cds.versionInfo });
    expect(typeStatus(h.registry, node, TYPE.listener)).toEqual({ sentVersion: v.lds.versionInfo, ackedVersion: v.lds.versionInfo });
    expect(typeStatus(h.registry, node, TYPE.route)).toEqual({ sentVersion: v.rds.versionInfo, ackedVersion: v.rds.versionInfo });
    expect(h.transport.sent).toHaveLength(3);
  });

  it('repeated ACKs of the current version send nothing', () => {
    const h = open(newCache());
    const v = handshake(h);
    for (let i = 0; i < 3; i++) h.stream.onRequest(req(TYPE.cluster, { versionInfo: v.cds.versionInfo, responseNonce: v.cds.nonce }));
    expect(h.transport.take()).toEqual([]);
  });
});

describe('stale nonces', () => {
  it('a request carrying an older nonce is ignored: no response, no ACK recorded', () => {
    const cache = newCache();
    const h = open(cache);
    h.stream.onRequest(req(TYPE.cluster, { node: BOT }));
    h.stream.onRequest(req(TYPE.route, { resourceNames: [BOT_ROUTES] }));
    const [, rds1] = h.transport.take();
    // a policy change pushes a new RDS version before the client answered the first
    cache.setPolicies(policySet(doc('bot-policy', 'acme', '[bot]', '[api2.example.test]')));
    const [rds2] = h.transport.take();
    expect(rds2!.typeUrl).toBe(TYPE.route);
    expect(rds2!.nonce).not.toBe(rds1!.nonce);

    // the ACK for the first response arrives late: stale
    h.stream.onRequest(req(TYPE.route, { versionInfo: rds1!.versionInfo, responseNonce: rds1!.nonce, resourceNames: [BOT_ROUTES] }));
    expect(h.transport.take()).toEqual([]);
    expect(typeStatus(h.registry, 'acme/bot/i-1', TYPE.route)?.ackedVersion).toBeUndefined();

    // a stale NACK is ignored too
    h.stream.onRequest(req(TYPE.route, { responseNonce: rds1!.nonce, resourceNames: [BOT_ROUTES], errorDetail: { code: 3, message: 'late' } }));
    expect(typeStatus(h.registry, 'acme/bot/i-1', TYPE.route)?.lastNack).toBeUndefined();

    // a subscription change carried by a stale request is not applied
    h.stream.onRequest(req(TYPE.route, { responseNonce: rds1!.nonce, resourceNames: [BOT_ROUTES, 'something-else'] }));
    expect(h.transport.take()).toEqual([]);
    h.stream.onRequest(req(TYPE.route, { responseNonce: rds1!.nonce, resourceNames: [] })); // a stale unsubscribe
    expect(h.transport.take()).toEqual([]);

    // the current nonce is honoured
    h.stream.onRequest(req(TYPE.route, { versionInfo: rds2!.versionInfo, responseNonce: rds2!.nonce, resourceNames: [BOT_ROUTES] }));
    expect(typeStatus(h.registry, 'acme/bot/i-1', TYPE.route)?.ackedVersion).toBe(rds2!.versionInfo);
    expect(h.transport.take()).toEqual([]);
  });

  it('a nonce this stream never sent is stale', () => {
    const h = open(newCache());
    const v = handshake(h);
    h.stream.onRequest(req(TYPE.listener, { versionInfo: 'bogus', responseNonce: 'not-a-nonce-we-sent' }));
    expect(h.transport.take()).toEqual([]);
    expect(typeStatus(h.registry, 'acme/bot/i-1', TYPE.listener)?.ackedVersion).toBe(v.lds.versionInfo);
  });
});

describe('NACK', () => {
  function nackSetup() {
    const cache = newCache();
    const h = open(cache);
    const v = handshake(h);
    cache.setPolicies(policySet(doc('bot-policy', 'acme', '[bot]', '[rejected.example.test]')));
    const [bad] = h.transport.take();
    expect(bad!.typeUrl).toBe(TYPE.route);
    // Envoy rejects it: error_detail, and version_info stays the last good one
    h.stream.onRequest(
      req(TYPE.route, { versionInfo: v.rds.versionInfo, responseNonce: bad!.nonce, resourceNames: [BOT_ROUTES], errorDetail: { code: 3, message: 'Proto constraint validation failed' } }),
    );
    return { cache, h, v, bad: bad! };
  }

  it('is recorded per node and type with the error text and the rejected version', () => {
    const { h, v, bad } = nackSetup();
    const status = typeStatus(h.registry, 'acme/bot/i-1', TYPE.route)!;
    expect(status.lastNack).toMatchObject({ version: bad.versionInfo, message: 'Proto constraint validation failed' });
    expect(status.ackedVersion).toBe(v.rds.versionInfo); // the last good version stays acknowledged
  });

  it('the rejected version is not resent (no loop)', () => {
    const { cache, h, v, bad } = nackSetup();
    expect(h.transport.take()).toEqual([]);
    // The client repeats its last good state; nothing is pushed again.
    h.stream.onRequest(req(TYPE.route, { versionInfo: v.rds.versionInfo, responseNonce: bad.nonce, resourceNames: [BOT_ROUTES] }));
    h.stream.onRequest(req(TYPE.route, { versionInfo: v.rds.versionInfo, responseNonce: bad.nonce, resourceNames: [BOT_ROUTES] }));
    // Re-applying the same policies (e.g. a file touched without change) pushes nothing either.
    cache.setPolicies(policySet(doc('bot-policy', 'acme', '[bot]', '[rejected.example.test]')));
    expect(h.transport.take()).toEqual([]);
    expect(h.transport.sent.filter((r) => r.versionInfo === bad.versionInfo)).toHaveLength(1);
  });

  it('a later, different policy change is sent', () => {
    const { cache, h, bad } = nackSetup();
    cache.setPolicies(policySet(doc('bot-policy', 'acme', '[bot]', '[fixed.example.test]')));
    const out = h.transport.take();
    expect(out).toHaveLength(1);
    expect(out[0]!.typeUrl).toBe(TYPE.route);
    expect(out[0]!.versionInfo).not.toBe(bad.versionInfo);
    expect(domainsOf(out[0]!)).toContain('fixed.example.test:443');
    h.stream.onRequest(req(TYPE.route, { versionInfo: out[0]!.versionInfo, responseNonce: out[0]!.nonce, resourceNames: [BOT_ROUTES] }));
    expect(typeStatus(h.registry, 'acme/bot/i-1', TYPE.route)?.ackedVersion).toBe(out[0]!.versionInfo);
  });

  it('a NACK of the very first response leaves the client with nothing and resends nothing', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.listener, { node: BOT }));
    const [lds] = h.transport.take();
    h.stream.onRequest(req(TYPE.listener, { responseNonce: lds!.nonce, errorDetail: { code: 13, message: 'cannot bind' } }));
    expect(h.transport.take()).toEqual([]);
    expect(typeStatus(h.registry, 'acme/bot/i-1', TYPE.listener)).toMatchObject({ sentVersion: lds!.versionInfo, lastNack: { version: lds!.versionInfo, message: 'cannot bind' } });
    expect(typeStatus(h.registry, 'acme/bot/i-1', TYPE.listener)?.ackedVersion).toBeUndefined();
  });

  // Regression: the NACKed version was remembered for the life of the stream, so after the client
  // moved on, a policy change back to that content (e.g. a revocation) was never sent (SPEC §6.1/6.2).
  // A NACK blocks resending only until the client ACKs a version sent after it.
  it('once the client has ACKed a newer version, content equal to an old NACKed version is sent again', () => {
    const { cache, h } = nackSetup(); // rejected: allow rejected.example.test
    cache.setPolicies(policySet(doc('bot-policy', 'acme', '[bot]', '[rejected.example.test, extra.example.test]')));
    const [wider] = h.transport.take();
    expect(wider).toBeDefined();
    h.stream.onRequest(req(TYPE.route, { versionInfo: wider!.versionInfo, responseNonce: wider!.nonce, resourceNames: [BOT_ROUTES] }));
    expect(typeStatus(h.registry, 'acme/bot/i-1', TYPE.route)?.ackedVersion).toBe(wider!.versionInfo);
    // The operator revokes extra.example.test: the policy is now what was once NACKed.
    cache.setPolicies(policySet(doc('bot-policy', 'acme', '[bot]', '[rejected.example.test]')));
    const out = h.transport.take();
    expect(out).toHaveLength(1);
    expect(domainsOf(out[0]!)).not.toContain('extra.example.test:443');
  });
});

describe('reconnect and control-plane restart', () => {
  it('a new stream whose first requests carry the current versions is sent nothing', () => {
    const before = handshake(open(newCache()));
    // Control plane restarts: a new cache and registry, same policies.
    const registry = new NodeRegistry();
    const h = open(newCache(), registry);
    h.stream.onRequest(req(TYPE.cluster, { node: BOT, versionInfo: before.cds.versionInfo }));
    h.stream.onRequest(req(TYPE.listener, { versionInfo: before.lds.versionInfo }));
    h.stream.onRequest(req(TYPE.route, { versionInfo: before.rds.versionInfo, resourceNames: [BOT_ROUTES] }));
    expect(h.transport.sent).toEqual([]);
    expect(h.transport.failure).toBeUndefined();
    expect(registry.size).toBe(1);
  });

  it('also when the reconnecting client echoes nonces of its previous stream', () => {
    const before = handshake(open(newCache()));
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.cluster, { node: BOT, versionInfo: before.cds.versionInfo, responseNonce: before.cds.nonce }));
    h.stream.onRequest(req(TYPE.listener, { versionInfo: before.lds.versionInfo, responseNonce: before.lds.nonce }));
    h.stream.onRequest(req(TYPE.route, { versionInfo: before.rds.versionInfo, responseNonce: before.rds.nonce, resourceNames: [BOT_ROUTES] }));
    expect(h.transport.sent).toEqual([]);
  });

  it('a reconnecting client with an outdated version is sent the current one, and only for that type', () => {
    const before = handshake(open(newCache()));
    const h = open(newCache(policySet(doc('bot-policy', 'acme', '[bot]', '[new.example.test]'))));
    h.stream.onRequest(req(TYPE.cluster, { node: BOT, versionInfo: before.cds.versionInfo }));
    h.stream.onRequest(req(TYPE.listener, { versionInfo: before.lds.versionInfo }));
    h.stream.onRequest(req(TYPE.route, { versionInfo: before.rds.versionInfo, resourceNames: [BOT_ROUTES] }));
    const out = h.transport.take();
    expect(out.map((r) => r.typeUrl)).toEqual([TYPE.route]);
    expect(domainsOf(out[0]!)).toContain('new.example.test:443');
  });

  it('a stream that closes and reopens for the same node gets its configuration again', () => {
    const cache = newCache();
    const registry = new NodeRegistry();
    const first = open(cache, registry);
    handshake(first);
    first.stream.onClose();
    expect(registry.connected).toBe(0);
    const second = open(cache, registry);
    const v = handshake(second); // fresh client (no versions): everything is sent
    expect(v.rds.resources).toHaveLength(1);
    expect(registry.connected).toBe(1);
    expect(registry.list()[0]!.disconnectedAt).toBeUndefined();
  });
});

describe('isolation between agents and tenants', () => {
  it('RDS returns only the named route configuration of this agent', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.route, { node: BOT, resourceNames: [BOT_ROUTES] }));
    const [rds] = h.transport.take();
    expect(names(rds!)).toEqual([BOT_ROUTES]);
    expect(domainsOf(rds!)).toContain('api.example.test:443');
  });

  it.each([
    ['another agent', OTHER_ROUTES, 'other.example.test'],
    ['another tenant', GLOBEX_ROUTES, 'globex.example.test'],
  ])('nothing of %s is sent when its route config is named', (_what, routes, host) => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.route, { node: BOT, resourceNames: [routes] }));
    h.stream.onRequest(req(TYPE.route, { resourceNames: [routes, BOT_ROUTES], responseNonce: h.transport.sent.at(-1)?.nonce ?? '' }));
    for (const r of h.transport.sent) {
      expect(names(r)).not.toContain(routes);
      expect(domainsOf(r).some((d) => d.includes(host))).toBe(false);
      expect(Buffer.concat(r.resources.map((x) => Buffer.from(x.value))).includes(host)).toBe(false);
    }
  });

  it('an explicit "*" RDS subscription still only yields this agent\'s route configuration', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.route, { node: BOT, resourceNames: ['*'] }));
    const [rds] = h.transport.take();
    expect(names(rds!)).toEqual([BOT_ROUTES]);
  });

  it('a policy change affecting only another agent or tenant pushes nothing to this stream', () => {
    const cache = newCache();
    const h = open(cache);
    handshake(h);
    cache.setPolicies(
      policySet(
        doc('bot-policy', 'acme', '[bot]', '[api.example.test]'),
        doc('other-policy', 'acme', '[other]', '[other.example.test, more.example.test]'),
        doc('globex-policy', 'globex', '[bot]', '[globex.example.test, more.example.test]'),
        doc('new-other', 'acme', '[other]', '[new.example.test]'),
      ),
    );
    expect(h.transport.take()).toEqual([]);
  });

  it('the same change reaches a stream of the affected agent', () => {
    const cache = newCache();
    const bot = open(cache);
    const other = open(cache);
    handshake(bot);
    handshake(other, nodeOf('acme/other/i-9'), OTHER_ROUTES);
    cache.setPolicies(policySet(doc('bot-policy', 'acme', '[bot]', '[api.example.test]'), doc('other-policy', 'acme', '[other]', '[changed.example.test]')));
    expect(bot.transport.take()).toEqual([]);
    const pushed = other.transport.take();
    expect(pushed.map((r) => r.typeUrl)).toEqual([TYPE.route]);
    expect(domainsOf(pushed[0]!)).toContain('changed.example.test:443');
  });

  it('a policy naming "*" reaches every agent of its tenant and no other tenant', () => {
    const cache = newCache();
    const bot = open(cache);
    const globex = open(cache);
    handshake(bot);
    handshake(globex, nodeOf('globex/bot/i-1'), GLOBEX_ROUTES);
    cache.setPolicies(policySet(...BASE, doc('everyone', 'acme', '["*"]', '[shared.example.test]')));
    expect(bot.transport.take().map((r) => r.typeUrl)).toEqual([TYPE.route]);
    expect(globex.transport.take()).toEqual([]);
  });
});

describe('push order (make-before-break)', () => {
  it('when clusters, listeners and routes all change, they are pushed CDS, then LDS, then RDS', () => {
    const watcher = new SwitchableWatcher(newCache());
    const h = open(watcher);
    // Subscribe in the "wrong" order: routes first.
    h.stream.onRequest(req(TYPE.route, { node: BOT, resourceNames: [BOT_ROUTES] }));
    h.stream.onRequest(req(TYPE.listener));
    h.stream.onRequest(req(TYPE.cluster));
    const initial = h.transport.take();
    for (const r of initial) h.stream.onRequest(req(r.typeUrl, { versionInfo: r.versionInfo, responseNonce: r.nonce, ...(r.typeUrl === TYPE.route ? { resourceNames: [BOT_ROUTES] } : {}) }));
    // A real cache with other server settings (a guard exemption changes the DFP cluster and the
    // listener's DNS cache) and other policies (routes) builds a snapshot differing in all three.
    const next = snapshotFrom(newCache(policySet(doc('bot-policy', 'acme', '[bot]', '[next.example.test]')), ['127.0.0.2/32']), BOT_DESCRIPTOR);
    watcher.deliver(next);
    const pushed = h.transport.take();
    expect(pushed.map((r) => r.typeUrl)).toEqual([TYPE.cluster, TYPE.listener, TYPE.route]);
    for (const r of pushed) expect(r.versionInfo).toBe(contentVersion(r));
  });

  it('only the types whose content changed are pushed', () => {
    const watcher = new SwitchableWatcher(newCache());
    const h = open(watcher);
    h.stream.onRequest(req(TYPE.cluster, { node: BOT }));
    h.stream.onRequest(req(TYPE.listener));
    h.stream.onRequest(req(TYPE.route, { resourceNames: [BOT_ROUTES] }));
    for (const r of h.transport.take()) h.stream.onRequest(req(r.typeUrl, { versionInfo: r.versionInfo, responseNonce: r.nonce, ...(r.typeUrl === TYPE.route ? { resourceNames: [BOT_ROUTES] } : {}) }));
    const sameServerNewPolicy = snapshotFrom(newCache(policySet(doc('bot-policy', 'acme', '[bot]', '[next.example.test]'))), BOT_DESCRIPTOR);
    watcher.deliver(sameServerNewPolicy);
    expect(h.transport.take().map((r) => r.typeUrl)).toEqual([TYPE.route]);
  });
});

describe('wildcard subscriptions', () => {
  const bigger = () => snapshotFrom(newCache(undefined, ['10.0.0.0/8']), BOT_DESCRIPTOR);

  it('legacy wildcard: an empty first CDS request stays a wildcard across later empty requests', () => {
    const watcher = new SwitchableWatcher(newCache());
    const h = open(watcher);
    h.stream.onRequest(req(TYPE.cluster, { node: BOT }));
    const [cds] = h.transport.take();
    expect(names(cds!)).toEqual(['exitgate/dfp']);
    h.stream.onRequest(req(TYPE.cluster, { versionInfo: cds!.versionInfo, responseNonce: cds!.nonce })); // ACK, names still empty
    expect(h.transport.take()).toEqual([]);
    watcher.deliver(bigger());
    const [next] = h.transport.take();
    expect(next!.typeUrl).toBe(TYPE.cluster);
    expect(names(next!)).toEqual(['exitgate/dfp']); // still the full state
  });

  it('explicit "*" subscribes to everything', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.cluster, { node: BOT, resourceNames: ['*'] }));
    h.stream.onRequest(req(TYPE.listener, { resourceNames: ['*'] }));
    const [cds, lds] = h.transport.take();
    expect(names(cds!)).toEqual(['exitgate/dfp']);
    expect(names(lds!)).toEqual(['exitgate/acme/bot/egress']);
  });

  it('the legacy wildcard ends at the first non-empty request; a later empty list then means nothing', () => {
    const watcher = new SwitchableWatcher(newCache());
    const h = open(watcher);
    h.stream.onRequest(req(TYPE.cluster, { node: BOT }));
    const [cds] = h.transport.take();
    h.stream.onRequest(req(TYPE.cluster, { versionInfo: cds!.versionInfo, responseNonce: cds!.nonce, resourceNames: ['exitgate/dfp'] }));
    expect(h.transport.take()).toEqual([]); // same content, same version
    h.stream.onRequest(req(TYPE.cluster, { versionInfo: cds!.versionInfo, responseNonce: cds!.nonce, resourceNames: [] }));
    // Unsubscribed from everything: whatever is sent (if anything) carries no cluster.
    for (const r of h.transport.take()) expect(r.resources).toEqual([]);
    watcher.deliver(bigger());
    for (const r of h.transport.take()) expect(r.resources).toEqual([]);
  });

  it('after explicit "*", an empty list unsubscribes (no legacy wildcard)', () => {
    const watcher = new SwitchableWatcher(newCache());
    const h = open(watcher);
    h.stream.onRequest(req(TYPE.cluster, { node: BOT, resourceNames: ['*'] }));
    const [cds] = h.transport.take();
    expect(cds!.resources).toHaveLength(1);
    h.stream.onRequest(req(TYPE.cluster, { versionInfo: cds!.versionInfo, responseNonce: cds!.nonce, resourceNames: [] }));
    for (const r of h.transport.take()) expect(r.resources).toEqual([]);
    watcher.deliver(bigger());
    for (const r of h.transport.take()) expect(r.resources).toEqual([]);
  });

  it('RDS has no legacy wildcard: an empty first RDS request yields no route configuration', () => {
    const h = open(newCache());
    h.stream.onRequest(req(TYPE.route, { node: BOT }));
    for (const r of h.transport.take()) expect(r.resources).toEqual([]);
  });
});
