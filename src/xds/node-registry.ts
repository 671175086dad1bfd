/**
 * What every connected node has been sent and has accepted, per type: the data behind
 * GET /v1/nodes and `exitgate status` (SPEC §4). State is dropped when a node's last stream
 * closes, so memory does not grow with node churn.
 */
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
  resources: Record<string, TypeStatus>;
}

interface NodeRecord extends NodeStatus {
  streams: number;
}

export class NodeRegistry {
  private readonly nodes = new Map<string, NodeRecord>();

  constructor(private readonly now: () => Date = () => new Date()) {}

  open(node: string, tenant: string, agent: string): void {
    const existing = this.nodes.get(node);
    if (existing) existing.streams += 1;
    else this.nodes.set(node, { node, tenant, agent, connectedAt: this.now().toISOString(), resources: {}, streams: 1 });
  }

  close(node: string): void {
    const rec = this.nodes.get(node);
    if (!rec) return;
    rec.streams -= 1;
    if (rec.streams <= 0) this.nodes.delete(node);
  }

  sent(node: string, type: string, version: string): void {
    this.type(node, type).sentVersion = version;
  }

  acked(node: string, type: string, version: string): void {
    this.type(node, type).ackedVersion = version;
  }

  nacked(node: string, type: string, version: string, message: string): void {
    this.type(node, type).lastNack = { version, message, at: this.now().toISOString() };
  }

  list(): NodeStatus[] {
    return [...this.nodes.values()]
      .sort((a, b) => a.node.localeCompare(b.node))
      .map(({ streams: _streams, ...status }) => structuredClone(status));
  }

  get size(): number {
    return this.nodes.size;
  }

  private type(node: string, type: string): TypeStatus {
    const rec = this.nodes.get(node);
    if (!rec) return {};
    return (rec.resources[type] ??= {});
  }
}
