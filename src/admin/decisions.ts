/**
 * `GET /v1/decisions?tenant=&agent=&verdict=&limit=` and `GET /v1/decisions/stream` (SPEC §4, §5).
 *
 * - The list is the newest buffered decisions first (default 100, at most the buffer's size), as a
 *   JSON array of decision events.
 * - The stream is server-sent events: `event: decision` for each new decision, with SSE `id:
 *   <epoch>.<decision id>` (decision ids restart with the control plane; the epoch names the
 *   process), and `event: tunnel-closed` when a CONNECT tunnel whose decision was sent closes (its
 *   bytes and duration; `id` in the data names the decision). A client that reconnects with
 *   `Last-Event-ID` first gets the buffered decisions it has not seen: those after that id, or all
 *   of them if the id is from an earlier process; `?since=<decision id>` does the same. Comments
 *   (`: ping`) every 15 s keep proxies from closing an idle stream. A client that does not read is
 *   disconnected once 1 MiB is waiting for it, rather than buffering without bound.
 * - An admin token sees every tenant; a tenant token only its own: its decisions by default, and
 *   403 if it asks for another tenant's. With no tokens configured (loopback mode) all are shown.
 */
import type * as http from 'node:http';
import type { Principal } from './auth';
import type { DecisionFilter } from '../audit/decision-buffer';
import { matchesFilter } from '../audit/decision-buffer';
import { VERDICTS, type DecisionEvent, type DecisionVerdict } from '../audit/decision';
import type { TrailEvent } from '../audit/decision-trail';
import { sendError, sendJson } from './http';

/** What these routes need of the decision trail. */
export interface DecisionSource {
  recent(filter: DecisionFilter, limit: number): DecisionEvent[];
  after(id: number, filter: DecisionFilter): DecisionEvent[];
  subscribe(fn: (e: TrailEvent) => void): () => void;
  readonly capacity: number;
  /** Names the id sequence of this process (SSE ids are `<epoch>.<id>`). */
  readonly epoch: string;
}

export const DEFAULT_DECISION_LIMIT = 100;
const HEARTBEAT_MS = 15_000;
const MAX_PENDING_BYTES = 1024 * 1024;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

type Query = { ok: true; filter: DecisionFilter; limit: number; since?: number } | { ok: false; status: number; message: string };

/** Reads and checks the query; a tenant token is confined to its tenant. */
export function decisionQuery(url: URL, principal: Principal | undefined, capacity: number, epoch: string, lastEventId?: string): Query {
  const p = url.searchParams;
  const filter: DecisionFilter = {};
  const tenant = p.get('tenant') ?? undefined;
  const agent = p.get('agent') ?? undefined;
  const verdict = p.get('verdict') ?? undefined;
  if (tenant !== undefined && !LABEL.test(tenant)) return { ok: false, status: 400, message: `tenant ${JSON.stringify(tenant)} is not a DNS label` };
  if (agent !== undefined && !LABEL.test(agent)) return { ok: false, status: 400, message: `agent ${JSON.stringify(agent)} is not a DNS label` };
  if (verdict !== undefined && !VERDICTS.includes(verdict as DecisionVerdict)) return { ok: false, status: 400, message: `verdict must be one of ${VERDICTS.join(', ')}` };
  if (principal?.kind === 'tenant') {
    if (tenant !== undefined && tenant !== principal.tenant) return { ok: false, status: 403, message: `this token is not allowed to access tenant ${JSON.stringify(tenant)}` };
    filter.tenant = principal.tenant;
  } else if (tenant !== undefined) filter.tenant = tenant;
  if (agent !== undefined) filter.agent = agent;
  if (verdict !== undefined) filter.verdict = verdict as DecisionVerdict;

  let limit = DEFAULT_DECISION_LIMIT;
  const limitText = p.get('limit');
  if (limitText !== null) {
    if (!/^\d{1,9}$/.test(limitText) || Number(limitText) < 1) return { ok: false, status: 400, message: `limit must be an integer from 1 to ${capacity}` };
    limit = Math.min(Number(limitText), capacity);
  }
  let since: number | undefined;
  if (lastEventId !== undefined && lastEventId !== '') {
    const m = /^([0-9a-z]{1,16})\.(\d{1,15})$/.exec(lastEventId);
    if (!m) return { ok: false, status: 400, message: 'Last-Event-ID must be an id this stream sent (<epoch>.<decision id>)' };
    // An id from an earlier control plane process: every buffered decision is new to this client.
    since = m[1] === epoch ? Number(m[2]) : 0;
  } else if (p.get('since') !== null) {
    const text = p.get('since')!;
    if (!/^\d{1,15}$/.test(text)) return { ok: false, status: 400, message: 'since must be a decision id' };
    since = Number(text);
  }
  return { ok: true, filter, limit, ...(since !== undefined ? { since } : {}) };
}

export function listDecisions(res: http.ServerResponse, source: DecisionSource, url: URL, principal: Principal | undefined): void {
  const q = decisionQuery(url, principal, source.capacity, source.epoch);
  if (!q.ok) return sendError(res, q.status, q.message);
  sendJson(res, 200, source.recent(q.filter, q.limit));
}

const sse = (e: { id?: string; event: string; data: unknown }): string => `${e.id !== undefined ? `id: ${e.id}\n` : ''}event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;

/** Serves the SSE stream until the client goes away; resolves then. */
export function streamDecisions(req: http.IncomingMessage, res: http.ServerResponse, source: DecisionSource, url: URL, principal: Principal | undefined): Promise<void> {
  const lastEventId = req.headers['last-event-id'];
  const q = decisionQuery(url, principal, source.capacity, source.epoch, typeof lastEventId === 'string' ? lastEventId.trim() : undefined);
  if (!q.ok) {
    sendError(res, q.status, q.message);
    return Promise.resolve();
  }
  const { filter } = q;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  return new Promise<void>((resolve) => {
    let closed = false;
    const write = (text: string) => {
      if (closed) return;
      res.write(text);
      if (res.writableLength > MAX_PENDING_BYTES) {
        stop();
        res.destroy();
      }
    };
    const unsubscribe = source.subscribe((e) => {
      if (e.type === 'decision') {
        if (matchesFilter(e.event, filter)) write(sse({ id: `${source.epoch}.${e.event.id}`, event: 'decision', data: e.event }));
      } else if (matchesFilter(e.event, filter)) {
        write(sse({ event: 'tunnel-closed', data: e.event }));
      }
    });
    const heartbeat = setInterval(() => write(': ping\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    const stop = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      resolve();
    };
    res.on('close', stop);
    req.on('close', stop);
    write('retry: 2000\n: exitgate decisions\n\n');
    if (q.since !== undefined) for (const e of source.after(q.since, filter)) write(sse({ id: `${source.epoch}.${e.id}`, event: 'decision', data: e }));
  });
}
