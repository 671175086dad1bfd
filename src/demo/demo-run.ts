/**
 * Runs the demo's attempts against the real sidecar and judges them: the verdict is what Envoy
 * did (HTTP or CONNECT status), the rule is what `exitgate check` computes from the same policy
 * directory, and the two are compared on every attempt. Also the live revocation, timed.
 */
import { createHash } from 'node:crypto';
import * as diagnostics from 'node:diagnostics_channel';
import { promises as fs } from 'node:fs';
import type * as net from 'node:net';
import * as path from 'node:path';
import { connectThroughProxy, httpsViaConnect, httpViaProxy, type ProxyAddress } from './proxy-client';
import type { TestDnsServer } from './dns-server';
import type { UpstreamRequest } from './upstreams';
import type { AttemptSpec, Verdict } from './demo-scenario';
import { loadPolicyDir } from '../policy/load';
import { formatPolicyError } from '../policy/errors';
import { buildAgentIr } from '../ir/build-ir';
import { decide, formatDecision, type Decision } from '../ir/decide';
import { parseTarget, type ParsedTarget } from '../ir/target';
import { formatRef } from '../ir/agent-ir';
import type { NodeId } from '../identity/node-id';

/** Each attempt is bounded; a hung attempt must not hang the demo. */
export const ATTEMPT_TIMEOUT_MS = 5000;

export interface Observation {
  /** What Envoy did; `error` when the attempt could not be made at all (a demo failure). */
  verdict: Verdict | 'error';
  /** Envoy's answer, e.g. `CONNECT 200 + GET 200`, `CONNECT 403`, `HTTP 403`. */
  said: string;
  /** For an allowed attempt: did the conversation reach the intended upstream? */
  reached?: string;
  /** Why the conversation failed after Envoy let it through, or why the attempt errored. */
  problem?: string;
  /** What the agent got back (plain HTTP only). Judged, never printed: it may echo headers. */
  body?: string;
}

export interface Finding {
  ok: boolean;
  text: string;
  /** A caveat rather than a check (ok stays true); rendered with `!`. */
  note?: boolean;
}

export interface AttemptResult {
  n: number;
  spec: AttemptSpec;
  label: string;
  observed: Observation;
  decision: Decision;
  /** The rule/reason column. */
  ruleText: string;
  /** exitgate check and Envoy agree (for a guard attempt: check allows the name, Envoy refuses). */
  agree: boolean;
  findings: Finding[];
  /** Everything about this attempt went as expected. */
  ok: boolean;
}

/** The attempt column: the target as `exitgate check` takes it, with the method when the spec names one. */
export function attemptLabel(spec: AttemptSpec): string {
  if (spec.kind === 'connect') return `CONNECT ${spec.target}`;
  return spec.method ? `${spec.method} ${spec.target}` : spec.target;
}

/**
 * How the demo shows a secret without revealing it: its first 4 characters, its length and a
 * sha256 fingerprint (12 hex digits), e.g. `Xk3f…, 32 chars, sha256 1f2e3d4c5b6a`.
 */
export function secretPreview(secret: string): string {
  const fp = createHash('sha256').update(secret).digest('hex').slice(0, 12);
  return `${secret.slice(0, 4)}…, ${secret.length} chars, sha256 ${fp}`;
}

function mustParse(text: string): ParsedTarget {
  const t = parseTarget(text);
  if (!t.ok) throw new Error(`internal: demo target ${text}: ${t.reason}`);
  return t.value;
}

function upstreamOf(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { upstream?: unknown };
    return typeof parsed.upstream === 'string' ? parsed.upstream : undefined;
  } catch {
    return undefined;
  }
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

const statusText = (verb: string, status: number): string => (status === 0 ? `${verb}: closed, no reply` : `${verb} ${status}`);

/** Makes the attempt the way an agent's HTTP client would, and reports what Envoy did. */
export async function perform(proxy: ProxyAddress, spec: AttemptSpec, caPem: string): Promise<Observation> {
  const t = mustParse(spec.target);
  if (spec.kind === 'connect') {
    try {
      const r = await connectThroughProxy(proxy, `${t.host}:${t.port}`, { timeoutMs: ATTEMPT_TIMEOUT_MS });
      r.socket?.destroy();
      return { verdict: r.status === 200 ? 'allow' : 'deny', said: statusText('CONNECT', r.status) };
    } catch (err) {
      return { verdict: 'error', said: 'error', problem: message(err) };
    }
  }
  if (spec.kind === 'https') {
    try {
      const r = await httpsViaConnect(proxy, { host: t.host, port: t.port, path: t.path ?? '/', caPem, timeoutMs: ATTEMPT_TIMEOUT_MS });
      if (r.connectStatus !== 200) return { verdict: 'deny', said: statusText('CONNECT', r.connectStatus) };
      const reached = upstreamOf(r.body);
      return { verdict: 'allow', said: `CONNECT 200 + GET ${r.status}`, ...(reached ? { reached } : {}), ...(r.status === 200 ? {} : { problem: `GET over TLS answered ${r.status}` }) };
    } catch (err) {
      const m = message(err);
      // connectThroughProxy rejects only when the proxy is unreachable or silent; anything
      // later failed inside an open tunnel (TLS verification, HTTP).
      if (/^(cannot reach proxy|CONNECT .* timed out)/.test(m)) return { verdict: 'error', said: 'error', problem: m };
      return { verdict: 'allow', said: 'CONNECT 200, TLS failed', problem: m };
    }
  }
  try {
    const headers: Record<string, string> = { ...(spec.headers ?? {}) };
    if (spec.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'text/plain';
    const r = await httpViaProxy(proxy, spec.target, {
      method: spec.method ?? 'GET',
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      headers,
      ...(spec.body !== undefined ? { body: spec.body } : {}),
    });
    const reached = r.status === 200 ? upstreamOf(r.body) : undefined;
    return { verdict: r.status === 200 ? 'allow' : 'deny', said: statusText('HTTP', r.status), body: r.body, ...(reached ? { reached } : {}) };
  } catch (err) {
    return { verdict: 'error', said: 'error', problem: message(err) };
  }
}

/** `exitgate check --policies DIR --node T/A/I TARGET`, in-process, with the request's method. */
export async function checkDecision(policiesDir: string, node: NodeId, target: string, method?: string): Promise<Decision> {
  const set = await loadPolicyDir(policiesDir);
  if (!set.ok) throw new Error(`the demo policy is invalid:\n${set.errors.map(formatPolicyError).join('\n')}`);
  const t = mustParse(target);
  return decide(buildAgentIr(set.value, node.tenant, node.agent), t.kind === 'http' ? { ...t, method: method ?? 'GET' } : t);
}

function ruleText(spec: AttemptSpec, d: Decision): string {
  if (spec.guard && d.verdict === 'allow') return `guard: ${spec.guard.resolvesTo} is ${spec.guard.range}`;
  if (d.verdict === 'allow') return formatRef(d.ref!);
  return d.ref ? `denied by ${formatRef(d.ref)}` : d.reason;
}

/**
 * Counts TCP connections accepted by this process's servers listening on host:port (the
 * control plane runs in-process), via Node's `net.server.socket` diagnostics channel.
 */
export function countAccepted(host: string, port: number): { readonly count: number; dispose(): void } {
  let count = 0;
  const onSocket = (msg: unknown): void => {
    const socket = (msg as { socket?: net.Socket & { server?: net.Server } }).socket;
    const addr = socket?.server?.address();
    if (addr && typeof addr === 'object' && addr.port === port && addr.address === host) count += 1;
  };
  diagnostics.subscribe('net.server.socket', onSocket);
  return {
    get count() {
      return count;
    },
    dispose: () => diagnostics.unsubscribe('net.server.socket', onSocket),
  };
}

export interface JudgeContext {
  proxy: ProxyAddress;
  caPem: string;
  policiesDir: string;
  node: NodeId;
  dns: TestDnsServer;
  admin: { host: string; port: number; accepted: () => number };
  /** The demo's upstreams, with every request that reached them. */
  upstreams: Array<{ name: string; requests: UpstreamRequest[] }>;
  /** Credential values by name, to check what Envoy injected (never printed). */
  secrets: ReadonlyMap<string, string>;
}

/** The Host a request arrived with, without its port. */
const hostOf = (r: UpstreamRequest): string => (r.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();

/** Shows a header value that may contain a secret with the secret replaced by its preview. */
const redact = (text: string, secret: string): string => (secret === '' ? text : text.split(secret).join(`<${secretPreview(secret)}>`));

function credentialFindings(ctx: JudgeContext, spec: AttemptSpec, observed: Observation, received: Array<{ upstream: string; request: UpstreamRequest }>): Finding[] {
  const inj = spec.injects;
  if (!inj || observed.verdict !== 'allow') return [];
  const secret = ctx.secrets.get(inj.credential);
  if (secret === undefined) return [{ ok: false, text: `internal: the demo does not know the value of credential ${inj.credential}` }];
  const here = received.filter((r) => r.upstream === spec.upstream);
  if (here.length !== 1) return [{ ok: false, text: `expected exactly one request at the ${spec.upstream ?? 'upstream'}, saw ${here.length}` }];
  const headers = here[0]!.request.headers;
  const got = headers[inj.header.toLowerCase()];
  const gotText = Array.isArray(got) ? got.join(', ') : (got ?? '');
  const findings: Finding[] = [];
  findings.push(
    gotText === `${inj.prefix}${secret}`
      ? { ok: true, text: `the upstream received the key Envoy injected (${inj.prefix}${secretPreview(secret)}): the agent never held it` }
      : { ok: false, text: `the upstream received ${inj.header}: ${gotText === '' ? '(none)' : redact(gotText, secret)}, not the injected ${inj.credential}` },
  );
  const own = inj.agentSent.replace(inj.prefix, '');
  const leaked = JSON.stringify(headers).includes(own);
  findings.push({ ok: !leaked, text: leaked ? `the agent's own ${inj.header} header (${inj.agentSent}) reached the upstream` : `the agent's own ${inj.header} header (${inj.agentSent}) never arrived` });
  // The demo's stand-in upstream echoes request headers back; say so rather than let the
  // story claim more than the run shows. A real API that reflected its auth header would do the same.
  if (observed.body?.includes(secret)) {
    findings.push({ ok: true, note: true, text: "caveat: this stand-in upstream echoes request headers, so its reply carried the key back; a destination you inject a credential into must not reflect it" });
  } else {
    findings.push({ ok: true, text: 'the reply the agent got back does not contain the key' });
  }
  return findings;
}

/** Makes one attempt and judges it against its expectation and against `exitgate check`. */
export async function runAttempt(ctx: JudgeContext, n: number, spec: AttemptSpec): Promise<AttemptResult> {
  const startedAt = Date.now();
  const adminBefore = ctx.admin.accepted();
  const requestsBefore = ctx.upstreams.map((u) => u.requests.length);
  const observed = await perform(ctx.proxy, spec, ctx.caPem);
  const decision = await checkDecision(ctx.policiesDir, ctx.node, spec.target, spec.method);
  const received = ctx.upstreams.flatMap((u, i) => u.requests.slice(requestsBefore[i]).map((request) => ({ upstream: u.name, request })));
  const findings: Finding[] = [];

  const agree = spec.guard ? decision.verdict === 'allow' && observed.verdict === 'deny' : decision.verdict === observed.verdict;
  if (!agree) {
    findings.push({
      ok: false,
      text: `!!! MISMATCH: exitgate check says "${formatDecision(decision)}" but Envoy ${observed.verdict === 'allow' ? 'allowed it' : observed.verdict === 'deny' ? 'refused it' : 'could not be asked'} (${observed.said})${spec.guard ? '; the guard case needs check to allow the name' : ''}. This must never happen.`,
    });
  } else if (spec.guard) {
    findings.push({ ok: true, text: `exitgate check: ${formatDecision(decision)}: the policy allows the name; the guard refused the address` });
  }
  if (observed.problem) findings.push({ ok: false, text: observed.problem });
  if (spec.upstream && observed.verdict === 'allow') {
    const tls =
      spec.kind === 'https'
        ? 'TLS verified against the demo CA, '
        : decision.upstream?.tls
          ? `plain HTTP from the agent; Envoy originated TLS to port ${decision.upstream.port}, verified against the demo CA, `
          : '';
    findings.push(observed.reached === spec.upstream ? { ok: true, text: `${tls}answered by the ${spec.upstream}` } : { ok: false, text: `did not reach the ${spec.upstream} (got ${observed.reached ?? 'no echo'})` });
  }
  findings.push(...credentialFindings(ctx, spec, observed, received));
  if (spec.mustNotResolve) {
    const asked = ctx.dns.queriedNames().has(spec.mustNotResolve);
    findings.push({ ok: !asked, text: asked ? `the sidecar looked up ${spec.mustNotResolve} in DNS` : `DNS server never saw a query for ${spec.mustNotResolve}` });
  }
  if (spec.mustResolve) {
    const name = spec.mustResolve;
    const asked = ctx.dns.queries.filter((q) => q.at >= startedAt && q.name.toLowerCase().replace(/\.$/, '') === name);
    const types = [...new Set(asked.map((q) => q.type))].join('/');
    findings.push(
      asked.length > 0
        ? { ok: true, text: `the sidecar looked up ${name} (${types}) and got ${spec.guard?.resolvesTo ?? 'an answer'}: the attack was really tried` }
        : { ok: false, text: `the sidecar never looked up ${name}: the rebinding attack was not really tried` },
    );
  }
  if (spec.adminUntouched) {
    const reached = ctx.admin.accepted() - adminBefore;
    findings.push({
      ok: reached === 0,
      text: `connections that reached the admin API on ${ctx.admin.host}:${ctx.admin.port}: ${reached}`,
    });
  }
  if (spec.nothingReaches) {
    const where = [...new Set(received.map((r) => r.upstream))].join(', ');
    findings.push(received.length === 0 ? { ok: true, text: 'nothing reached any upstream' } : { ok: false, text: `${received.length} request${received.length === 1 ? '' : 's'} reached the ${where}` });
  }
  if (spec.credentialOnlyTo) {
    const { credential, host } = spec.credentialOnlyTo;
    const secret = ctx.secrets.get(credential) ?? '';
    const carrying = ctx.upstreams.flatMap((u) => u.requests).filter((r) => secret !== '' && JSON.stringify(r).includes(secret));
    const elsewhere = [...new Set(carrying.map(hostOf).filter((h) => h !== host))];
    findings.push(
      secret === ''
        ? { ok: false, text: `internal: the demo does not know the value of credential ${credential}` }
        : elsewhere.length === 0
          ? { ok: true, text: `the key never went anywhere but ${host} (${carrying.length} request${carrying.length === 1 ? '' : 's'} in this run carried it)` }
          : { ok: false, text: `the key was sent to ${elsewhere.join(', ')}` },
    );
  }
  const ok = observed.verdict === spec.expect && agree && findings.every((f) => f.ok);
  return { n, spec, label: attemptLabel(spec), observed, decision, ruleText: ruleText(spec, decision), agree, findings, ok };
}

/** Replaces a file the way an editor or `kubectl cp` does: the watcher never sees half a file. */
export async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  await fs.writeFile(tmp, text);
  await fs.rename(tmp, file);
}

export interface LiveUpdateResult {
  /** From the file's replacement until the sidecar refused a CONNECT, or undefined on timeout. */
  refusedAfterMs?: number;
  /** From the file's replacement until the control plane applied the new policy set. */
  appliedAfterMs?: number;
  polls: number;
}

/**
 * Replaces the policy file, then polls a CONNECT every pollMs until the sidecar refuses it.
 * The clock starts when the rename makes the new content the file.
 */
export async function timeLiveRevocation(opts: {
  file: string;
  text: string;
  proxy: ProxyAddress;
  connectTarget: string;
  onApplied: (listener: () => void) => () => void;
  timeoutMs: number;
  pollMs: number;
  aborted: () => boolean;
}): Promise<LiveUpdateResult> {
  const tmp = path.join(path.dirname(opts.file), `.${path.basename(opts.file)}.tmp-${process.pid}`);
  await fs.writeFile(tmp, opts.text);
  let appliedAt: number | undefined;
  const off = opts.onApplied(() => (appliedAt ??= performance.now()));
  const t0 = performance.now();
  await fs.rename(tmp, opts.file);
  let polls = 0;
  try {
    for (;;) {
      if (opts.aborted()) throw new Error('interrupted');
      polls += 1;
      const r = await connectThroughProxy(opts.proxy, opts.connectTarget, { timeoutMs: ATTEMPT_TIMEOUT_MS });
      r.socket?.destroy();
      const now = performance.now();
      if (r.status !== 200) {
        return { refusedAfterMs: now - t0, ...(appliedAt !== undefined ? { appliedAfterMs: appliedAt - t0 } : {}), polls };
      }
      if (now - t0 > opts.timeoutMs) return { ...(appliedAt !== undefined ? { appliedAfterMs: appliedAt - t0 } : {}), polls };
      await new Promise((r2) => setTimeout(r2, opts.pollMs));
    }
  } finally {
    off();
  }
}
