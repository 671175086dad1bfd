/**
 * SPEC §6.7: a node can only receive its own configuration. A real grpc-js client with agent A's
 * certificate claiming agent B's node id is refused (PERMISSION_DENIED); without a certificate, or
 * with one from another CA, it is refused (UNAUTHENTICATED); with its own id it gets A's resources
 * and, across every subscription form (SotW wildcard and named, Delta wildcard, named and "*",
 * per-type services, Fetch, CSDS), never a byte of B's or another tenant's configuration.
 */
import * as grpc from '@grpc/grpc-js';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { XdsServer } from '../../src/xds/server';
import { serviceDefinition } from '../../src/xds/grpc-codec';
import { NodeRegistry } from '../../src/xds/node-registry';
import { SnapshotCache } from '../../src/cache/snapshot-cache';
import { parsePolicyText } from '../../src/policy/parse';
import { silentLogger } from '../../src/util/logger';
import { Metrics } from '../../src/util/metrics';
import { initCa, issueNodeCert, issueServerCert } from '../../src/identity/certs';
import { loadServerTls } from '../../src/identity/server-tls';
import { csdsService } from '../../src/xds/csds';
import { TYPE } from '../../src/xds/type-urls';

const META = { exitgate: { listen: '127.0.0.1:15001' } };
const B_SECRET = 'only-b-may-know.example.test';
const GLOBEX_SECRET = 'globex-private.example.test';

const policies = (() => {
  const f = parsePolicyText(
    'p.yaml',
    [
      ['acme', 'a-policy', 'agent-a', 'a-host.example.test'],
      ['acme', 'b-policy', 'agent-b', B_SECRET],
      ['globex', 'g-policy', 'agent-a', GLOBEX_SECRET],
    ]
      .map(([t, n, a, h]) => `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: ${n}, tenant: ${t}}\nspec:\n  agents: [${a}]\n  allow: [{name: r, hosts: ["${h}"]}]\n`)
      .join('---\n'),
  );
  if (f.errors.length > 0) throw new Error(JSON.stringify(f.errors));
  return { policies: f.policies, credentials: [] };
})();

/** Strings that would reveal B's (or another tenant's) configuration if they ever reached A. */
const FORBIDDEN = [B_SECRET, 'exitgate/acme/agent-b', 'b-policy', GLOBEX_SECRET, 'exitgate/globex', 'g-policy'];

type Creds = { ca: Buffer; key?: Buffer; cert?: Buffer };

describe('xDS identity and isolation (mTLS)', () => {
  let dir: string;
  let server: XdsServer;
  let port: number;
  let ca: Buffer;
  const clientCreds: Record<string, Creds> = {};
  /** Every byte any test client received, to grep for forbidden content. */
  const received: Buffer[] = [];

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-mtls-'));
    await initCa(path.join(dir, 'ca'), { trustDomain: 'exitgate.test', validDays: 1 });
    await initCa(path.join(dir, 'rogue-ca'), { trustDomain: 'exitgate.test', validDays: 1 });
    await issueServerCert(path.join(dir, 'ca'), ['127.0.0.1'], path.join(dir, 'server'), { validHours: 1 });
    await issueNodeCert(path.join(dir, 'ca'), { tenant: 'acme', agent: 'agent-a', instance: 'x' }, path.join(dir, 'a'), { validHours: 1 });
    await issueNodeCert(path.join(dir, 'rogue-ca'), { tenant: 'acme', agent: 'agent-b', instance: 'x' }, path.join(dir, 'rogue'), { validHours: 1 });
    const read = (p: string) => fs.readFile(path.join(dir, p));
    ca = await read('ca/ca.crt');
    clientCreds.a = { ca, key: await read('a/tls.key'), cert: await read('a/tls.crt') };
    clientCreds.rogue = { ca, key: await read('rogue/tls.key'), cert: await read('rogue/tls.crt') };
    clientCreds.none = { ca };

    const registry = new NodeRegistry({ graceMs: 0 });
    const cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
    cache.setPolicies(policies);
    const tls = loadServerTls(path.join(dir, 'server'));
    server = new XdsServer({ watcher: cache, registry, log: silentLogger(), metrics: new Metrics(), trust: tls.anchor }, [csdsService(registry, tls.anchor)]);
    port = await server.listen('127.0.0.1', 0, tls.credentials);
    await tls.ready;
  });

  afterAll(async () => {
    await server.close();
  });

  function client(service: string, who: keyof typeof clientCreds): grpc.Client {
    const c = clientCreds[who]!;
    const Ctor = grpc.makeGenericClientConstructor(serviceDefinition(service), service);
    return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createSsl(c.ca, c.key ?? null, c.cert ?? null));
  }

  /** Runs a bidi call: sends `requests` (ACKing each response when `ack` builds one), collects responses until `ms` passes or the call ends. */
  async function converse(
    service: string,
    method: string,
    who: keyof typeof clientCreds,
    requests: unknown[],
    opts: { ms?: number; ack?: (res: Record<string, unknown>) => unknown } = {},
  ): Promise<{ responses: Array<Record<string, unknown>>; status?: grpc.StatusObject }> {
    const c = client(service, who);
    const call = (c as unknown as Record<string, () => grpc.ClientDuplexStream<unknown, Record<string, unknown>>>)[method]!.call(c);
    const responses: Array<Record<string, unknown>> = [];
    let status: grpc.StatusObject | undefined;
    call.on('data', (r: Record<string, unknown>) => {
      responses.push(r);
      for (const res of (r.resources as Array<{ value?: Uint8Array; resource?: { value: Uint8Array } }>) ?? []) received.push(Buffer.from(res.value ?? res.resource!.value));
      if (opts.ack) call.write(opts.ack(r));
    });
    const ended = new Promise<void>((resolve) => call.on('status', (s) => ((status = s), resolve())));
    call.on('error', () => undefined);
    for (const r of requests) call.write(r);
    await Promise.race([ended, new Promise((r) => setTimeout(r, opts.ms ?? 600))]);
    call.cancel();
    c.close();
    return { responses, ...(status ? { status } : {}) };
  }

  const ADS = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
  const sotwReq = (id: string, typeUrl: string, resourceNames: string[] = []) => ({ node: { id, metadata: META }, typeUrl, resourceNames });
  const deltaReq = (id: string, typeUrl: string, subscribe: string[] = []) => ({ node: { id, metadata: META }, typeUrl, resourceNamesSubscribe: subscribe });

  it('refuses a stream without a client certificate: UNAUTHENTICATED', async () => {
    const r = await converse(ADS, 'StreamAggregatedResources', 'none', [sotwReq('acme/agent-a/x', TYPE.listener)]);
    expect(r.status?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(r.responses).toEqual([]);
  });

  it('refuses a certificate from another CA: UNAUTHENTICATED', async () => {
    const r = await converse(ADS, 'DeltaAggregatedResources', 'rogue', [deltaReq('acme/agent-b/x', TYPE.listener)]);
    expect(r.status?.code).toBe(grpc.status.UNAUTHENTICATED);
    // Node's TLS client may withhold a certificate the server's CA list does not name; either way the
    // stream is refused before any resource is sent.
    expect(r.status?.details).toMatch(/not issued by the exitgate CA|no client certificate/);
    expect(r.responses).toEqual([]);
  });

  it.each([
    ['SotW', 'StreamAggregatedResources', 'acme/agent-b/x'],
    ['Delta', 'DeltaAggregatedResources', 'acme/agent-b/x'],
    ['SotW', 'StreamAggregatedResources', 'globex/agent-a/x'],
    ['Delta', 'DeltaAggregatedResources', 'globex/agent-a/x'],
  ])('refuses agent A’s certificate claiming another node (%s, %s as %s): PERMISSION_DENIED', async (kind, method, id) => {
    const req = kind === 'SotW' ? sotwReq(id, TYPE.cluster) : deltaReq(id, TYPE.cluster);
    const r = await converse(ADS, method, 'a', [req]);
    expect(r.status?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.status?.details).toContain('does not match the certificate identity acme/agent-a');
    expect(r.responses).toEqual([]);
  });

  it('gives A its own resources over SotW, also when it names B’s resources or "*"', async () => {
    const id = 'acme/agent-a/x';
    const others = ['exitgate/acme/agent-b/egress', 'exitgate/globex/agent-a/egress'];
    const r = await converse(ADS, 'StreamAggregatedResources', 'a', [
      sotwReq(id, TYPE.cluster),
      { typeUrl: TYPE.listener, resourceNames: [] },
      { typeUrl: TYPE.route, resourceNames: ['exitgate/acme/agent-a/egress', ...others] },
      { typeUrl: TYPE.secret, resourceNames: ['*', ...others] },
      { typeUrl: TYPE.endpoint, resourceNames: others },
    ]);
    expect(r.status).toBeUndefined();
    const types = r.responses.map((x) => x.typeUrl);
    expect(types).toEqual(expect.arrayContaining([TYPE.cluster, TYPE.listener, TYPE.route]));
    const routes = r.responses.find((x) => x.typeUrl === TYPE.route)!.resources as unknown[];
    expect(routes).toHaveLength(1);
  });

  it('gives A its own resources over Delta: wildcard, named subscriptions to B’s names, explicit "*"', async () => {
    const id = 'acme/agent-a/y';
    const others = ['exitgate/acme/agent-b/egress', 'exitgate/globex/agent-a/egress'];
    const r = await converse(ADS, 'DeltaAggregatedResources', 'a', [
      deltaReq(id, TYPE.cluster),
      { typeUrl: TYPE.listener, resourceNamesSubscribe: ['*', ...others] },
      { typeUrl: TYPE.route, resourceNamesSubscribe: ['exitgate/acme/agent-a/egress', ...others] },
      { typeUrl: TYPE.route, resourceNamesSubscribe: ['*'] },
      { typeUrl: TYPE.secret, resourceNamesSubscribe: ['*', ...others], initialResourceVersions: { [others[0]!]: 'v-guess' } },
    ]);
    expect(r.status).toBeUndefined();
    const names = r.responses.flatMap((x) => (x.resources as Array<{ name: string }>).map((res) => res.name));
    expect(names.sort()).toEqual(['exitgate/acme/agent-a/egress', 'exitgate/acme/agent-a/egress', 'exitgate/dfp'].sort());
    // B's names are answered as "does not exist", never with content.
    const removed = r.responses.flatMap((x) => x.removedResources as string[]);
    expect(removed).toEqual(expect.arrayContaining(others));
  });

  it('per-type services and Fetch: A asking for B’s route config by name gets nothing of B', async () => {
    const s = await converse('envoy.service.route.v3.RouteDiscoveryService', 'StreamRoutes', 'a', [sotwReq('acme/agent-a/z', TYPE.route, ['exitgate/acme/agent-b/egress'])]);
    expect(s.status).toBeUndefined();
    expect(s.responses.every((x) => (x.resources as unknown[]).length === 0)).toBe(true);
    const d = await converse('envoy.service.secret.v3.SecretDiscoveryService', 'DeltaSecrets', 'a', [deltaReq('acme/agent-a/z', TYPE.secret, ['exitgate/acme/agent-b/egress'])]);
    expect(d.responses.flatMap((x) => x.resources as unknown[])).toEqual([]);

    const c = client('envoy.service.route.v3.RouteDiscoveryService', 'a') as unknown as {
      FetchRoutes(req: unknown, cb: (e: grpc.ServiceError | null, r?: { resources: Array<{ value: Uint8Array }> }) => void): void;
      close(): void;
    };
    const asB = await new Promise<grpc.ServiceError | null>((resolve) => c.FetchRoutes(sotwReq('acme/agent-b/z', TYPE.route), (e) => resolve(e)));
    expect(asB?.code).toBe(grpc.status.PERMISSION_DENIED);
    const own = await new Promise<{ resources: Array<{ value: Uint8Array }> }>((resolve, reject) =>
      c.FetchRoutes(sotwReq('acme/agent-a/z', TYPE.route, ['exitgate/acme/agent-b/egress']), (e, r) => (e ? reject(e) : resolve(r!))),
    );
    c.close();
    own.resources.forEach((x) => received.push(Buffer.from(x.value)));
    expect(own.resources).toEqual([]);
  });

  it('CSDS shows a sidecar only its own tenant and agent', async () => {
    // Keep a stream of A open, so there is a node to report.
    const held = converse(ADS, 'DeltaAggregatedResources', 'a', [deltaReq('acme/agent-a/held', TYPE.cluster)], { ms: 1500 });
    await new Promise((r) => setTimeout(r, 300));
    const c = client('envoy.service.status.v3.ClientStatusDiscoveryService', 'a') as unknown as {
      FetchClientStatus(req: unknown, cb: (e: grpc.ServiceError | null, r?: { config: Array<{ node: { id: string }; genericXdsConfigs: Array<{ xdsConfig?: { value: Uint8Array } }> }> }) => void): void;
      close(): void;
    };
    const res = await new Promise<{ config: Array<{ node: { id: string }; genericXdsConfigs: Array<{ xdsConfig?: { value: Uint8Array } }> }> }>((resolve, reject) =>
      c.FetchClientStatus({}, (e, r) => (e ? reject(e) : resolve(r!))),
    );
    c.close();
    await held;
    expect(res.config.length).toBeGreaterThan(0);
    expect(res.config.every((x) => x.node.id.startsWith('acme/agent-a/'))).toBe(true);
    for (const cfg of res.config) for (const g of cfg.genericXdsConfigs) if (g.xdsConfig) received.push(Buffer.from(g.xdsConfig.value));
  });

  it('never sent a byte of B’s or another tenant’s configuration in any of the above', () => {
    const all = Buffer.concat(received);
    expect(all.length).toBeGreaterThan(1000); // A really received its own configuration
    for (const text of FORBIDDEN) expect({ text, found: all.includes(Buffer.from(text)) }).toEqual({ text, found: false });
  });
});
