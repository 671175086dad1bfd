/**
 * What every node has been sent and has accepted, per type: the data behind GET /v1/nodes,
 * `exitgate status` and CSDS (SPEC §4). A node's state outlives its last stream by a grace period
 * (a sidecar reconnecting after a blip keeps its history), then is dropped, so memory does not
 * grow with node churn.
 */
import type { Snapshot } from '../cache/snapshot';

export interface NackRecord {
  version: string;
  message: string;
  at: string;
}

export interface TypeStatus {
  sentVersion?: string;
  ackedVersion?: string;
  lastNack?: NackRecord;
}

export interface NodeStatus {
  node: string;
  tenant: string;
  agent: string;
  connectedAt: string;
  /** Set while the node has no open stream (within the reconnect grace period). */
  disconnectedAt?: string;
  resources: Record<string, TypeStatus>;
}

interface NodeRecord {
  status: NodeStatus;
  streams: number;
  snapshot?: Snapshot;
  dropTimer?: NodeJS.Timeout;
}

export interface NodeRegistryOptions {
  /** How long a node's state is kept after its last stream closes. Default 30 s. */
  graceMs?: number;
  now?: () => Date;
}

export class NodeRegistry {
  private readonly nodes = new Map<string, NodeRecord>();
  /** Nodes with at least one open stream (kept as a count: every stream's open and close reads it). */
  private connectedCount = 0;
  private readonly graceMs: number;
  private readonly now: () => Date;

  constructor(options: NodeRegistryOptions = {}) {
    this.graceMs = options.graceMs ?? 30_000;
    this.now = options.now ?? (() => new Date());
  }

  open(node: string, tenant: string, agent: string): void {
    const rec = this.nodes.get(node);
    if (rec) {
      if (rec.dropTimer) clearTimeout(rec.dropTimer);
      delete rec.dropTimer;
      if (rec.streams === 0) {
        rec.status.connectedAt = this.now().toISOString();
        delete rec.status.disconnectedAt;
        this.connectedCount += 1;
      }
      rec.streams += 1;
      return;
    }
    this.nodes.set(node, { status: { node, tenant, agent, connectedAt: this.now().toISOString(), resources: {} }, streams: 1 });
    this.connectedCount += 1;
  }

  close(node: string): void {
    const rec = this.nodes.get(node);
    if (!rec || rec.streams === 0) return;
    rec.streams -= 1;
    if (rec.streams > 0) return;
    this.connectedCount -= 1;
    delete rec.snapshot;
    if (this.graceMs <= 0) {
      this.nodes.delete(node);
      return;
    }
    rec.status.disconnectedAt = this.now().toISOString();
    rec.dropTimer = setTimeout(() => {
      if (this.nodes.get(node) === rec && rec.streams === 0) this.nodes.delete(node);
    }, this.graceMs);
    rec.dropTimer.unref();
  }

  /** The configuration the node's stream currently serves (for CSDS). */
  setSnapshot(node: string, snapshot: Snapshot | undefined): void {
    const rec = this.nodes.get(node);
    if (rec) rec.snapshot = snapshot;
  }

  sent(node: string, type: string, version: string): void {
    const t = this.type(node, type);
    if (t) t.sentVersion = version;
  }

  acked(node: string, type: string, version: string): void {
    const t = this.type(node, type);
    if (t) t.ackedVersion = version;
  }

  nacked(node: string, type: string, version: string, message: string): void {
    const t = this.type(node, type);
    if (t) t.lastNack = { version, message, at: this.now().toISOString() };
  }

  list(): NodeStatus[] {
    return [...this.nodes.values()].map((r) => structuredClone(r.status)).sort((a, b) => a.node.localeCompare(b.node));
  }

  /** Status and current snapshot of each node, for CSDS. */
  entries(): Array<{ status: NodeStatus; snapshot?: Snapshot }> {
    return [...this.nodes.values()].map((r) => ({ status: r.status, ...(r.snapshot ? { snapshot: r.snapshot } : {}) }));
  }

  /** Nodes with at least one open stream. */
  get connected(): number {
    return this.connectedCount;
  }

  /** Nodes with state held, connected or within the grace period. */
  get size(): number {
    return this.nodes.size;
  }

  private type(node: string, type: string): TypeStatus | undefined {
    const rec = this.nodes.get(node);
    if (!rec) return undefined;
    return (rec.status.resources[type] ??= {});
  }
}
