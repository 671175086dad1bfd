/**
 * The recent decisions behind `GET /v1/decisions` (SPEC §4): a fixed-size ring of the newest
 * events, addressed by their sequence id, so a tunnel's close record can complete its decision in
 * place and an SSE client can resume after the last id it saw. Memory is bounded by `capacity`.
 */
import type { DecisionEvent, DecisionVerdict } from './decision';

export const DEFAULT_DECISION_BUFFER = 10_000;

export interface DecisionFilter {
  tenant?: string;
  agent?: string;
  verdict?: DecisionVerdict;
}

export const matchesFilter = (e: Pick<DecisionEvent, 'tenant' | 'agent' | 'verdict'>, f: DecisionFilter): boolean =>
  (f.tenant === undefined || e.tenant === f.tenant) && (f.agent === undefined || e.agent === f.agent) && (f.verdict === undefined || e.verdict === f.verdict);

export class DecisionBuffer {
  private readonly ring: Array<DecisionEvent | undefined>;
  /** Id the next pushed event must carry; ids are consecutive. */
  private nextId: number | undefined;
  /** Id of the first event ever pushed. */
  private firstId = 0;

  constructor(readonly capacity: number = DEFAULT_DECISION_BUFFER) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`decision buffer capacity must be a positive integer, not ${capacity}`);
    this.ring = new Array<DecisionEvent | undefined>(capacity);
  }

  /** Appends the newest event (its id must follow the previous one's); the oldest falls out when full. */
  push(e: DecisionEvent): void {
    if (this.nextId === undefined) this.firstId = e.id;
    else if (e.id !== this.nextId) throw new Error(`internal: decision ${e.id} pushed after ${this.nextId - 1}`);
    this.ring[e.id % this.capacity] = e;
    this.nextId = e.id + 1;
  }

  get size(): number {
    return this.nextId === undefined ? 0 : Math.min(this.capacity, this.nextId - this.firstId);
  }

  get(id: number): DecisionEvent | undefined {
    const e = this.ring[id % this.capacity];
    return e && e.id === id ? e : undefined;
  }

  /** Replaces a still-buffered event by a newer version of itself (same id); false if it fell out. */
  replace(e: DecisionEvent): boolean {
    if (!this.get(e.id)) return false;
    this.ring[e.id % this.capacity] = e;
    return true;
  }

  /** Newest first, at most `limit`, matching `filter`. */
  newest(filter: DecisionFilter, limit: number): DecisionEvent[] {
    const out: DecisionEvent[] = [];
    if (this.nextId === undefined) return out;
    for (let id = this.nextId - 1; id >= 0 && id >= this.nextId - this.capacity && out.length < limit; id--) {
      const e = this.get(id);
      if (!e) break;
      if (matchesFilter(e, filter)) out.push(e);
    }
    return out;
  }

  /** Oldest first: the buffered events after `afterId` matching `filter` (an SSE client resuming). */
  after(afterId: number, filter: DecisionFilter): DecisionEvent[] {
    const out: DecisionEvent[] = [];
    if (this.nextId === undefined) return out;
    for (let id = Math.max(afterId + 1, this.nextId - this.capacity, 0); id < this.nextId; id++) {
      const e = this.get(id);
      if (e && matchesFilter(e, filter)) out.push(e);
    }
    return out;
  }
}
