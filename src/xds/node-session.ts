/**
 * The node side of an xDS stream, shared by the SotW and Delta state machines: identification from
 * the first request (node id, authorization against the peer's certificate, the facts its
 * bootstrap declares), the watch on its configuration, and its entry in the node registry.
 */
import type { ConfigWatcher, Watch } from '../cache/snapshot-cache';
import type { Snapshot } from '../cache/snapshot';
import type { StreamLog } from '../util/logger';
import type { Metrics } from '../util/metrics';
import type { NodeRegistry } from './node-registry';
import { identifyNode, type NodeAuthorizer } from './identify';

export interface NodeSessionDeps {
  watcher: ConfigWatcher;
  registry: NodeRegistry;
  log: StreamLog;
  metrics: Metrics;
  /** Ends the stream with a gRPC status. */
  fail(code: number, message: string): void;
  authorize?: NodeAuthorizer;
}

export class NodeSession {
  name = '';
  snapshot?: Snapshot;
  closed = false;
  private identified = false;
  private watch?: Watch;

  constructor(
    private readonly deps: NodeSessionDeps,
    private readonly protocol: 'sotw' | 'delta',
    private readonly onSnapshot: (snapshot: Snapshot) => void,
  ) {}

  get isOpen(): boolean {
    return this.identified && !this.closed;
  }

  /** Identifies the node from a request; false when the stream was refused (and failed). */
  open(node: { id: string; metadata?: Record<string, unknown> } | undefined): boolean {
    const who = identifyNode(node, this.deps.authorize);
    if (!who.ok) {
      this.deps.log.warn({ code: who.code, message: who.message }, 'xDS stream refused');
      this.closed = true;
      this.deps.fail(who.code, who.message);
      return false;
    }
    this.identified = true;
    this.name = who.value.name;
    this.deps.registry.open(this.name, who.value.id.tenant, who.value.id.agent);
    this.deps.metrics.connectedNodes.set(this.deps.registry.connected);
    this.watch = this.deps.watcher.watch(who.value.descriptor, (s) => {
      if (this.closed) return;
      this.setSnapshot(s);
      this.onSnapshot(s);
    });
    this.setSnapshot(this.watch.current);
    if (!this.snapshot) this.deps.log.warn({ node: this.name, error: this.watch.error }, 'no configuration can be built for this node yet');
    this.deps.log.info({ node: this.name, listen: who.value.descriptor.listen, protocol: this.protocol }, 'node connected');
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watch?.cancel();
    if (this.identified) {
      this.deps.registry.close(this.name);
      this.deps.metrics.connectedNodes.set(this.deps.registry.connected);
    }
  }

  private setSnapshot(snapshot: Snapshot | undefined): void {
    this.snapshot = snapshot;
    this.deps.registry.setSnapshot(this.name, snapshot);
  }
}
