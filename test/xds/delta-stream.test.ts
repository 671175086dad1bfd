/**
 * The incremental (Delta) xDS stream state machine (src/xds/delta-stream.ts), driven through a
 * fake DeltaTransport and a real SnapshotCache built from real policies. One test per protocol
 * rule of research/xds-protocol-notes.md and the Envoy xDS protocol (incremental variant); every
 * test asserts the exact responses (how many, which names, which removals).
 *
 * Invariants checked after every test, on every response of every stream opened here:
 * - no name appears twice within one response (resources, removed_resources, or both);
 * - each resource's declared name is the name inside its bytes, its version is the sha256 of
 *   its bytes (content-hash versions), its Any type is the response's type;
 * - nothing of another agent or tenant is ever sent to acme/bot (isolation).
 */
import { createHash } from 'node:crypto';
import { DeltaStream } from '../../src/xds/delta-stream';
import { GRPC_STATUS, type DeltaRequestIn, type DeltaResponseOut, type DeltaTransport } from '../../src/xds/messages';
import { NodeRegistry } from '../../src/xds/node-registry';
import { TYPE, shortType, type TypeUrl } from '../../src/xds/type-urls';
import { decodeToJson } from '../../src/xds/proto';
import { SnapshotCache, type ConfigWatcher, type NodeDescriptor, type Watch } from '../../src/cache/snapshot-cache';
import { translate } from '../../src/translate/translate';
import type { DrainEpochs } from '../../src/store/drain-epochs';

const NO_DRAIN: DrainEpochs = { get: () => undefined, set: () => undefined };
import { makeSnapshot, type Snapshot } from '../../src/cache/snapshot';
import { EncodedResourceTable, type EncodedResource } from '../../src/cache/encoded';
import { parsePolicyText } from '../../src/policy/parse';
import type { PolicySet } from '../../src/policy/documents';
import { silentLogger } from '../../src/util/logger';
import { Metrics } from '../../src/util/metrics';
import { parseCidr } from '../../src/util/cidr';

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

const LISTEN = '127.0.0.1:15001';
const nodeOf = (id: string) => ({ id, metadata: { exitgate: { listen: LISTEN, xds: 'delta' } } });
const BOT = nodeOf('acme/bot/i-1');
const BOT_NAME = 'acme/bot/i-1';
const DFP = 'exitgate/dfp';
const BOT_LISTENER = 'exitgate/acme/bot/egress';
const BOT_ROUTES = 'exitgate/acme/bot/egress';
const OTHER_LISTENER = 'exitgate/acme/other/egress';
const OTHER_ROUTES = 'exitgate/acme/other/egress';
const GLOBEX_ROUTES = 'exitgate/globex/bot/egress';
const BOT_DESCRIPTOR: NodeDescriptor = { tenant: 'acme', agent: 'bot', listen: { address: '127.0.0.1', port: 15001 }, xdsProtocol: 'delta' };

class FakeDeltaTransport implements DeltaTransport {
  readonly sent: DeltaResponseOut[] = [];
  failure?: { code: number; message: string };
  private seen = 0;
  send(response: DeltaResponseOut): void {
    this.sent.push(response);
  }
  fail(code: number, message: string): void {
    this.failure = { code, message };
  }
  /** Responses since the last call. */
  take(): DeltaResponseOut[] {
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

const OTHER_DOC = doc('other-policy', 'acme', '[other]', '[other.example.test]');
const GLOBEX_DOC = doc('globex-policy', 'globex', '[bot]', '[globex.example.test]');
const botDoc = (hosts: string) => doc('bot-policy', 'acme', '[bot]', hosts);
/** The policy set with bot allowed `hosts` (other agents unchanged). */
const withBot = (hosts: string) => policySet(botDoc(hosts), OTHER_DOC, GLOBEX_DOC);
const BASE = () => withBot('[api.example.test]');

function newCache(set: PolicySet = BASE(), guardAllow: string[] = []): SnapshotCache {
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
  stream: DeltaStream;
  transport: FakeDeltaTransport;
  registry: NodeRegistry;
  metrics: Metrics;
}

const opened: Harness[] = [];

function open(watcher: ConfigWatcher, registry = new NodeRegistry({ graceMs: 0 }), metrics = new Metrics()): Harness {
  const transport = new FakeDeltaTransport();
  const stream = new DeltaStream(watcher, registry, transport, silentLogger(), metrics);
  const h = { stream, transport, registry, metrics };
  opened.push(h);
  return h;
}

const dreq = (typeUrl: string, fields: Partial<DeltaRequestIn> = {}): DeltaRequestIn => ({
  typeUrl,
  resourceNamesSubscribe: [],
  resourceNamesUnsubscribe: [],
  initialResourceVersions: {},
  responseNonce: '',
  ...fields,
});
const ackOf = (r: DeltaResponseOut): DeltaRequestIn => dreq(r.typeUrl, { responseNonce: r.nonce });
const nackOf = (r: DeltaResponseOut, message: string): DeltaRequestIn => dreq(r.typeUrl, { responseNonce: r.nonce, errorDetail: { code: 3, message } });

/** What a response says, in a form exact assertions can compare. */
const summary = (r: DeltaResponseOut) => ({ type: shortType(r.typeUrl), resources: r.resources.map((x) => x.name), removed: r.removedResources });
const summaries = (rs: DeltaResponseOut[]) => rs.map(summary);

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');
const decodedName = (typeUrl: string, bytes: Uint8Array): string => (decodeToJson(typeUrl, bytes) as { name: string }).name;
const domainsOf = (r: DeltaResponseOut): string[] =>
  r.resources.flatMap((x) => ((decodeToJson(r.typeUrl, x.resource.value) as { virtualHosts?: Array<{ domains: string[] }> }).virtualHosts ?? []).flatMap((vh) => vh.domains));
const versionOf = (r: DeltaResponseOut, name: string): string => {
  const found = r.resources.find((x) => x.name === name);
  if (!found) throw new Error(`${name} is not in the response`);
  return found.version;
};

const typeStatus = (registry: NodeRegistry, node: string, type: string) => registry.list().find((n) => n.node === node)?.resources[type];

async function counterValue(counter: Metrics['acks'], type: string): Promise<number> {
  const m = await counter.get();
  return m.values.find((v) => v.labels.type === type)?.value ?? 0;
}

/** Opens CDS (legacy wildcard), LDS (legacy wildcard) and RDS (named) for BOT and ACKs each. */
function handshake(h: Harness, node = BOT, routes = BOT_ROUTES) {
  h.stream.onRequest(dreq(TYPE.cluster, { node }));
  const [cds] = h.transport.take();
  h.stream.onRequest(ackOf(cds!));
  h.stream.onRequest(dreq(TYPE.listener));
  const [lds] = h.transport.take();
  h.stream.onRequest(ackOf(lds!));
  h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [routes] }));
  const [rds] = h.transport.take();
  h.stream.onRequest(ackOf(rds!));
  expect(h.transport.take()).toEqual([]);
  return { cds: cds!, lds: lds!, rds: rds! };
}

/** Delegates to a real SnapshotCache, and can also deliver any snapshot to the stream. */
class SwitchableWatcher implements ConfigWatcher {
  private readonly callbacks: Array<(s: Snapshot) => void> = [];
  constructor(private readonly inner: ConfigWatcher) {}
  watch(node: NodeDescriptor, onChange: (s: Snapshot) => void): Watch {
    this.callbacks.push(onChange);
    return this.inner.watch(node, onChange);
  }
  deliver(s: Snapshot): void {
    for (const cb of this.callbacks) cb(s);
  }
}

/** The snapshot a real cache builds for a node. */
function snapshotFrom(cache: SnapshotCache, node: NodeDescriptor = BOT_DESCRIPTOR): Snapshot {
  const w = cache.watch(node, () => undefined);
  expect(w.current).toBeDefined();
  return w.current!;
}

/** `base` plus extra route configurations (really encoded), as a snapshot. */
function withExtraRoutes(base: Snapshot, extra: EncodedResource[]): Snapshot {
  const byType = new Map<TypeUrl, EncodedResource[]>();
  for (const [type, m] of base.resources) byType.set(type, [...m.values()]);
  byType.set(TYPE.route, [...(byType.get(TYPE.route) ?? []), ...extra]);
  return makeSnapshot(byType);
}

function encodedRoute(name: string): EncodedResource {
  const enc = new EncodedResourceTable().encode(TYPE.route, name, { name, virtual_hosts: [] });
  if (!enc.ok) throw new Error(enc.errors.join('; '));
  return enc.value;
}

afterEach(() => {
  for (const h of opened.splice(0)) {
    for (const r of h.transport.sent) {
      const names = r.resources.map((x) => x.name);
      const all = [...names, ...r.removedResources];
      expect(new Set(all).size).toBe(all.length); // no duplicate names within one response
      for (const x of r.resources) {
        expect(x.resource.typeUrl).toBe(r.typeUrl);
        expect(decodedName(r.typeUrl, x.resource.value)).toBe(x.name);
        expect(x.version).toBe(sha256(x.resource.value));
      }
      // isolation: nothing of another agent or tenant is ever sent (removals are not content)
      for (const n of names) expect(n.startsWith('exitgate/acme/other') || n.startsWith('exitgate/globex')).toBe(false);
      const bytes = Buffer.concat(r.resources.map((x) => Buffer.from(x.resource.value)));
      expect(bytes.includes('other.example.test')).toBe(false);
      expect(bytes.includes('globex.example.test')).toBe(false);
    }
  }
});

// ---------------------------------------------------------------------------------------------

describe('node identification', () => {
  it('a first request without node fails the stream with INVALID_ARGUMENT and sends nothing', () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.cluster));
    expect(h.transport.failure?.code).toBe(GRPC_STATUS.INVALID_ARGUMENT);
    expect(h.transport.failure?.message).toMatch(/node/);
    expect(h.transport.sent).toHaveLength(0);
    expect(h.registry.size).toBe(0);
    // the stream is dead: a later request, even with a node, gets nothing
    h.stream.onRequest(dreq(TYPE.cluster, { node: BOT }));
    expect(h.transport.sent).toHaveLength(0);
    expect(h.registry.size).toBe(0);
    h.stream.onClose();
    expect(h.registry.size).toBe(0);
  });

  it('a node without exitgate.listen metadata fails with INVALID_ARGUMENT', () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.cluster, { node: { id: BOT_NAME } }));
    expect(h.transport.failure?.code).toBe(GRPC_STATUS.INVALID_ARGUMENT);
    expect(h.transport.failure?.message).toMatch(/listen/);
    expect(h.transport.sent).toHaveLength(0);
  });

  it('the node only has to be on the first request; the node is registered while the stream is open', () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.cluster, { node: BOT }));
    h.stream.onRequest(dreq(TYPE.listener)); // no node
    expect(h.transport.failure).toBeUndefined();
    expect(summaries(h.transport.take())).toEqual([
      { type: 'Cluster', resources: [DFP], removed: [] },
      { type: 'Listener', resources: [BOT_LISTENER], removed: [] },
    ]);
    expect(h.registry.list().map((n) => [n.node, n.tenant, n.agent])).toEqual([[BOT_NAME, 'acme', 'bot']]);
    h.stream.onClose();
    expect(h.registry.size).toBe(0);
  });

  it('with a reconnect grace period, a closed node keeps its state until the grace ends', async () => {
    const registry = new NodeRegistry({ graceMs: 50 });
    const h = open(newCache(), registry);
    h.stream.onRequest(dreq(TYPE.cluster, { node: BOT }));
    const [cds] = h.transport.take();
    h.stream.onRequest(ackOf(cds!));
    h.stream.onClose();
    expect(registry.connected).toBe(0);
    expect(registry.size).toBe(1);
    expect(registry.list()[0]).toMatchObject({ node: BOT_NAME, resources: { [TYPE.cluster]: { ackedVersion: cds!.systemVersionInfo } } });
    expect(registry.list()[0]!.disconnectedAt).toBeDefined();
    await new Promise((r) => setTimeout(r, 120));
    expect(registry.size).toBe(0);
  });
});

describe('wildcard subscriptions', () => {
  it('legacy wildcard: a first CDS / LDS request subscribing nothing gets all resources of this node', () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.cluster, { node: BOT }));
    const cds = h.transport.take();
    expect(summaries(cds)).toEqual([{ type: 'Cluster', resources: [DFP], removed: [] }]);
    h.stream.onRequest(ackOf(cds[0]!));
    h.stream.onRequest(dreq(TYPE.listener));
    const lds = h.transport.take();
    expect(summaries(lds)).toEqual([{ type: 'Listener', resources: [BOT_LISTENER], removed: [] }]);
    h.stream.onRequest(ackOf(lds[0]!));
    expect(h.transport.take()).toHaveLength(0);
    // nonces are distinct per response on the stream
    expect(cds[0]!.nonce).not.toBe(lds[0]!.nonce);
  });

  it('the legacy wildcard stays in force: a later policy change to the node is pushed on the wildcard subscription', () => {
    const watcher = new SwitchableWatcher(newCache());
    const h = open(watcher);
    h.stream.onRequest(dreq(TYPE.cluster, { node: BOT }));
    h.stream.onRequest(ackOf(h.transport.take()[0]!));
    // a guard exemption changes the DFP cluster's DNS cache config
    watcher.deliver(snapshotFrom(newCache(BASE(), ['10.0.0.0/8'])));
    expect(summaries(h.transport.take())).toEqual([{ type: 'Cluster', resources: [DFP], removed: [] }]);
  });

  it('RDS has no legacy wildcard: an empty first RDS request is answered once, with no route configuration', () => {
    const cache = newCache();
    const h = open(cache);
    h.stream.onRequest(dreq(TYPE.route, { node: BOT }));
    const out = h.transport.take();
    expect(summaries(out)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [] }]);
    h.stream.onRequest(ackOf(out[0]!));
    cache.setPolicies(withBot('[api.example.test, new.example.test]'));
    expect(h.transport.take()).toHaveLength(0);
  });

  it('explicit "*" subscribes to everything of this node; unsubscribing "*" ends it', () => {
    const cache = newCache();
    const h = open(cache);
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: ['*'] }));
    const first = h.transport.take();
    expect(summaries(first)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    h.stream.onRequest(ackOf(first[0]!));
    expect(h.transport.take()).toHaveLength(0);

    // while subscribed to "*", a change of this node's route config is pushed
    cache.setPolicies(withBot('[api.example.test, new.example.test]'));
    const pushed = h.transport.take();
    expect(summaries(pushed)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    expect(domainsOf(pushed[0]!)).toContain('new.example.test:443');
    h.stream.onRequest(ackOf(pushed[0]!));

    // unsubscribe "*": the server lists what left the subscription's scope, once
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesUnsubscribe: ['*'] }));
    const after = h.transport.take();
    expect(summaries(after)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [BOT_ROUTES] }]);
    h.stream.onRequest(ackOf(after[0]!));
    expect(h.transport.take()).toHaveLength(0);

    // and nothing more is pushed for RDS
    cache.setPolicies(withBot('[api.example.test, newer.example.test]'));
    expect(h.transport.take()).toHaveLength(0);
  });

  it('"*" together with names, and "*" unsubscribed while a name stays subscribed, keeps the named resource', () => {
    const cache = newCache();
    const h = open(cache);
    h.stream.onRequest(dreq(TYPE.listener, { node: BOT, resourceNamesSubscribe: ['*', BOT_LISTENER] }));
    const first = h.transport.take();
    expect(summaries(first)).toEqual([{ type: 'Listener', resources: [BOT_LISTENER], removed: [] }]);
    h.stream.onRequest(ackOf(first[0]!));
    h.stream.onRequest(dreq(TYPE.listener, { resourceNamesUnsubscribe: ['*'] }));
    expect(h.transport.take()).toHaveLength(0); // still subscribed by name: nothing removed
  });
});

describe('named subscriptions', () => {
  it('a named RDS subscription gets exactly that route configuration', () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [BOT_ROUTES] }));
    const out = h.transport.take();
    expect(summaries(out)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    expect(domainsOf(out[0]!)).toContain('api.example.test:443');
    h.stream.onRequest(ackOf(out[0]!));
    expect(h.transport.take()).toHaveLength(0);
  });

  it('a name that does not exist for this node (another agent\'s / tenant\'s route config) is listed in removed_resources once and never sent', () => {
    const cache = newCache();
    const h = open(cache);
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [OTHER_ROUTES] }));
    const first = h.transport.take();
    expect(summaries(first)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [OTHER_ROUTES] }]);
    h.stream.onRequest(ackOf(first[0]!));
    expect(h.transport.take()).toHaveLength(0);
    // asking again (same name) is not answered again
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [OTHER_ROUTES] }));
    expect(h.transport.take()).toHaveLength(0);
    // a change of the other agent's (and the other tenant's same-named agent's) policy: still nothing
    cache.setPolicies(policySet(botDoc('[api.example.test]'), doc('other-policy', 'acme', '[other]', '[changed.example.test]'), doc('globex-policy', 'globex', '[bot]', '[changed.example.test]')));
    expect(h.transport.take()).toHaveLength(0);
    // a change of this node's route config: not subscribed, nothing
    cache.setPolicies(policySet(botDoc('[api.example.test, new.example.test]'), OTHER_DOC, GLOBEX_DOC));
    expect(h.transport.take()).toHaveLength(0);
    // another tenant's name: the same
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [GLOBEX_ROUTES] }));
    const globex = h.transport.take();
    expect(summaries(globex)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [GLOBEX_ROUTES] }]);
    h.stream.onRequest(ackOf(globex[0]!));
    // subscribing to its own name adds exactly its own route config; the absent ones are not repeated
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [BOT_ROUTES] }));
    expect(summaries(h.transport.take())).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
  });

  it('an absent named resource is sent when it appears later, and listed as removed when it goes again', () => {
    // Real translation gives every node exactly one route config named after its own agent, so a
    // resource of this node can never "appear later" through a policy change. The rule is tested
    // at the stream with a snapshot holding a really encoded extra route configuration.
    const extra = 'exitgate/acme/bot/extra';
    const cache = newCache();
    const watcher = new SwitchableWatcher(cache);
    const h = open(watcher);
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [extra] }));
    const first = h.transport.take();
    expect(summaries(first)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [extra] }]);
    h.stream.onRequest(ackOf(first[0]!));
    // a notification in which it still does not exist: not repeated
    cache.setPolicies(withBot('[api.example.test, new.example.test]'));
    expect(h.transport.take()).toHaveLength(0);
    // it appears
    const current = snapshotFrom(cache);
    watcher.deliver(withExtraRoutes(current, [encodedRoute(extra)]));
    const appeared = h.transport.take();
    expect(summaries(appeared)).toEqual([{ type: 'RouteConfiguration', resources: [extra], removed: [] }]);
    h.stream.onRequest(ackOf(appeared[0]!));
    // it goes away again
    watcher.deliver(current);
    const gone = h.transport.take();
    expect(summaries(gone)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [extra] }]);
    h.stream.onRequest(ackOf(gone[0]!));
    expect(h.transport.take()).toHaveLength(0);
  });

  it('unsubscribing a name: no response, and no later push for it', () => {
    const cache = newCache();
    const h = open(cache);
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [BOT_ROUTES] }));
    h.stream.onRequest(ackOf(h.transport.take()[0]!));
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesUnsubscribe: [BOT_ROUTES] }));
    expect(h.transport.take()).toHaveLength(0);
    cache.setPolicies(withBot('[api.example.test, new.example.test]'));
    expect(h.transport.take()).toHaveLength(0);
    // subscribing again sends the current content
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [BOT_ROUTES] }));
    const again = h.transport.take();
    expect(summaries(again)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    expect(domainsOf(again[0]!)).toContain('new.example.test:443');
  });
});

describe('nonces', () => {
  it('a request with a stale nonce still has its subscription changes honoured, and is not taken as an ACK', async () => {
    const cache = newCache();
    const h = open(cache);
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [OTHER_ROUTES] }));
    const [r1] = h.transport.take();
    h.stream.onRequest(ackOf(r1!)); // nonce r1 is now used up
    expect(typeStatus(h.registry, BOT_NAME, TYPE.route)?.ackedVersion).toBe(r1!.systemVersionInfo);

    // stale nonce (already acknowledged) + subscribe: honoured
    h.stream.onRequest(dreq(TYPE.route, { responseNonce: r1!.nonce, resourceNamesSubscribe: [BOT_ROUTES] }));
    const r2 = h.transport.take();
    expect(summaries(r2)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    // ... and it did not acknowledge r2
    expect(typeStatus(h.registry, BOT_NAME, TYPE.route)).toEqual({ sentVersion: r2[0]!.systemVersionInfo, ackedVersion: r1!.systemVersionInfo });

    // a nonce this stream never sent + unsubscribe: honoured (no response, no later push)
    h.stream.onRequest(dreq(TYPE.route, { responseNonce: 'never-sent', resourceNamesUnsubscribe: [BOT_ROUTES] }));
    expect(h.transport.take()).toHaveLength(0);
    cache.setPolicies(withBot('[api.example.test, new.example.test]'));
    expect(h.transport.take()).toHaveLength(0);
    expect(typeStatus(h.registry, BOT_NAME, TYPE.route)?.ackedVersion).toBe(r1!.systemVersionInfo);
    expect(await counterValue(h.metrics.acks, 'RouteConfiguration')).toBe(1);
  });
});

describe('ACK', () => {
  it('records sent and acknowledged versions per type in the NodeRegistry, and triggers no response', async () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.cluster, { node: BOT }));
    const [cds] = h.transport.take();
    expect(typeStatus(h.registry, BOT_NAME, TYPE.cluster)).toEqual({ sentVersion: cds!.systemVersionInfo });
    h.stream.onRequest(ackOf(cds!));
    expect(typeStatus(h.registry, BOT_NAME, TYPE.cluster)).toEqual({ sentVersion: cds!.systemVersionInfo, ackedVersion: cds!.systemVersionInfo });

    h.stream.onRequest(dreq(TYPE.listener));
    const [lds] = h.transport.take();
    h.stream.onRequest(ackOf(lds!));
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [BOT_ROUTES] }));
    const [rds] = h.transport.take();
    expect(typeStatus(h.registry, BOT_NAME, TYPE.route)).toEqual({ sentVersion: rds!.systemVersionInfo });
    h.stream.onRequest(ackOf(rds!));
    expect(h.transport.take()).toHaveLength(0);

    const status = h.registry.list();
    expect(status).toHaveLength(1);
    expect(status[0]).toMatchObject({ node: BOT_NAME, tenant: 'acme', agent: 'bot' });
    expect(status[0]!.resources).toEqual({
      [TYPE.cluster]: { sentVersion: cds!.systemVersionInfo, ackedVersion: cds!.systemVersionInfo },
      [TYPE.listener]: { sentVersion: lds!.systemVersionInfo, ackedVersion: lds!.systemVersionInfo },
      [TYPE.route]: { sentVersion: rds!.systemVersionInfo, ackedVersion: rds!.systemVersionInfo },
    });
    for (const r of [cds!, lds!, rds!]) expect(r.systemVersionInfo).toMatch(/^[0-9a-f]{16}$/);
    expect(await counterValue(h.metrics.acks, 'Cluster')).toBe(1);
    expect(await counterValue(h.metrics.acks, 'Listener')).toBe(1);
    expect(await counterValue(h.metrics.acks, 'RouteConfiguration')).toBe(1);
    expect(await counterValue(h.metrics.nacks, 'RouteConfiguration')).toBe(0);
    expect(await counterValue(h.metrics.pushes, 'RouteConfiguration')).toBe(1);
  });

  it('an ACK repeated with the same nonce is ignored (no response, nothing recorded twice)', async () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [BOT_ROUTES] }));
    const [rds] = h.transport.take();
    h.stream.onRequest(ackOf(rds!));
    h.stream.onRequest(ackOf(rds!));
    expect(h.transport.take()).toHaveLength(0);
    expect(await counterValue(h.metrics.acks, 'RouteConfiguration')).toBe(1);
  });
});

describe('NACK', () => {
  function nackSetup() {
    const cache = newCache();
    const watcher = new SwitchableWatcher(cache);
    const h = open(watcher);
    const v = handshake(h);
    cache.setPolicies(withBot('[rejected.example.test]'));
    const bad = h.transport.take();
    expect(summaries(bad)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    h.stream.onRequest(nackOf(bad[0]!, 'Proto constraint validation failed'));
    return { cache, watcher, h, v, bad: bad[0]! };
  }

  it('is recorded in the registry with the rejected version and the error message; the last good version stays acknowledged', async () => {
    const { h, v, bad } = nackSetup();
    expect(h.transport.take()).toHaveLength(0);
    const status = typeStatus(h.registry, BOT_NAME, TYPE.route)!;
    expect(status.lastNack).toMatchObject({ version: bad.systemVersionInfo, message: 'Proto constraint validation failed' });
    expect(status.ackedVersion).toBe(v.rds.systemVersionInfo);
    expect(status.sentVersion).toBe(bad.systemVersionInfo);
    expect(await counterValue(h.metrics.nacks, 'RouteConfiguration')).toBe(1);
  });

  it('the NACKed resource version is not resent: not on later requests, not on unrelated snapshot notifications', () => {
    const { cache, watcher, h, bad } = nackSetup();
    const rejected = versionOf(bad, BOT_ROUTES);
    // later requests of the client (a no-op request, a subscription change)
    h.stream.onRequest(dreq(TYPE.route));
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [BOT_ROUTES] }));
    expect(h.transport.take()).toHaveLength(0);
    // the same snapshot notified again
    watcher.deliver(snapshotFrom(cache));
    expect(h.transport.take()).toHaveLength(0);
    // re-applying the same policies
    cache.setPolicies(withBot('[rejected.example.test]'));
    expect(h.transport.take()).toHaveLength(0);
    // an unrelated change (the DFP cluster and listener change, the route config does not): CDS and LDS only
    watcher.deliver(snapshotFrom(newCache(withBot('[rejected.example.test]'), ['10.0.0.0/8'])));
    const unrelated = h.transport.take();
    expect(summaries(unrelated)).toEqual([
      { type: 'Cluster', resources: [DFP], removed: [] },
      { type: 'Listener', resources: [BOT_LISTENER], removed: [] },
    ]);
    const rejectedSent = h.transport.sent.flatMap((r) => r.resources).filter((x) => x.version === rejected);
    expect(rejectedSent).toHaveLength(1);
  });

  it('a later, different version is sent', () => {
    const { cache, h, bad } = nackSetup();
    cache.setPolicies(withBot('[fixed.example.test]'));
    const out = h.transport.take();
    expect(summaries(out)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    expect(versionOf(out[0]!, BOT_ROUTES)).not.toBe(versionOf(bad, BOT_ROUTES));
    expect(domainsOf(out[0]!)).toContain('fixed.example.test:443');
    h.stream.onRequest(ackOf(out[0]!));
    expect(typeStatus(h.registry, BOT_NAME, TYPE.route)?.ackedVersion).toBe(out[0]!.systemVersionInfo);
  });

  it('after a NACK the client is known to have kept its last good version: a return to it sends nothing', () => {
    const { cache, h } = nackSetup();
    cache.setPolicies(BASE()); // what the client kept
    expect(h.transport.take()).toHaveLength(0);
  });

  it('a NACK of the very first response leaves the client with nothing and resends nothing', () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.listener, { node: BOT }));
    const [lds] = h.transport.take();
    h.stream.onRequest(nackOf(lds!, 'cannot bind'));
    h.stream.onRequest(dreq(TYPE.listener));
    expect(h.transport.take()).toHaveLength(0);
    expect(typeStatus(h.registry, BOT_NAME, TYPE.listener)).toMatchObject({ sentVersion: lds!.systemVersionInfo, lastNack: { version: lds!.systemVersionInfo, message: 'cannot bind' } });
    expect(typeStatus(h.registry, BOT_NAME, TYPE.listener)?.ackedVersion).toBeUndefined();
  });

  // Regression (found by this suite and the SotW suite; fixed in src/xds/delta-stream.ts onReply):
  // a NACKed `${name}@${version}` used to stay blocked for the life of the stream, so after the
  // client had ACKed a newer version, a policy change back to the once-NACKed content (a
  // revocation) was never pushed. Now an ACK of a later version of that resource lifts the block;
  // the re-offered content, if NACKed again, is again not resent (no loop).
  it('once the client has ACKed a newer version, content equal to an old NACKed version is sent again (once)', () => {
    const { cache, h, bad } = nackSetup(); // rejected: allow rejected.example.test
    cache.setPolicies(withBot('[rejected.example.test, extra.example.test]'));
    const wider = h.transport.take();
    expect(summaries(wider)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    h.stream.onRequest(ackOf(wider[0]!));
    // The operator revokes extra.example.test: the policy is now what was once NACKed.
    cache.setPolicies(withBot('[rejected.example.test]'));
    const out = h.transport.take();
    expect(summaries(out)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    expect(versionOf(out[0]!, BOT_ROUTES)).toBe(versionOf(bad, BOT_ROUTES));
    expect(domainsOf(out[0]!)).not.toContain('extra.example.test:443');
    // rejected again: recorded, and not resent
    h.stream.onRequest(nackOf(out[0]!, 'still invalid'));
    h.stream.onRequest(dreq(TYPE.route));
    cache.setPolicies(withBot('[rejected.example.test]'));
    expect(h.transport.take()).toHaveLength(0);
    expect(typeStatus(h.registry, BOT_NAME, TYPE.route)).toMatchObject({ ackedVersion: wider[0]!.systemVersionInfo, lastNack: { version: out[0]!.systemVersionInfo, message: 'still invalid' } });
  });

  it('a NACK of an older in-flight response: the client is known to hold its last good version, so the current one is sent again', () => {
    // v1 ACKed; v2 and v3 sent back to back; Envoy NACKs v2 and then ACKs v3. The NACK rolls the
    // client's known version back to v1, and the request carrying it is answered with the current
    // content (v3) once more; afterwards the stream's view matches the client's (v3), so a later
    // return to v1 content is sent.
    const cache = newCache();
    const h = open(cache);
    const v = handshake(h);
    const v1 = versionOf(v.rds, BOT_ROUTES);
    cache.setPolicies(withBot('[rejected.example.test]'));
    cache.setPolicies(withBot('[api.example.test, extra.example.test]'));
    const inflight = h.transport.take();
    expect(summaries(inflight)).toEqual([
      { type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] },
      { type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] },
    ]);
    const v3 = versionOf(inflight[1]!, BOT_ROUTES);
    h.stream.onRequest(nackOf(inflight[0]!, 'rejected'));
    const resent = h.transport.take();
    expect(summaries(resent)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    expect(versionOf(resent[0]!, BOT_ROUTES)).toBe(v3);
    h.stream.onRequest(ackOf(inflight[1]!));
    h.stream.onRequest(ackOf(resent[0]!));
    expect(h.transport.take()).toHaveLength(0);
    expect(typeStatus(h.registry, BOT_NAME, TYPE.route)?.ackedVersion).toBe(inflight[1]!.systemVersionInfo);
    // the operator revokes extra.example.test: back to v1 content, which is sent
    cache.setPolicies(BASE());
    const out = h.transport.take();
    expect(summaries(out)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    expect(versionOf(out[0]!, BOT_ROUTES)).toBe(v1);
  });
});

describe('reconnect (initial_resource_versions)', () => {
  /** A sidecar synced with one control plane reconnects, with every version it holds, to a restarted one. */
  function reconnectUpToDate() {
    const before = handshake(open(newCache()));
    const known = (r: DeltaResponseOut) => Object.fromEntries(r.resources.map((x) => [x.name, x.version]));
    // control plane restarted: a new cache and registry, same policies
    const registry = new NodeRegistry({ graceMs: 0 });
    const h = open(newCache(), registry);
    h.stream.onRequest(dreq(TYPE.cluster, { node: BOT, initialResourceVersions: known(before.cds) }));
    h.stream.onRequest(dreq(TYPE.listener, { initialResourceVersions: known(before.lds) }));
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [BOT_ROUTES], initialResourceVersions: known(before.rds) }));
    return { before, registry, h };
  }

  it('a new stream whose client already has every current version is sent nothing (also after a control-plane restart)', () => {
    const { registry, h } = reconnectUpToDate();
    expect(h.transport.sent).toHaveLength(0);
    expect(h.transport.failure).toBeUndefined();
    expect(registry.size).toBe(1);
  });

  // Regression: a node that reconnected already up to date was sent nothing (right) but recorded as
  // never sent, so /v1/nodes, `exitgate status` and CSDS said NOT_SENT until the next change.
  it('a node reconnecting up to date after a control-plane restart is recorded as synced, not as never sent', () => {
    const { before, registry, h } = reconnectUpToDate();
    expect(h.transport.sent).toHaveLength(0);
    expect(registry.list()[0]!.resources).toEqual({
      [TYPE.cluster]: { sentVersion: before.cds.systemVersionInfo, ackedVersion: before.cds.systemVersionInfo },
      [TYPE.listener]: { sentVersion: before.lds.systemVersionInfo, ackedVersion: before.lds.systemVersionInfo },
      [TYPE.route]: { sentVersion: before.rds.systemVersionInfo, ackedVersion: before.rds.systemVersionInfo },
    });
  });

  it('a client with one stale version is sent only that resource', () => {
    const before = handshake(open(newCache()));
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.cluster, { node: BOT, initialResourceVersions: { [DFP]: versionOf(before.cds, DFP) } }));
    h.stream.onRequest(dreq(TYPE.listener, { initialResourceVersions: { [BOT_LISTENER]: 'stale-version' } }));
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [BOT_ROUTES], initialResourceVersions: { [BOT_ROUTES]: versionOf(before.rds, BOT_ROUTES) } }));
    const out = h.transport.take();
    expect(summaries(out)).toEqual([{ type: 'Listener', resources: [BOT_LISTENER], removed: [] }]);
    expect(versionOf(out[0]!, BOT_LISTENER)).toBe(versionOf(before.lds, BOT_LISTENER));
  });

  it('a resource the client has that does not exist (for this node) is listed in removed_resources', () => {
    const before = handshake(open(newCache()));
    const h = open(newCache());
    h.stream.onRequest(
      dreq(TYPE.listener, { node: BOT, initialResourceVersions: { [BOT_LISTENER]: versionOf(before.lds, BOT_LISTENER), [OTHER_LISTENER]: 'some-version' } }),
    );
    const lds = h.transport.take();
    expect(summaries(lds)).toEqual([{ type: 'Listener', resources: [], removed: [OTHER_LISTENER] }]);
    h.stream.onRequest(ackOf(lds[0]!));
    // a named subscription whose client also holds a route config it should not have
    h.stream.onRequest(
      dreq(TYPE.route, { resourceNamesSubscribe: [BOT_ROUTES], initialResourceVersions: { [BOT_ROUTES]: versionOf(before.rds, BOT_ROUTES), [GLOBEX_ROUTES]: 'some-version' } }),
    );
    const rds = h.transport.take();
    expect(summaries(rds)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [GLOBEX_ROUTES] }]);
    h.stream.onRequest(ackOf(rds[0]!));
    expect(h.transport.take()).toHaveLength(0);
  });
});

describe('policy changes', () => {
  it('a change for another agent (or the same agent name in another tenant) pushes nothing', () => {
    const cache = newCache();
    const h = open(cache);
    handshake(h);
    const counts = cache.setPolicies(
      policySet(
        botDoc('[api.example.test]'),
        doc('other-policy', 'acme', '[other]', '[other.example.test, more.example.test]'),
        doc('globex-policy', 'globex', '[bot]', '[globex.example.test, more.example.test]'),
      ),
    );
    expect(counts).toEqual({ changed: 0, unchanged: 1, failed: 0 });
    expect(h.transport.take()).toHaveLength(0);
  });

  it('a change for this agent pushes only the types that changed (route config yes; cluster and listener no)', () => {
    const cache = newCache();
    const h = open(cache);
    const v = handshake(h);
    cache.setPolicies(withBot('[api.example.test, new.example.test]'));
    const out = h.transport.take();
    expect(summaries(out)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    expect(out[0]!.systemVersionInfo).not.toBe(v.rds.systemVersionInfo);
    expect(domainsOf(out[0]!)).toContain('new.example.test:443');
    h.stream.onRequest(ackOf(out[0]!));
    // the same set again: nothing
    cache.setPolicies(withBot('[api.example.test, new.example.test]'));
    expect(h.transport.take()).toHaveLength(0);
  });

  it('when clusters, listeners and routes all change they are pushed CDS, LDS, RDS (make-before-break)', () => {
    const watcher = new SwitchableWatcher(newCache());
    const h = open(watcher);
    // subscribe in the "wrong" order
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [BOT_ROUTES] }));
    h.stream.onRequest(dreq(TYPE.listener));
    h.stream.onRequest(dreq(TYPE.cluster));
    for (const r of h.transport.take()) h.stream.onRequest(ackOf(r));
    watcher.deliver(snapshotFrom(newCache(withBot('[next.example.test]'), ['127.0.0.2/32'])));
    expect(summaries(h.transport.take())).toEqual([
      { type: 'Cluster', resources: [DFP], removed: [] },
      { type: 'Listener', resources: [BOT_LISTENER], removed: [] },
      { type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] },
    ]);
  });
});

describe('duplicate names', () => {
  it('a name subscribed several times, or both by name and by "*", appears once in a response', () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [BOT_ROUTES, BOT_ROUTES, '*', BOT_ROUTES] }));
    const rds = h.transport.take();
    expect(summaries(rds)).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [] }]);
    h.stream.onRequest(ackOf(rds[0]!));
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [OTHER_ROUTES, OTHER_ROUTES, GLOBEX_ROUTES, OTHER_ROUTES] }));
    const absent = h.transport.take();
    expect(summaries(absent)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [OTHER_ROUTES, GLOBEX_ROUTES] }]);
  });

  it('a name in initial_resource_versions that is also subscribed, stale, appears once', () => {
    const h = open(newCache());
    h.stream.onRequest(
      dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [BOT_ROUTES, OTHER_ROUTES, BOT_ROUTES], initialResourceVersions: { [BOT_ROUTES]: 'old', [OTHER_ROUTES]: 'old' } }),
    );
    expect(summaries(h.transport.take())).toEqual([{ type: 'RouteConfiguration', resources: [BOT_ROUTES], removed: [OTHER_ROUTES] }]);
  });
});

// The per-type collections behind these rules (named subscriptions, "told absent", NACKed
// versions, responses awaiting an ACK) are created on first use and the last two dropped when
// empty (memory per connected node); these pin the rules across those transitions.
describe('per-type state created on first use', () => {
  const EXTRA_ROUTES = 'exitgate/acme/bot/extra';

  it('a NACK arriving after its response was ACKed (same nonce) is ignored: nothing recorded, nothing sent', async () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [BOT_ROUTES] }));
    const [rds] = h.transport.take();
    h.stream.onRequest(ackOf(rds!));
    h.stream.onRequest(nackOf(rds!, 'late'));
    expect(h.transport.take()).toHaveLength(0);
    expect(typeStatus(h.registry, BOT_NAME, TYPE.route)).toEqual({ sentVersion: rds!.systemVersionInfo, ackedVersion: rds!.systemVersionInfo });
    expect(await counterValue(h.metrics.nacks, 'RouteConfiguration')).toBe(0);
  });

  it('NACK memory is per resource: an ACK of another resource of the same type does not lift it', () => {
    const cache = newCache();
    const watcher = new SwitchableWatcher(cache);
    const h = open(watcher);
    handshake(h);
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [EXTRA_ROUTES] }));
    const absent = h.transport.take();
    expect(summaries(absent)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [EXTRA_ROUTES] }]);
    h.stream.onRequest(ackOf(absent[0]!));
    cache.setPolicies(withBot('[rejected.example.test]'));
    const [bad] = h.transport.take();
    const rejected = versionOf(bad!, BOT_ROUTES);
    h.stream.onRequest(nackOf(bad!, 'rejected'));
    expect(h.transport.take()).toHaveLength(0);
    // the other route configuration appears: only it is sent, and ACKed
    watcher.deliver(withExtraRoutes(snapshotFrom(cache), [encodedRoute(EXTRA_ROUTES)]));
    const extra = h.transport.take();
    expect(summaries(extra)).toEqual([{ type: 'RouteConfiguration', resources: [EXTRA_ROUTES], removed: [] }]);
    h.stream.onRequest(ackOf(extra[0]!));
    // it goes again: listed as removed; the NACKed version of the first is still not resent
    watcher.deliver(snapshotFrom(cache));
    expect(summaries(h.transport.take())).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [EXTRA_ROUTES] }]);
    cache.setPolicies(withBot('[rejected.example.test]'));
    expect(h.transport.take()).toHaveLength(0);
    expect(h.transport.sent.flatMap((r) => r.resources).filter((x) => x.version === rejected)).toHaveLength(1);
  });

  it('an absent name unsubscribed and subscribed again is answered "does not exist" again, once', () => {
    const h = open(newCache());
    h.stream.onRequest(dreq(TYPE.route, { node: BOT, resourceNamesSubscribe: [OTHER_ROUTES] }));
    const first = h.transport.take();
    expect(summaries(first)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [OTHER_ROUTES] }]);
    h.stream.onRequest(ackOf(first[0]!));
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesUnsubscribe: [OTHER_ROUTES] }));
    expect(h.transport.take()).toHaveLength(0);
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [OTHER_ROUTES] }));
    const again = h.transport.take();
    expect(summaries(again)).toEqual([{ type: 'RouteConfiguration', resources: [], removed: [OTHER_ROUTES] }]);
    h.stream.onRequest(ackOf(again[0]!));
    h.stream.onRequest(dreq(TYPE.route, { resourceNamesSubscribe: [OTHER_ROUTES] }));
    expect(h.transport.take()).toHaveLength(0);
  });

  it('several responses in flight: each ACK and NACK is matched to its own response, and a repeated one is ignored', async () => {
    const cache = newCache();
    const h = open(cache);
    const v = handshake(h);
    cache.setPolicies(withBot('[a.example.test]'));
    cache.setPolicies(withBot('[b.example.test]'));
    const [first, second] = h.transport.take();
    h.stream.onRequest(ackOf(first!));
    h.stream.onRequest(ackOf(second!));
    h.stream.onRequest(ackOf(first!));
    h.stream.onRequest(nackOf(second!, 'late'));
    expect(h.transport.take()).toHaveLength(0);
    expect(await counterValue(h.metrics.acks, 'RouteConfiguration')).toBe(3); // the handshake's, first, second
    expect(await counterValue(h.metrics.nacks, 'RouteConfiguration')).toBe(0);
    expect(typeStatus(h.registry, BOT_NAME, TYPE.route)?.ackedVersion).toBe(second!.systemVersionInfo);
    expect(second!.systemVersionInfo).not.toBe(v.rds.systemVersionInfo);
  });
});
