/**
 * The decision trail: access log entries in, decision events out (SPEC §5), to every sink at once:
 * - pino JSON lines (`{"msg":"decision","decision":{...}}`; `serve --decisions-log FILE` or stdout),
 * - the bounded buffer behind `GET /v1/decisions`, and live subscribers (its SSE stream),
 * - `exitgate_decisions_total{tenant,agent,verdict}`.
 *
 * The one piece of state beyond the buffer is the set of open CONNECT tunnels: the decision of a
 * tunnel is made when it is established; its close record (same node and Envoy stream id) then
 * completes that decision (bytes, duration) instead of counting again. The set is bounded; a close
 * record whose tunnel is unknown (opened before this process started, or evicted) becomes the
 * decision itself, so a tunnel is never lost and never counted twice by one process.
 */
import type { Logger } from '../util/logger';
import type { Metrics } from '../util/metrics';
import type { AccessLogReceiver, LogSource } from './als-service';
import { DecisionBuffer, DEFAULT_DECISION_BUFFER, type DecisionFilter } from './decision-buffer';
import { mapHttpEntry, mapTcpEntry, type DecisionDraft, type DecisionEvent, type MappedEntry, type TunnelClosed } from './decision';
import type { HttpEntryJson, StreamAccessLogsMessageJson, TcpEntryJson } from './log-entry';

/** What subscribers (the SSE stream) are told. */
export type TrailEvent = { type: 'decision'; event: DecisionEvent } | { type: 'tunnel-closed'; event: TunnelClosed };

export interface DecisionTrailOptions {
  /** Receives one line per decision and per tunnel close (a child logger or a file logger). */
  log: Logger;
  metrics?: Metrics;
  /** Decisions kept for the admin API (default 10,000). */
  capacity?: number;
  /** Open tunnels remembered for their close record (default 100,000). */
  maxOpenTunnels?: number;
  /** Test hook: every raw entry as received, with its source. */
  onEntry?: (source: LogSource, entry: { http?: HttpEntryJson; tcp?: TcpEntryJson }) => void;
}

export class DecisionTrail implements AccessLogReceiver {
  private readonly buffer: DecisionBuffer;
  private readonly openTunnels = new Map<string, number>();
  private readonly subscribers = new Set<(e: TrailEvent) => void>();
  private readonly maxOpenTunnels: number;
  private nextId = 1;
  /**
   * Names this process's sequence of ids (they restart at 1 with the control plane): SSE event ids
   * are `<epoch>.<id>`, so a client resuming across a restart is not mistaken for one that saw the
   * new process's first decisions.
   */
  readonly epoch = Date.now().toString(36);

  constructor(private readonly o: DecisionTrailOptions) {
    this.buffer = new DecisionBuffer(o.capacity ?? DEFAULT_DECISION_BUFFER);
    this.maxOpenTunnels = o.maxOpenTunnels ?? 100_000;
  }

  receive(source: LogSource, message: StreamAccessLogsMessageJson): void {
    for (const http of message.httpLogs?.logEntry ?? []) {
      this.o.onEntry?.(source, { http });
      this.apply(mapHttpEntry(source.node, http));
    }
    for (const tcp of message.tcpLogs?.logEntry ?? []) {
      this.o.onEntry?.(source, { tcp });
      this.apply(mapTcpEntry(source.node, tcp));
    }
  }

  /** Applies one mapped entry (exported for tests that feed entries directly). */
  apply(m: MappedEntry): void {
    switch (m.kind) {
      case 'ignored':
        this.o.metrics?.accessLogEntries.inc({ outcome: 'ignored' });
        return;
      case 'decision': {
        const event = this.record(m.decision);
        if (m.tunnelKey) this.rememberTunnel(m.tunnelKey, event.id);
        return;
      }
      case 'tunnel-end': {
        const id = this.openTunnels.get(m.tunnelKey);
        if (id === undefined) {
          this.record(m.decision);
          return;
        }
        this.openTunnels.delete(m.tunnelKey);
        this.closeTunnel(id, m.decision);
      }
    }
  }

  /** Assigns the next id and sends a decision to every sink. */
  record(draft: DecisionDraft): DecisionEvent {
    const event: DecisionEvent = { id: this.nextId++, ...draft };
    this.buffer.push(event);
    this.o.metrics?.decisions.inc({ tenant: event.tenant, agent: event.agent, verdict: event.verdict });
    this.o.metrics?.accessLogEntries.inc({ outcome: 'decision' });
    this.o.log.info({ decision: event }, 'decision');
    this.publish({ type: 'decision', event });
    return event;
  }

  private closeTunnel(id: number, end: DecisionDraft): void {
    const open = this.buffer.get(id);
    const closed: TunnelClosed = {
      id,
      tenant: end.tenant,
      agent: end.agent,
      instance: end.instance,
      verdict: open?.verdict ?? end.verdict,
      bytesSent: end.bytesSent,
      bytesReceived: end.bytesReceived,
      durationMs: end.durationMs,
      ...(end.details ? { details: end.details } : {}),
    };
    if (open) {
      this.buffer.replace({ ...open, bytesSent: closed.bytesSent, bytesReceived: closed.bytesReceived, durationMs: closed.durationMs, tunnel: 'closed' });
    }
    this.o.metrics?.accessLogEntries.inc({ outcome: 'tunnel-closed' });
    this.o.log.info({ tunnelClosed: closed }, 'tunnel closed');
    this.publish({ type: 'tunnel-closed', event: closed });
  }

  private rememberTunnel(key: string, id: number): void {
    this.openTunnels.set(key, id);
    if (this.openTunnels.size > this.maxOpenTunnels) {
      const oldest = this.openTunnels.keys().next().value;
      if (oldest !== undefined) this.openTunnels.delete(oldest);
    }
  }

  private publish(e: TrailEvent): void {
    for (const fn of this.subscribers) {
      try {
        fn(e);
      } catch {
        // A failing subscriber (a closed SSE socket) must not stop the others.
      }
    }
  }

  /** Live events from now on; returns the unsubscribe function. */
  subscribe(fn: (e: TrailEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /** Newest first. */
  recent(filter: DecisionFilter, limit: number): DecisionEvent[] {
    return this.buffer.newest(filter, limit);
  }

  /** Buffered decisions after `id`, oldest first (an SSE client resuming with Last-Event-ID). */
  after(id: number, filter: DecisionFilter): DecisionEvent[] {
    return this.buffer.after(id, filter);
  }

  get capacity(): number {
    return this.buffer.capacity;
  }
}
