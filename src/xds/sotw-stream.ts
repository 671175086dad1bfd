/**
 * The State-of-the-World xDS stream state machine: node identification, subscriptions, nonces,
 * ACK/NACK. The one module that owns this state (ARCHITECTURE.md principle 3); transport-free, so
 * the rules are unit-testable and grpc-js only appears in server.ts.
 *
 * Protocol rules (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol):
 * - only the first request is guaranteed to carry `node`;
 * - a request whose response_nonce is not the latest one sent for its type is stale: ignored;
 * - ACK echoes version and nonce; NACK adds error_detail and carries the last good version;
 * - a response is sent only when the content for that type differs from what the client has:
 *   versions are content hashes, so a reconnecting client that already has the content (its first
 *   request names the version) is sent nothing, also after a control-plane restart;
 * - a NACKed version is remembered and never resent (the resend loop of go-control-plane#46);
 * - pushes go in make-before-break order: clusters, secrets, listeners, routes.
 */
import type { ConfigWatcher } from '../cache/snapshot-cache';
import { selectResources } from '../cache/snapshot';
import type { StreamLog } from '../util/logger';
import type { Metrics } from '../util/metrics';
import { FULL_STATE_TYPES, PUSH_ORDER, isKnownType, shortType, type TypeUrl } from './type-urls';
import type { DiscoveryRequestIn, StreamTransport } from './messages';
import type { NodeAuthorizer } from './identify';
import { NodeSession } from './node-session';
import type { NodeRegistry } from './node-registry';

interface Subscription {
  names: Set<string> | 'wildcard';
  /** True while an empty first request means "everything" (legacy wildcard, LDS/CDS only). */
  legacyWildcard: boolean;
  /** The latest nonce sent for this type on this stream. */
  nonce?: string;
  /** The version the client has, or is being sent. */
  clientVersion?: string;
  /** The version sent with the latest nonce (kept when that response is NACKed). */
  sentVersion?: string;
  nackedVersion?: string;
  sentAt?: number;
}

export class SotwStream {
  private readonly session: NodeSession;
  private readonly subs = new Map<TypeUrl, Subscription>();
  private nonceCounter = 0;

  constructor(
    watcher: ConfigWatcher,
    private readonly registry: NodeRegistry,
    private readonly transport: StreamTransport,
    private readonly log: StreamLog,
    private readonly metrics: Metrics,
    /** Per-type services serve one type only; ADS serves all. */
    private readonly onlyType?: TypeUrl,
    /** Binds the node id to the peer's certificate identity (absent with --insecure-xds). */
    authorize?: NodeAuthorizer,
  ) {
    this.session = new NodeSession({ watcher, registry, log, metrics, fail: (c, m) => transport.fail(c, m), ...(authorize ? { authorize } : {}) }, 'sotw', () => this.onSnapshot());
  }

  private get nodeName(): string {
    return this.session.name;
  }

  onRequest(req: DiscoveryRequestIn): void {
    if (this.session.closed) return;
    if (!this.session.isOpen && !this.session.open(req.node)) return;
    if (!isKnownType(req.typeUrl) || (this.onlyType && req.typeUrl !== this.onlyType)) {
      this.log.debug({ type: req.typeUrl }, 'request for a type this server does not serve');
      return;
    }
    const type = req.typeUrl;
    this.metrics.requests.inc({ type: shortType(type) });
    let sub = this.subs.get(type);
    if (sub && req.responseNonce !== '' && req.responseNonce !== sub.nonce) {
      this.log.debug({ type: shortType(type), nonce: req.responseNonce, latest: sub.nonce }, 'stale nonce: ignored');
      return;
    }
    if (!sub) {
      sub = { names: 'wildcard', legacyWildcard: false };
      if (req.versionInfo !== '') sub.clientVersion = req.versionInfo;
      this.subs.set(type, sub);
      this.setNames(sub, type, req.resourceNames, true);
    } else {
      this.setNames(sub, type, req.resourceNames, false);
    }
    if (req.responseNonce !== '' && req.responseNonce === sub.nonce) this.onReply(type, sub, req);
    this.maybeSend(type, sub);
    // A client that reconnected already holding the current version is sent nothing; record it
    // as in sync so status and CSDS do not report it as never sent.
    if (sub.nonce === undefined && sub.clientVersion !== undefined) {
      this.registry.sent(this.nodeName, type, sub.clientVersion);
      this.registry.acked(this.nodeName, type, sub.clientVersion);
    }
  }

  onClose(): void {
    this.session.close();
  }

  private setNames(sub: Subscription, type: TypeUrl, names: string[], first: boolean): void {
    if (names.length === 0) {
      if (first && FULL_STATE_TYPES.has(type)) {
        sub.names = 'wildcard';
        sub.legacyWildcard = true;
      } else if (!sub.legacyWildcard) sub.names = new Set();
      return;
    }
    sub.legacyWildcard = false;
    sub.names = names.includes('*') ? 'wildcard' : new Set(names);
  }

  private onReply(type: TypeUrl, sub: Subscription, req: DiscoveryRequestIn): void {
    const t = shortType(type);
    if (req.errorDetail) {
      // The client keeps its last good version (req.versionInfo); the rejected one is never resent.
      sub.nackedVersion = sub.clientVersion;
      this.registry.nacked(this.nodeName, type, sub.clientVersion ?? '', req.errorDetail.message);
      this.metrics.nacks.inc({ type: t });
      this.log.warn({ node: this.nodeName, type: t, version: sub.clientVersion, error: req.errorDetail.message }, 'NACK: the sidecar rejected a configuration; its last good one stays');
      if (req.versionInfo !== '') sub.clientVersion = req.versionInfo;
      else delete sub.clientVersion;
      return;
    }
    // A genuine ACK of a version sent after the NACK: the client moved on, so the rejected content
    // may be offered again (once) if policy returns to it. The request that follows a NACK echoes
    // the last good version, not the sent one, and must not clear it (that would be a resend loop).
    if (req.versionInfo === sub.sentVersion && sub.sentVersion !== sub.nackedVersion) delete sub.nackedVersion;
    this.registry.acked(this.nodeName, type, req.versionInfo);
    this.metrics.acks.inc({ type: t });
    if (sub.sentAt !== undefined) this.metrics.pushLatency.observe({ type: t }, (performance.now() - sub.sentAt) / 1000);
    delete sub.sentAt;
  }

  private onSnapshot(): void {
    for (const type of PUSH_ORDER) {
      const sub = this.subs.get(type);
      if (sub) this.maybeSend(type, sub);
    }
  }

  private maybeSend(type: TypeUrl, sub: Subscription): void {
    const snapshot = this.session.snapshot;
    if (!snapshot) return;
    const { version, resources } = selectResources(snapshot, type, sub.names);
    if (version === sub.clientVersion || version === sub.nackedVersion) return;
    this.nonceCounter += 1;
    const nonce = String(this.nonceCounter);
    this.transport.send({ versionInfo: version, typeUrl: type, nonce, resources: resources.map((r) => ({ typeUrl: type, value: r.value })) });
    sub.nonce = nonce;
    sub.clientVersion = version;
    sub.sentVersion = version;
    sub.sentAt = performance.now();
    this.registry.sent(this.nodeName, type, version);
    this.metrics.pushes.inc({ type: shortType(type) });
    this.log.debug({ node: this.nodeName, type: shortType(type), version, count: resources.length }, 'pushed');
  }
}
