/**
 * The incremental (Delta) xDS stream state machine: per type, the client's subscriptions and the
 * version of every resource it has; responses carry only what changed and list what is gone.
 *
 * Protocol rules (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol#incremental-xds):
 * - subscribe/unsubscribe changes are honoured even on a request with a stale nonce;
 * - legacy wildcard: a first LDS/CDS request that subscribes to nothing means "everything";
 *   explicit "*" subscribes to everything, unsubscribing "*" ends it;
 * - `initial_resource_versions` on reconnect: the client already has these; only differences are
 *   sent (nothing at all when the control plane restarted with unchanged policy);
 * - a resource the client has that no longer exists (or left a wildcard's scope) goes into
 *   `removed_resources`; a named subscription to a resource that does not exist is answered with
 *   it in `removed_resources` once, and the resource is sent if it appears later;
 * - a NACKed resource version is remembered and never resent; the client's known versions for
 *   that response are rolled back to what it kept;
 * - clusters and secrets are added before listeners and routes, and removed after them
 *   (make-before-break: a cluster still referenced is never removed first).
 */
import type { ConfigWatcher } from '../cache/snapshot-cache';
import { selectResources, type Snapshot } from '../cache/snapshot';
import type { StreamLog } from '../util/logger';
import type { Metrics } from '../util/metrics';
import { FULL_STATE_TYPES, PUSH_ORDER, TYPE, isKnownType, shortType, type TypeUrl } from './type-urls';
import type { DeltaRequestIn, DeltaTransport } from './messages';
import type { NodeRegistry } from './node-registry';
import type { NodeAuthorizer } from './identify';
import { NodeSession } from './node-session';

interface Pending {
  /** name -> the version the client had before this response (undefined: it had none). */
  previous: Map<string, string | undefined>;
  sent: Array<{ name: string; version: string }>;
  systemVersion: string;
  sentAt: number;
}

/**
 * One type's state on one stream. Every stream holds one per subscribed type for hours, so the
 * collections that are usually empty (named subscriptions under a wildcard, "told absent",
 * NACKed versions, responses awaiting their ACK) are created on first use, and the last two are
 * dropped again when empty: an empty Map or Set costs about 150 bytes, and a Delta ADS stream has
 * three types.
 */
interface DeltaSubscription {
  wildcard: boolean;
  names: Set<string> | undefined;
  /** name -> version the client has (or is being sent). */
  known: Map<string, string>;
  /** Named subscriptions already answered "does not exist". */
  toldAbsent: Set<string> | undefined;
  /** `${name}@${version}` the client rejected. */
  nacked: Set<string> | undefined;
  /** nonce -> the response awaiting its ACK or NACK. */
  pending: Map<string, Pending> | undefined;
  /** True until the first response for this type on this stream. */
  initial: boolean;
}

/** Phases of one push cycle: additions of dependencies, then dependents, then removals. */
type Phase = 'all' | 'updates-only' | 'removals-only';

const DEPENDENCY_TYPES: ReadonlySet<TypeUrl> = new Set([TYPE.cluster, TYPE.secret]);
const NO_NAMES: ReadonlySet<string> = new Set();

export class DeltaStream {
  private readonly session: NodeSession;
  private readonly subs = new Map<TypeUrl, DeltaSubscription>();
  private nonceCounter = 0;

  constructor(
    watcher: ConfigWatcher,
    private readonly registry: NodeRegistry,
    private readonly transport: DeltaTransport,
    private readonly log: StreamLog,
    private readonly metrics: Metrics,
    /** Per-type services serve one type only; ADS serves all. */
    private readonly onlyType?: TypeUrl,
    /** Binds the node id to the peer's certificate identity (absent with --insecure-xds). */
    authorize?: NodeAuthorizer,
  ) {
    this.session = new NodeSession({ watcher, registry, log, metrics, fail: (c, m) => transport.fail(c, m), ...(authorize ? { authorize } : {}) }, 'delta', () => this.onSnapshot());
  }

  private get nodeName(): string {
    return this.session.name;
  }

  private get snapshot(): Snapshot | undefined {
    return this.session.snapshot;
  }

  onRequest(req: DeltaRequestIn): void {
    if (this.session.closed) return;
    if (!this.session.isOpen && !this.session.open(req.node)) return;
    if (!isKnownType(req.typeUrl) || (this.onlyType && req.typeUrl !== this.onlyType)) {
      this.log.debug({ type: req.typeUrl }, 'delta request for a type this stream does not serve');
      return;
    }
    const type = req.typeUrl;
    this.metrics.requests.inc({ type: shortType(type) });
    let sub = this.subs.get(type);
    if (!sub) {
      // Every field set here, in one order: one hidden class for all subscriptions; the lazy ones are
      // reset to undefined, never deleted (a delete would turn the object into a dictionary).
      sub = { wildcard: false, names: undefined, known: new Map(), toldAbsent: undefined, nacked: undefined, pending: undefined, initial: true };
      for (const [name, version] of Object.entries(req.initialResourceVersions)) sub.known.set(name, version);
      // Legacy wildcard: only on the first request, only for the full-state types.
      if (req.resourceNamesSubscribe.length === 0 && FULL_STATE_TYPES.has(type)) sub.wildcard = true;
      this.subs.set(type, sub);
    }
    for (const name of req.resourceNamesSubscribe) {
      if (name === '*') sub.wildcard = true;
      else (sub.names ??= new Set()).add(name);
    }
    for (const name of req.resourceNamesUnsubscribe) {
      if (name === '*') sub.wildcard = false;
      else {
        sub.names?.delete(name);
        sub.toldAbsent?.delete(name);
        // The client drops what it unsubscribed from; keep it only if the wildcard still covers it.
        if (!sub.wildcard) sub.known.delete(name);
      }
    }
    if (req.responseNonce !== '') this.onReply(type, sub, req);
    this.push(type, sub, 'all');
  }

  onClose(): void {
    this.session.close();
  }

  private onReply(type: TypeUrl, sub: DeltaSubscription, req: DeltaRequestIn): void {
    const pending = sub.pending?.get(req.responseNonce);
    if (!pending) return; // stale or unknown nonce: subscription changes above still count
    sub.pending!.delete(req.responseNonce);
    if (sub.pending!.size === 0) sub.pending = undefined;
    const t = shortType(type);
    if (req.errorDetail) {
      const nacked = (sub.nacked ??= new Set());
      for (const r of pending.sent) nacked.add(`${r.name}@${r.version}`);
      for (const [name, prev] of pending.previous) {
        if (prev === undefined) sub.known.delete(name);
        else sub.known.set(name, prev);
      }
      this.registry.nacked(this.nodeName, type, pending.systemVersion, req.errorDetail.message);
      this.metrics.nacks.inc({ type: t });
      this.log.warn({ node: this.nodeName, type: t, version: pending.systemVersion, error: req.errorDetail.message }, 'NACK: the sidecar rejected a configuration; its last good one stays');
      return;
    }
    // The client accepted new versions of these resources: their earlier rejected versions may be
    // offered again (once) if policy returns to them.
    const nacked = sub.nacked;
    if (nacked) {
      for (const r of pending.sent) for (const key of [...nacked]) if (key.startsWith(`${r.name}@`)) nacked.delete(key);
      if (nacked.size === 0) sub.nacked = undefined;
    }
    this.registry.acked(this.nodeName, type, pending.systemVersion);
    this.metrics.acks.inc({ type: t });
    this.metrics.pushLatency.observe({ type: t }, (performance.now() - pending.sentAt) / 1000);
  }

  private onSnapshot(): void {
    // Make-before-break: add clusters and secrets, update listeners and routes, then remove the
    // clusters and secrets nothing references any more.
    for (const type of PUSH_ORDER) {
      const sub = this.subs.get(type);
      if (sub) this.push(type, sub, DEPENDENCY_TYPES.has(type) ? 'updates-only' : 'all');
    }
    for (const type of PUSH_ORDER) {
      const sub = this.subs.get(type);
      if (sub && DEPENDENCY_TYPES.has(type)) this.push(type, sub, 'removals-only');
    }
  }

  private push(type: TypeUrl, sub: DeltaSubscription, phase: Phase): void {
    if (!this.snapshot) return;
    const all = this.snapshot.resources.get(type) ?? new Map();
    const names = sub.names;
    const inScope = (name: string): boolean => all.has(name) && (sub.wildcard || (names?.has(name) ?? false));

    const resources: Array<{ name: string; version: string; resource: { typeUrl: string; value: Uint8Array } }> = [];
    const removed: string[] = [];
    const previous = new Map<string, string | undefined>();
    if (phase !== 'removals-only') {
      for (const res of all.values()) {
        if (!inScope(res.name) || sub.known.get(res.name) === res.hash || sub.nacked?.has(`${res.name}@${res.hash}`)) continue;
        resources.push({ name: res.name, version: res.hash, resource: { typeUrl: type, value: res.value } });
        previous.set(res.name, sub.known.get(res.name));
        sub.toldAbsent?.delete(res.name);
      }
      for (const name of names ?? []) {
        if (!all.has(name) && !sub.known.has(name) && !sub.toldAbsent?.has(name)) {
          removed.push(name);
          (sub.toldAbsent ??= new Set()).add(name);
        }
      }
    }
    if (phase !== 'updates-only') {
      for (const [name, version] of sub.known) {
        if (inScope(name)) continue;
        removed.push(name);
        previous.set(name, version);
        if (names?.has(name)) (sub.toldAbsent ??= new Set()).add(name);
      }
    }
    const mustAnswerInitial = sub.initial && sub.known.size === 0 && phase === 'all';
    if (resources.length === 0 && removed.length === 0 && !mustAnswerInitial) {
      if (sub.initial && phase === 'all') {
        // Reconnected already holding the current versions: nothing to send, but in sync, and
        // status and CSDS must say so.
        sub.initial = false;
        const inSync = selectResources(this.snapshot, type, sub.wildcard ? 'wildcard' : (names ?? NO_NAMES)).version;
        this.registry.sent(this.nodeName, type, inSync);
        this.registry.acked(this.nodeName, type, inSync);
      }
      return;
    }

    for (const r of resources) sub.known.set(r.name, r.version);
    for (const name of removed) sub.known.delete(name);
    sub.initial = false;
    const systemVersion = selectResources(this.snapshot, type, sub.wildcard ? 'wildcard' : (names ?? NO_NAMES)).version;
    this.nonceCounter += 1;
    const nonce = String(this.nonceCounter);
    (sub.pending ??= new Map()).set(nonce, { previous, sent: resources.map((r) => ({ name: r.name, version: r.version })), systemVersion, sentAt: performance.now() });
    this.transport.send({ systemVersionInfo: systemVersion, resources, typeUrl: type, removedResources: removed.sort(), nonce });
    this.registry.sent(this.nodeName, type, systemVersion);
    this.metrics.pushes.inc({ type: shortType(type) });
    this.log.debug({ node: this.nodeName, type: shortType(type), updated: resources.length, removed: removed.length }, 'delta pushed');
  }
}
