/**
 * The access log service over a real grpc-js connection: the stream's first message identifies the
 * node; under mTLS a sidecar can write decisions only as itself (PERMISSION_DENIED for another
 * tenant's or agent's node id, UNAUTHENTICATED without a certificate of our CA), so decisions
 * cannot be forged; malformed streams are refused, and nothing is recorded from a refused stream.
 */
import * as grpc from '@grpc/grpc-js';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { accessLogService, accessLogServiceDefinition, type LogSource } from '../../../src/audit/als-service';
import type { StreamAccessLogsMessageJson } from '../../../src/audit/log-entry';
import { initCa, issueNodeCert, issueServerCert } from '../../../src/identity/certs';
import { loadServerTls } from '../../../src/identity/server-tls';
import { silentLogger } from '../../../src/util/logger';
import { Metrics } from '../../../src/util/metrics';

const ENTRY = {
  commonProperties: { startTime: '2026-01-01T00:00:00Z', routeName: 'default-deny', accessLogType: 'DownstreamEnd' },
  request: { requestMethod: 'CONNECT', authority: 'exfil.test:443' },
  response: { responseCode: 403, responseCodeDetails: 'direct_response' },
} as const;

const Client = grpc.makeGenericClientConstructor(accessLogServiceDefinition(), 'AccessLogService');
type AlsClient = InstanceType<typeof Client> & {
  StreamAccessLogs(cb: (err: grpc.ServiceError | null) => void): grpc.ClientWritableStream<StreamAccessLogsMessageJson>;
};

/** Sends messages on one stream, ends it, and resolves with the status (null when OK). */
function stream(client: AlsClient, messages: StreamAccessLogsMessageJson[]): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => {
    const call = client.StreamAccessLogs((err) => resolve(err));
    call.on('error', () => undefined);
    for (const m of messages) call.write(m);
    call.end();
  });
}

const first = (id: string, logName = 'exitgate/egress/http'): StreamAccessLogsMessageJson => ({ identifier: { node: { id }, logName }, httpLogs: { logEntry: [ENTRY] } });
const more = (): StreamAccessLogsMessageJson => ({ httpLogs: { logEntry: [ENTRY, ENTRY] } });

function serve(received: Array<[LogSource, StreamAccessLogsMessageJson]>, metrics: Metrics, trust?: Parameters<typeof accessLogService>[0]['trust']) {
  const server = new grpc.Server();
  const svc = accessLogService({ receiver: { receive: (s, m) => received.push([s, m]) }, log: silentLogger(), metrics, ...(trust ? { trust } : {}) });
  server.addService(svc.definition, svc.implementation);
  return server;
}

const bind = (server: grpc.Server, creds: grpc.ServerCredentials) =>
  new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));

describe('access log service (mTLS)', () => {
  let dir: string;
  let server: grpc.Server;
  let port: number;
  let ca: Buffer;
  const received: Array<[LogSource, StreamAccessLogsMessageJson]> = [];
  const metrics = new Metrics();
  const clients: AlsClient[] = [];

  const client = async (who: 'a' | 'rogue' | 'none'): Promise<AlsClient> => {
    const read = (p: string) => fs.readFile(path.join(dir, p));
    const creds = who === 'none' ? grpc.credentials.createSsl(ca) : grpc.credentials.createSsl(ca, await read(`${who}/tls.key`), await read(`${who}/tls.crt`));
    const c = new Client(`127.0.0.1:${port}`, creds) as AlsClient;
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-als-'));
    await initCa(path.join(dir, 'ca'), { trustDomain: 'exitgate.test', validDays: 1 });
    await initCa(path.join(dir, 'rogue-ca'), { trustDomain: 'exitgate.test', validDays: 1 });
    await issueServerCert(path.join(dir, 'ca'), ['127.0.0.1'], path.join(dir, 'server'), { validHours: 1 });
    await issueNodeCert(path.join(dir, 'ca'), { tenant: 'acme', agent: 'agent-a', instance: 'x' }, path.join(dir, 'a'), { validHours: 1 });
    await issueNodeCert(path.join(dir, 'rogue-ca'), { tenant: 'acme', agent: 'agent-b', instance: 'x' }, path.join(dir, 'rogue'), { validHours: 1 });
    ca = await fs.readFile(path.join(dir, 'ca', 'ca.crt'));
    const tls = loadServerTls(path.join(dir, 'server'));
    server = serve(received, metrics, tls.anchor);
    port = await bind(server, tls.credentials);
    await tls.ready;
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    server.forceShutdown();
    await fs.rm(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    received.length = 0;
  });

  it('accepts a sidecar writing as itself: every batch, attributed to its node and log', async () => {
    expect(await stream(await client('a'), [first('acme/agent-a/pod-1'), more()])).toBeNull();
    expect(received.map(([s, m]) => [s.node, s.logName, m.httpLogs?.logEntry?.length])).toEqual([
      [{ tenant: 'acme', agent: 'agent-a', instance: 'pod-1' }, 'exitgate/egress/http', 1],
      [{ tenant: 'acme', agent: 'agent-a', instance: 'pod-1' }, 'exitgate/egress/http', 2],
    ]);
    expect(received[0]![1].httpLogs!.logEntry![0]).toEqual(ENTRY);
  });

  it.each([
    ['another agent', 'acme/agent-b/pod-1'],
    ['another tenant', 'globex/agent-a/pod-1'],
  ])('refuses a node id of %s than the certificate: PERMISSION_DENIED, nothing recorded', async (_what, id) => {
    const err = await stream(await client('a'), [first(id), more()]);
    expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err?.details).toMatch(/does not match the certificate identity acme\/agent-a/);
    expect(received).toEqual([]);
  });

  it('refuses a stream without a client certificate, or with one from another CA', async () => {
    expect((await stream(await client('none'), [first('acme/agent-a/x')]))?.code).toBe(grpc.status.UNAUTHENTICATED);
    const rogue = await stream(await client('rogue'), [first('acme/agent-b/x')]).catch((e: grpc.ServiceError) => e);
    // The handshake may already fail (UNAVAILABLE) or the stream is refused (UNAUTHENTICATED).
    expect([grpc.status.UNAUTHENTICATED, grpc.status.UNAVAILABLE]).toContain(rogue?.code);
    expect(received).toEqual([]);
  });

  it('refuses an identifier that changes mid-stream, keeping what came before', async () => {
    const err = await stream(await client('a'), [first('acme/agent-a/pod-1'), first('acme/agent-a/pod-2')]);
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(received).toHaveLength(1);
  });

  it('counts open streams and returns to zero', async () => {
    const c = await client('a');
    const call = c.StreamAccessLogs(() => undefined);
    call.write(first('acme/agent-a/pod-1'));
    for (let i = 0; i < 100 && (await metrics.accessLogStreams.get()).values[0]!.value !== 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await metrics.accessLogStreams.get()).values[0]!.value).toBe(1);
    call.end();
    for (let i = 0; i < 100 && (await metrics.accessLogStreams.get()).values[0]!.value !== 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await metrics.accessLogStreams.get()).values[0]!.value).toBe(0);
  });
});

describe('access log service (insecure, loopback development)', () => {
  let server: grpc.Server;
  let c: AlsClient;
  const received: Array<[LogSource, StreamAccessLogsMessageJson]> = [];

  beforeAll(async () => {
    server = serve(received, new Metrics());
    const port = await bind(server, grpc.ServerCredentials.createInsecure());
    c = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as AlsClient;
  });
  afterAll(() => {
    c.close();
    server.forceShutdown();
  });

  it('takes the node id as given', async () => {
    expect(await stream(c, [first('globex/any/1')])).toBeNull();
    expect(received.map(([s]) => s.node.tenant)).toEqual(['globex']);
  });

  it.each([
    ['no identifier first', [more()], /must carry identifier\.node\.id/],
    ['a malformed node id', [first('not-a-node-id')], /must be <tenant>\/<agent>\/<instance>/],
    ['an empty node id', [{ identifier: { node: {}, logName: 'x' } }], /must be <tenant>\/<agent>\/<instance>/],
  ])('refuses %s: INVALID_ARGUMENT', async (_what, messages, message) => {
    received.length = 0;
    const err = await stream(c, messages as StreamAccessLogsMessageJson[]);
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(message);
    expect(received).toEqual([]);
  });
});
