/**
 * Attack plumbing for the bypass suite: raw bytes from the agent namespace to the sidecar, a
 * small HTTP/1 response parser, the evidence an attempt leaves (Envoy's own counters, what the
 * upstreams and the DNS server saw), and the decision the attempt produced.
 *
 * Decisions: `decisionFor()` is the one place that says which decision an attempt produced and
 * why. It reads the control plane's decision API (SPEC §4/§5, `GET /v1/decisions`) when that API
 * answers; otherwise (mode `check+envoy`) it derives the decision from `exitgate check`'s verdict
 * for the destination the attacker named plus Envoy's evidence (its stats and its reply).
 * EXITGATE_BYPASS_DECISIONS=api|check forces a mode.
 * TODO(decisions): once GET /v1/decisions is in every build, drop the check+envoy fallback and
 * make `api` the only mode (the assertions in bypass.test.ts already read DecisionView only).
 */
import * as http from 'node:http';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { loadPolicyDir } from '../../src/policy/load';
import { formatPolicyError } from '../../src/policy/errors';
import { buildAgentIr } from '../../src/ir/build-ir';
import { decide, type Decision } from '../../src/ir/decide';
import { parseTarget } from '../../src/ir/target';
import type { DecisionEvent } from '../../src/audit/decision';
import { sealedWorldSupport } from '../support/netns';
import type { SealedWorld, UpstreamRequest } from '../support/netns-world';

// ---------------------------------------------------------------------------------------------
// The suite around the sealed world

/**
 * `describe` where this machine can run the sealed world (Linux, root, namespaces) and whatever
 * `alsoNeeds` checks; elsewhere `describe.skip`, with `<suite> skipped: <why>` printed.
 */
export function describeIfSealed(suite: string, alsoNeeds?: () => string | null): jest.Describe {
  const why = sealedWorldSupport() ?? alsoNeeds?.() ?? null;
  if (why) console.log(`${suite} skipped: ${why}`);
  return why ? describe.skip : describe;
}

/** For afterEach: fails the running test if a trap was reached since the last call (`extra`: the suite's own traps' hits). */
export function failOnNewTrapHits(world: SealedWorld | undefined, extra: string[] = []): void {
  if (!world) return;
  const hits = [...world.newTrapHits().map((h) => `${h.trap} ${h.address} from ${h.remote}`), ...extra];
  if (hits.length > 0) throw new Error(`FORBIDDEN SERVER REACHED (${hits.length}): ${hits.join(', ')}`);
}

/** Speaks TLS (`servername`, trusting the world's CA) over `socket`, sends `request`, and returns all the server sent until it closed. */
export async function tlsExchange(world: SealedWorld, socket: net.Socket, servername: string, request: string): Promise<string> {
  const t = tls.connect({ socket, servername, ca: world.ca.caPem });
  const reply = await new Promise<string>((resolve, reject) => {
    let buf = '';
    t.on('secureConnect', () => t.write(request));
    t.on('data', (d: Buffer) => (buf += d.toString()));
    t.on('end', () => resolve(buf));
    t.on('error', reject);
  });
  t.destroy();
  return reply;
}

// ---------------------------------------------------------------------------------------------
// HTTP/1 responses, parsed from raw bytes

export interface HttpResponse {
  status: number;
  statusLine: string;
  headers: Array<[string, string]>;
  body: Buffer;
  /** False when the body was cut short (connection closed or timed out mid-body). */
  complete: boolean;
}

export function header(r: HttpResponse | undefined, name: string): string | undefined {
  return r?.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
}

/** Parses as many complete responses as `buf` holds; `final` means the peer closed. */
export function parseResponses(buf: Buffer, opts: { connect?: boolean; final?: boolean; head?: boolean }): { responses: HttpResponse[]; tunnelStart?: number } {
  const responses: HttpResponse[] = [];
  let at = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = buf.subarray(at, end).toString('latin1');
    const lines = head.split('\r\n');
    const statusLine = lines[0] ?? '';
    const m = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(statusLine);
    if (!m) break;
    const status = Number(m[1]);
    const headers = lines.slice(1).map((l): [string, string] => {
      const i = l.indexOf(':');
      return i < 0 ? [l, ''] : [l.slice(0, i).trim(), l.slice(i + 1).trim()];
    });
    const bodyStart = end + 4;
    const res: HttpResponse = { status, statusLine, headers, body: Buffer.alloc(0), complete: true };
    if (status === 101 || (opts.connect && status >= 200 && status < 300)) {
      responses.push(res);
      return { responses, tunnelStart: bodyStart };
    }
    if (status >= 100 && status < 200) {
      responses.push(res);
      at = bodyStart;
      continue;
    }
    if (status === 204 || status === 304 || opts.head) {
      responses.push(res);
      at = bodyStart;
      continue;
    }
    const te = header(res, 'transfer-encoding');
    const cl = header(res, 'content-length');
    if (te && /chunked/i.test(te)) {
      let p = bodyStart;
      const parts: Buffer[] = [];
      let done = false;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', p);
        if (lineEnd < 0) break;
        const size = parseInt(buf.subarray(p, lineEnd).toString('latin1'), 16);
        if (Number.isNaN(size)) break;
        if (size === 0) {
          const trailerEnd = buf.indexOf('\r\n\r\n', lineEnd);
          if (trailerEnd >= 0) {
            p = trailerEnd + 4;
            done = true;
          } else if (buf.length >= lineEnd + 4 && buf.subarray(lineEnd, lineEnd + 4).toString() === '\r\n\r\n') {
            p = lineEnd + 4;
            done = true;
          }
          break;
        }
        if (buf.length < lineEnd + 2 + size + 2) break;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      res.body = Buffer.concat(parts);
      if (!done) {
        res.complete = false;
        if (opts.final) responses.push(res);
        break;
      }
      responses.push(res);
      at = p;
      continue;
    }
    if (cl !== undefined) {
      const n = Number(cl);
      if (buf.length < bodyStart + n) {
        res.body = buf.subarray(bodyStart);
        res.complete = false;
        if (opts.final) responses.push(res);
        break;
      }
      res.body = buf.subarray(bodyStart, bodyStart + n);
      responses.push(res);
      at = bodyStart + n;
      continue;
    }
    // Body until the connection closes.
    res.body = buf.subarray(bodyStart);
    res.complete = !!opts.final;
    if (opts.final) responses.push(res);
    break;
  }
  return { responses };
}

export interface Exchange {
  responses: HttpResponse[];
  raw: Buffer;
  closedByPeer: boolean;
  timedOut: boolean;
  ms: number;
  /** Set when a CONNECT (or upgrade) succeeded and `keepTunnel` was asked: the caller ends it. */
  tunnel?: net.Socket;
  writeError?: string;
}

export interface ExchangeOptions {
  timeoutMs?: number;
  /** After the expected responses, how long to wait for more bytes before finishing. */
  idleMs?: number;
  /** How many responses to expect (pipelining); default 1. */
  expect?: number;
  /** The payload is a CONNECT: a 2xx reply starts a tunnel. */
  connect?: boolean;
  /** The payload is a HEAD request: responses carry no body whatever Content-Length says. */
  head?: boolean;
  keepTunnel?: boolean;
  /** Write the payload in pieces, with a pause between them. */
  chunks?: Array<string | Buffer>;
  chunkDelayMs?: number;
}

const toBuf = (p: string | Buffer): Buffer => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p);

/** Writes `payload` on `socket` and collects what comes back, until close, idle or timeout. */
export function rawExchange(socket: net.Socket, payload: string | Buffer | null, opts: ExchangeOptions = {}): Promise<Exchange> {
  const started = performance.now();
  const timeoutMs = opts.timeoutMs ?? 4000;
  const idleMs = opts.idleMs ?? 120;
  const expectN = opts.expect ?? 1;
  return new Promise((resolve) => {
    let raw = Buffer.alloc(0);
    let settled = false;
    let idle: NodeJS.Timeout | undefined;
    let writeError: string | undefined;
    const finish = (closedByPeer: boolean, timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (idle) clearTimeout(idle);
      socket.removeAllListeners('data');
      const parsed = parseResponses(raw, { connect: !!opts.connect, head: !!opts.head, final: closedByPeer || timedOut });
      const tunnelOpen = parsed.tunnelStart !== undefined && !closedByPeer;
      const ex: Exchange = { responses: parsed.responses, raw, closedByPeer, timedOut, ms: performance.now() - started, ...(writeError ? { writeError } : {}) };
      if (tunnelOpen && opts.keepTunnel) {
        const rest = raw.subarray(parsed.tunnelStart);
        if (rest.length > 0) socket.unshift(rest);
        ex.tunnel = socket;
      } else socket.destroy();
      resolve(ex);
    };
    const timer = setTimeout(() => finish(false, true), timeoutMs);
    socket.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      const parsed = parseResponses(raw, { connect: !!opts.connect, head: !!opts.head });
      if (parsed.tunnelStart !== undefined) return finish(false, false);
      const finals = parsed.responses.filter((r) => r.status >= 200 || r.status === 101);
      // A complete response that announces the close: nothing can follow it (do not wait for
      // Envoy's delayed close).
      const last = finals[finals.length - 1];
      if (last && last.complete && /close/i.test(header(last, 'connection') ?? '')) return finish(false, false);
      if (finals.length >= expectN) {
        if (idle) clearTimeout(idle);
        idle = setTimeout(() => finish(false, false), idleMs);
      }
    });
    socket.on('error', (e) => {
      writeError = (e as NodeJS.ErrnoException).code ?? e.message;
    });
    socket.on('close', () => finish(true, false));
    const pieces = opts.chunks ?? (payload === null ? [] : [payload]);
    void (async () => {
      for (const [i, piece] of pieces.entries()) {
        if (settled || socket.destroyed) return;
        if (i > 0 && opts.chunkDelayMs) await new Promise((r) => setTimeout(r, opts.chunkDelayMs));
        socket.write(toBuf(piece));
      }
    })();
  });
}

// ---------------------------------------------------------------------------------------------
// Evidence

const STAT_FILTER = '^(http\\.egress\\.downstream_(cx_total|rq_total|rq_[1-5]xx|cx_protocol_error)|listener\\.198\\.18\\.0\\.1_15001\\.downstream_cx_total|dns_cache\\.exitgate_dfp\\.(dns_address_filter_out|dns_query_attempt)|cluster\\..*\\.upstream_cx_total)$';

export const STAT = {
  cx: 'listener.198.18.0.1_15001.downstream_cx_total',
  rq: 'http.egress.downstream_rq_total',
  rq4xx: 'http.egress.downstream_rq_4xx',
  rq5xx: 'http.egress.downstream_rq_5xx',
  protocolError: 'http.egress.downstream_cx_protocol_error',
  guardFilteredOut: 'dns_cache.exitgate_dfp.dns_address_filter_out',
  dnsQueries: 'dns_cache.exitgate_dfp.dns_query_attempt',
} as const;

interface Mark {
  stats: Map<string, number>;
  tlsRequests: number;
  httpRequests: number;
  tlsConnections: number;
  httpConnections: number;
  dnsQueries: number;
  decisionId: number;
  at: number;
}

export interface Evidence {
  exchange: Exchange;
  /** Counter deltas (only counters that moved). */
  delta: Map<string, number>;
  /** The sidecar accepted at least one connection for this attempt. */
  reachedSidecar: boolean;
  /** Requests (HTTP streams) Envoy started for it. */
  requests: number;
  /** Upstream connections Envoy opened, over all clusters. */
  upstreamConnections: number;
  tlsUpstream: { connections: number; requests: UpstreamRequest[] };
  httpUpstream: { connections: number; requests: UpstreamRequest[] };
  dnsNames: string[];
  decisionMark: number;
  /** Wall-clock window of the attempt: its decisions started inside it. */
  window: { from: number; to: number };
  final?: HttpResponse;
  statuses: number[];
}

async function statsNow(world: SealedWorld): Promise<Map<string, number>> {
  return world.sidecar.envoy.stats(STAT_FILTER);
}

export async function mark(world: SealedWorld): Promise<Mark> {
  return {
    stats: await statsNow(world),
    tlsRequests: world.tlsUpstream.requests.length,
    httpRequests: world.httpUpstream.requests.length,
    tlsConnections: world.tlsUpstream.connections,
    httpConnections: world.httpUpstream.connections,
    dnsQueries: world.dns.queries.length,
    decisionId: decisionsMode === 'api' ? await newestDecisionId(world) : 0,
    at: Date.now(),
  };
}

export async function evidenceSince(world: SealedWorld, before: Mark, exchange: Exchange): Promise<Evidence> {
  // Counters are updated as the sidecar works; give a connection close a moment to be counted.
  await new Promise((r) => setTimeout(r, 5));
  const after = await statsNow(world);
  const delta = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.stats.get(k) ?? 0);
    if (d !== 0) delta.set(k, d);
  }
  let upstreamConnections = 0;
  for (const [k, v] of delta) if (/^cluster\..*\.upstream_cx_total$/.test(k) && !k.includes('exitgate-xds')) upstreamConnections += v;
  const statuses = exchange.responses.map((r) => r.status);
  const finals = exchange.responses.filter((r) => r.status >= 200 || r.status === 101);
  return {
    exchange,
    delta,
    reachedSidecar: (delta.get(STAT.cx) ?? 0) >= 1,
    requests: delta.get(STAT.rq) ?? 0,
    upstreamConnections,
    tlsUpstream: { connections: world.tlsUpstream.connections - before.tlsConnections, requests: world.tlsUpstream.requests.slice(before.tlsRequests) },
    httpUpstream: { connections: world.httpUpstream.connections - before.httpConnections, requests: world.httpUpstream.requests.slice(before.httpRequests) },
    dnsNames: world.dns.queries.slice(before.dnsQueries).map((q) => q.name.toLowerCase()),
    decisionMark: before.decisionId,
    window: { from: before.at, to: Date.now() },
    ...(finals.length > 0 ? { final: finals[finals.length - 1] } : {}),
    statuses,
  };
}

/** One attempt from the agent: connect to the sidecar, send, collect, and measure. */
export async function attempt(world: SealedWorld, payload: string | Buffer | null, opts: ExchangeOptions = {}): Promise<Evidence> {
  const before = await mark(world);
  const socket = await world.agentConnect();
  const exchange = await rawExchange(socket, payload, opts);
  return evidenceSince(world, before, exchange);
}

/** A short description of an attempt for failure messages. */
export function describeEvidence(ev: Evidence): string {
  const head = ev.exchange.raw.subarray(0, 300).toString('latin1').replace(/\r\n/g, '\\r\\n');
  return `statuses=[${ev.statuses.join(',')}] closed=${ev.exchange.closedByPeer} timedOut=${ev.exchange.timedOut} requests=${ev.requests} upstreamCx=${ev.upstreamConnections} tls=${ev.tlsUpstream.connections}/${ev.tlsUpstream.requests.length} http=${ev.httpUpstream.connections}/${ev.httpUpstream.requests.length} dns=[${ev.dnsNames.join(',')}] delta=${JSON.stringify([...ev.delta])} reply="${head}"`;
}

/** How the sidecar refused, from its reply and counters; null when it did not refuse. */
export function refusal(ev: Evidence): string | null {
  const f = ev.final;
  if (ev.exchange.tunnel) return null;
  if (!f) {
    if (ev.exchange.closedByPeer) return 'connection closed without a response';
    if (ev.exchange.timedOut) return 'no response (timed out) and nothing forwarded';
    return 'no response';
  }
  if (f.status === 403) return f.body.toString().startsWith('exitgate:') ? 'denied by route (403)' : `403 ${f.body.toString().trim().slice(0, 60)}`;
  if (f.status === 503 && (ev.delta.get(STAT.guardFilteredOut) ?? 0) > 0) return 'guard: resolved address filtered out (503)';
  if (f.status === 503 && /DNS resolution failure/.test(f.body.toString())) return 'DNS resolution failure (503)';
  if (f.status >= 400) return `refused (${f.status} ${f.body.toString().trim().slice(0, 60)})`;
  return null;
}

// ---------------------------------------------------------------------------------------------
// Decisions

export type DecisionsMode = 'api' | 'check';
export let decisionsMode: DecisionsMode = 'check';
export let decisionsModeWhy = '';

function getJson(port: number, urlPath: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 3000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Chooses the decision source once per suite: the API if it answers, else check+envoy. */
export async function chooseDecisionsMode(world: SealedWorld): Promise<DecisionsMode> {
  const forced = process.env.EXITGATE_BYPASS_DECISIONS;
  let probe: { status: number; body: unknown } | undefined;
  try {
    probe = await getJson(world.cp.adminPort, `/v1/decisions?tenant=${world.sidecar.node.tenant}&limit=1`);
  } catch (err) {
    decisionsModeWhy = `GET /v1/decisions failed: ${String(err)}`;
  }
  const available = probe?.status === 200 && Array.isArray(probe.body);
  if (probe && !available) decisionsModeWhy = `GET /v1/decisions answered ${probe.status}`;
  if (forced === 'api' || forced === 'check') decisionsMode = forced;
  else decisionsMode = available ? 'api' : 'check';
  if (decisionsMode === 'api' && !available) throw new Error(`EXITGATE_BYPASS_DECISIONS=api but the decision API is unavailable (${decisionsModeWhy})`);
  if (decisionsMode === 'api') decisionsModeWhy = 'GET /v1/decisions answers';
  return decisionsMode;
}

/** The sidecar's agent's newest decisions (GET /v1/decisions), newest first; none when the API does not answer with a list. */
async function agentDecisions(world: SealedWorld, limit: number): Promise<DecisionEvent[]> {
  const r = await getJson(world.cp.adminPort, `/v1/decisions?tenant=${world.sidecar.node.tenant}&agent=${world.sidecar.node.agent}&limit=${limit}`);
  return Array.isArray(r.body) ? (r.body as DecisionEvent[]) : [];
}

async function newestDecisionId(world: SealedWorld): Promise<number> {
  return (await agentDecisions(world, 1))[0]?.id ?? 0;
}

/** Where the decisions of what follows begin: after decision `id`, started at `at` or later. */
export interface DecisionMark {
  id: number;
  at: number;
}

export async function decisionMark(world: SealedWorld): Promise<DecisionMark> {
  return { id: await newestDecisionId(world), at: Date.now() };
}

/**
 * The agent's decisions after `mark` (newest first), waiting until one satisfies `want` (any, by
 * default) or 3 s have passed. Decisions arrive asynchronously (per-worker access-log buffers), so
 * an earlier attempt's may come late: they are attributed by the time the request started, at
 * `mark.at` or later (and at `to` or earlier, when given).
 */
export async function decisionsSince(world: SealedWorld, mark: DecisionMark, opts: { to?: number; want?: (d: DecisionEvent) => boolean } = {}): Promise<DecisionEvent[]> {
  const want = opts.want ?? (() => true);
  const deadline = Date.now() + 3000;
  for (;;) {
    const list = (await agentDecisions(world, 50)).filter((d) => {
      const t = Date.parse(d.time);
      return d.id > mark.id && t >= mark.at - 2 && (opts.to === undefined || t <= opts.to + 2);
    });
    if (list.some(want) || Date.now() > deadline) return list;
    await new Promise((res) => setTimeout(res, 25));
  }
}

/** The first decision after `mark` that satisfies `want` (see decisionsSince), if one came within 3 s. */
export async function decisionSince(world: SealedWorld, mark: DecisionMark, want: (d: DecisionEvent) => boolean): Promise<DecisionEvent | undefined> {
  return (await decisionsSince(world, mark, { want })).find(want);
}

/** What `exitgate check` decides for `target` (as the CLI takes it) under the policies now in the world's directory. */
export async function checkDecision(world: SealedWorld, target: string, method?: string): Promise<{ ok: true; decision: Decision } | { ok: false; reason: string }> {
  const { tenant, agent } = world.sidecar.node;
  const set = await loadPolicyDir(world.policiesDir);
  if (!set.ok) throw new Error(set.errors.map(formatPolicyError).join('\n'));
  const t = parseTarget(target);
  if (!t.ok) return { ok: false, reason: t.reason };
  return { ok: true, decision: decide(buildAgentIr(set.value, tenant, agent), { ...t.value, ...(method ? { method } : {}) } as Parameters<typeof decide>[1]) };
}

export interface DecisionView {
  source: 'decisions-api' | 'check+envoy';
  tenant: string;
  agent: string;
  verdict: string;
  reason: string;
  host?: string;
  port?: number;
  rule?: string;
  /** Envoy's response code details, when the source has them. */
  details?: string;
  responseCode?: number;
  /** Every decision the attempt produced (API mode), newest first. */
  all?: DecisionEvent[];
}

/**
 * The decision behind an attempt. `intended` is the destination the attacker was after, written
 * as an `exitgate check` target (`host:port`, `http://host[:port]/path`), or null when the attack
 * names no parsable destination (malformed requests).
 */
export async function decisionFor(world: SealedWorld, ev: Evidence, intended: string | null, opts: { method?: string } = {}): Promise<DecisionView> {
  const { tenant, agent } = world.sidecar.node;
  if (decisionsMode === 'api') {
    const list = await decisionsSince(world, { id: ev.decisionMark, at: ev.window.from }, { to: ev.window.to });
    if (list.length > 0) {
      // Prefer a refusal; an attempt may have produced several decisions (pipelining).
      const pick = list.find((d) => d.verdict !== 'allow') ?? list[0]!;
      return {
        source: 'decisions-api',
        tenant: pick.tenant,
        agent: pick.agent,
        verdict: pick.verdict,
        reason: pick.reason,
        host: pick.host,
        port: pick.port,
        ...(pick.rule ? { rule: `${pick.policy}/${pick.rule}` } : {}),
        ...(pick.details ? { details: pick.details } : {}),
        ...(pick.responseCode !== undefined ? { responseCode: pick.responseCode } : {}),
        all: list,
      };
    }
    return { source: 'decisions-api', tenant: '', agent: '', verdict: 'none', reason: `no decision event within 3 s (${describeEvidence(ev)})` };
  }
  // check+envoy: exitgate check's verdict for what the attacker named, and how Envoy refused.
  const envoyRefusal = refusal(ev);
  let checkVerdict: { verdict: string; reason: string; rule?: string } | undefined;
  if (intended !== null) {
    const c = await checkDecision(world, intended, opts.method);
    if (c.ok) checkVerdict = { verdict: c.decision.verdict, reason: c.decision.reason, ...(c.decision.ref ? { rule: `${c.decision.ref.policy}/${c.decision.ref.rule}` } : {}) };
  }
  if (checkVerdict?.verdict === 'deny') {
    return { source: 'check+envoy', tenant, agent, verdict: envoyRefusal ? 'deny' : 'allow', reason: envoyRefusal ? `${checkVerdict.reason} [sidecar: ${envoyRefusal}]` : `check says deny (${checkVerdict.reason}) but the sidecar did not refuse`, ...(checkVerdict.rule ? { rule: checkVerdict.rule } : {}) };
  }
  return {
    source: 'check+envoy',
    tenant,
    agent,
    verdict: envoyRefusal ? 'deny' : 'allow',
    // An allowed destination the sidecar then refused (guard, codec): Envoy's reason; else check's.
    reason: envoyRefusal ?? checkVerdict?.reason ?? 'forwarded (no parsable destination to check)',
    ...(checkVerdict?.rule ? { rule: checkVerdict.rule } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The tally printed at the end of the run

interface ClassTally {
  title: string;
  variants: number;
  refused: number;
  /** Refused by the sidecar, but the decision event was wrong (verdict, agent or reason). */
  wrongDecision: number;
  notes: string[];
}

const tally = new Map<number, ClassTally>();

export function registerClass(cls: number, title: string): void {
  if (!tally.has(cls)) tally.set(cls, { title, variants: 0, refused: 0, wrongDecision: 0, notes: [] });
}

/**
 * Counts one executed variant: `refused` false means the attack worked or could not be shown to
 * fail (the test fails too); `decisionOk` false means it was refused but its decision was wrong.
 */
export function countVariant(cls: number, refused: boolean, decisionOk = true): void {
  const t = tally.get(cls);
  if (!t) throw new Error(`class ${cls} not registered`);
  t.variants += 1;
  if (refused) t.refused += 1;
  if (refused && !decisionOk) t.wrongDecision += 1;
}

/**
 * Runs a variant's assertions and counts it (countVariant): refused when `body` completes, not
 * refused when it throws (the error still fails the test).
 */
export async function countedVariant(cls: number, body: () => Promise<void>): Promise<void> {
  let refused = false;
  try {
    await body();
    refused = true;
  } finally {
    countVariant(cls, refused);
  }
}

export function noteClass(cls: number, note: string): void {
  tally.get(cls)?.notes.push(note);
}

export function summary(): string {
  const rows = [...tally.entries()].sort(([a], [b]) => a - b);
  const executed = rows.filter(([, t]) => t.variants > 0);
  const variants = executed.reduce((n, [, t]) => n + t.variants, 0);
  const refused = executed.reduce((n, [, t]) => n + t.refused, 0);
  const wrong = executed.reduce((n, [, t]) => n + t.wrongDecision, 0);
  const lines = [
    `bypass suite: ${executed.length} attack classes, ${variants} variants, ${refused === variants ? 'all refused' : `${variants - refused} NOT REFUSED`}${wrong ? `; ${wrong} refused with a wrong decision event` : ''} (decisions from ${decisionsMode === 'api' ? 'GET /v1/decisions' : 'exitgate check + Envoy stats'})`,
  ];
  for (const [cls, t] of rows) {
    const counts = t.variants === 0 ? 'not executed' : `${t.variants} variants, ${t.refused} refused${t.wrongDecision ? `, ${t.wrongDecision} with a wrong decision` : ''}`;
    lines.push(`  #${String(cls).padStart(2)} ${t.title}: ${counts}${t.notes.length ? ` (${t.notes.join('; ')})` : ''}`);
  }
  return lines.join('\n');
}
