/**
 * The xDS gRPC server: ADS and the per-type services (LDS, RDS, CDS, EDS, SDS), each in
 * State-of-the-World and Delta, plus the unary Fetch methods. All share one state machine per
 * protocol variant (sotw-stream.ts, delta-stream.ts); this file only adapts grpc-js calls to them.
 */
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type { ConfigWatcher } from '../cache/snapshot-cache';
import { selectResources } from '../cache/snapshot';
import { BoundLog, type Logger, type StreamLog } from '../util/logger';
import type { Metrics } from '../util/metrics';
import { serviceDefinition } from './grpc-codec';
import type { DeltaRequestIn, DeltaResponseOut, DiscoveryRequestIn, DiscoveryResponseOut } from './messages';
import { GRPC_STATUS } from './messages';
import type { NodeRegistry } from './node-registry';
import { SotwStream } from './sotw-stream';
import { DeltaStream } from './delta-stream';
import { identifyNode, type NodeAuthorizer } from './identify';
import { authenticatePeer, authorizeNode, type TrustAnchor } from '../identity/peer-auth';
import { TYPE, type TypeUrl } from './type-urls';

export interface XdsServerDeps {
  watcher: ConfigWatcher;
  registry: NodeRegistry;
  log: Logger;
  metrics: Metrics;
  /** With mTLS: the CA and trust domain peers are verified against. Absent: --insecure-xds. */
  trust?: TrustAnchor;
}

type Duplex<Req, Res> = grpc.ServerDuplexStream<Req, Res>;

/** Per-type services: (service, SotW method, Delta method, Fetch method, the one type it serves). */
const PER_TYPE: ReadonlyArray<[string, string, string, string, TypeUrl]> = [
  ['envoy.service.listener.v3.ListenerDiscoveryService', 'StreamListeners', 'DeltaListeners', 'FetchListeners', TYPE.listener],
  ['envoy.service.route.v3.RouteDiscoveryService', 'StreamRoutes', 'DeltaRoutes', 'FetchRoutes', TYPE.route],
  ['envoy.service.cluster.v3.ClusterDiscoveryService', 'StreamClusters', 'DeltaClusters', 'FetchClusters', TYPE.cluster],
  ['envoy.service.endpoint.v3.EndpointDiscoveryService', 'StreamEndpoints', 'DeltaEndpoints', 'FetchEndpoints', TYPE.endpoint],
  ['envoy.service.secret.v3.SecretDiscoveryService', 'StreamSecrets', 'DeltaSecrets', 'FetchSecrets', TYPE.secret],
];

export class XdsServer {
  private readonly server: grpc.Server;
  private streamCounter = 0;
  private readonly calls = new Set<grpc.ServerDuplexStream<unknown, unknown>>();

  constructor(
    private readonly deps: XdsServerDeps,
    /** Extra services sharing the port (CSDS, access logs). */
    extra: Array<{ definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }> = [],
  ) {
    this.server = new grpc.Server({
      // Envoy keeps xDS streams open for hours; keepalive pings detect dead peers.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      // Not 'grpc.enable_channelz': 0, although its per-connection trackers cost memory and nothing
      // reads them: grpc-js 1.14 records sessions only in channelz's map, so forceShutdown would
      // then leave sidecars' HTTP/2 connections open and they would not reconnect to a restart.
    });
    this.server.addService(serviceDefinition('envoy.service.discovery.v3.AggregatedDiscoveryService'), {
      StreamAggregatedResources: (call: Duplex<DiscoveryRequestIn, DiscoveryResponseOut>) => this.sotw(call),
      DeltaAggregatedResources: (call: Duplex<DeltaRequestIn, DeltaResponseOut>) => this.delta(call),
    });
    for (const [service, stream, delta, fetch, type] of PER_TYPE) {
      this.server.addService(serviceDefinition(service), {
        [stream]: (call: Duplex<DiscoveryRequestIn, DiscoveryResponseOut>) => this.sotw(call, type),
        [delta]: (call: Duplex<DeltaRequestIn, DeltaResponseOut>) => this.delta(call, type),
        [fetch]: (call: grpc.ServerUnaryCall<DiscoveryRequestIn, DiscoveryResponseOut>, cb: grpc.sendUnaryData<DiscoveryResponseOut>) => this.fetch(call, cb, type),
      });
    }
    for (const e of extra) this.server.addService(e.definition, e.implementation);
  }

  /** Binds `host:port` (port 0 picks a free one); resolves to the bound port. */
  listen(host: string, port: number, credentials: grpc.ServerCredentials): Promise<number> {
    return new Promise((resolve, reject) => {
      const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      this.server.bindAsync(target, credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  /**
   * Stops accepting streams and ends the open ones. A graceful shutdown waits for clients to
   * close their HTTP/2 connections, which Envoy does not do on its own; after a short grace the
   * connections are closed (sidecars keep enforcing and reconnect with backoff).
   */
  async close(graceMs = 250): Promise<void> {
    for (const call of this.calls) call.destroy();
    await Promise.race([new Promise<void>((resolve) => this.server.tryShutdown(() => resolve())), new Promise((r) => setTimeout(r, graceMs))]);
    this.server.forceShutdown();
  }

  /**
   * Authenticates the peer of a call (mTLS): an authorizer binding node ids to its certificate, or
   * a refusal. Without mTLS every node id is accepted (loopback development only).
   */
  private peer(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null }, log: StreamLog): { ok: true; authorize?: NodeAuthorizer } | { ok: false; message: string } {
    if (!this.deps.trust) return { ok: true };
    const auth = authenticatePeer(call.getAuthContext()?.sslPeerCertificate, this.deps.trust);
    if (!auth.ok) {
      log.warn({ reason: auth.reason }, 'xDS peer refused: UNAUTHENTICATED');
      return { ok: false, message: auth.reason };
    }
    return { ok: true, authorize: (id) => authorizeNode(auth.identity, id) };
  }

  private sotw(call: Duplex<DiscoveryRequestIn, DiscoveryResponseOut>, onlyType?: TypeUrl): void {
    const log = this.streamLog(call, 'sotw');
    const peer = this.peer(call, log);
    if (!peer.ok) return failCall(call, GRPC_STATUS.UNAUTHENTICATED, peer.message);
    const stream = new SotwStream(this.deps.watcher, this.deps.registry, { send: (r) => call.write(r), fail: (c, m) => failCall(call, c, m) }, log, this.deps.metrics, onlyType, peer.authorize);
    this.attach(call, (req: DiscoveryRequestIn) => stream.onRequest(req), () => stream.onClose(), log);
  }

  private delta(call: Duplex<DeltaRequestIn, DeltaResponseOut>, onlyType?: TypeUrl): void {
    const log = this.streamLog(call, 'delta');
    const peer = this.peer(call, log);
    if (!peer.ok) return failCall(call, GRPC_STATUS.UNAUTHENTICATED, peer.message);
    const stream = new DeltaStream(this.deps.watcher, this.deps.registry, { send: (r) => call.write(r), fail: (c, m) => failCall(call, c, m) }, log, this.deps.metrics, onlyType, peer.authorize);
    this.attach(call, (req: DeltaRequestIn) => stream.onRequest(req), () => stream.onClose(), log);
  }

  /** Unary Fetch (REST-style xDS): the current resources of one type, once. */
  private fetch(call: grpc.ServerUnaryCall<DiscoveryRequestIn, DiscoveryResponseOut>, cb: grpc.sendUnaryData<DiscoveryResponseOut>, type: TypeUrl): void {
    const req = call.request;
    const peer = this.peer(call, this.deps.log);
    if (!peer.ok) return cb({ code: GRPC_STATUS.UNAUTHENTICATED, details: peer.message } as grpc.ServiceError);
    const who = identifyNode(req.node, peer.authorize);
    if (!who.ok) return cb({ code: who.code, details: who.message } as grpc.ServiceError);
    const watch = this.deps.watcher.watch(who.value.descriptor, () => undefined);
    watch.cancel();
    if (!watch.current) return cb({ code: GRPC_STATUS.INTERNAL, details: 'no configuration can be built for this node' } as grpc.ServiceError);
    const names = req.resourceNames.length === 0 || req.resourceNames.includes('*') ? 'wildcard' : new Set(req.resourceNames);
    const { version, resources } = selectResources(watch.current, type, names);
    cb(null, { versionInfo: version, typeUrl: type, nonce: '', resources: resources.map((r) => ({ typeUrl: type, value: r.value })) });
  }

  /** The stream's log: its lines carry `{stream, protocol, peer}` (no pino child per stream: memory). */
  private streamLog(call: grpc.ServerDuplexStream<unknown, unknown>, protocol: string): StreamLog {
    this.streamCounter += 1;
    return new BoundLog(this.deps.log, { stream: this.streamCounter, protocol, peer: call.getPeer() });
  }

  private attach<Req>(call: grpc.ServerDuplexStream<Req, unknown>, onData: (r: Req) => void, onClose: () => void, log: StreamLog): void {
    const c = call as grpc.ServerDuplexStream<unknown, unknown>;
    this.calls.add(c);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.calls.delete(c);
      onClose();
    };
    call.on('data', onData);
    call.on('end', () => {
      finish();
      call.end();
    });
    call.on('error', (err) => {
      log.debug({ err: err.message }, 'stream error');
      finish();
    });
    call.on('close', finish);
  }
}

/** grpc-js ends a server stream with a status when the call emits an error carrying a code. */
function failCall(call: grpc.ServerDuplexStream<unknown, unknown>, code: number, message: string): void {
  call.emit('error', { code, details: message, message } as grpc.ServiceError);
}
