/**
 * Decision events (SPEC §5) and the pure mapping from one Envoy access log entry to what it means.
 *
 * What Envoy logs, and what each becomes:
 * - a plain-HTTP request: one entry when it completes -> one decision;
 * - a CONNECT tunnel: one entry when the tunnel is established
 *   (`flush_log_on_tunnel_successfully_established`) -> the decision, at once, with the bytes and
 *   time of the handshake; and one entry when it closes -> not a second decision but a
 *   `tunnel-closed` record that completes the first (bytes, duration). A CONNECT that is refused or
 *   never established logs only once, when it ends -> one decision. So a user sees exactly one
 *   decision per request and per tunnel;
 * - a connection the listener closed without a filter chain (TCP entry, flag NR) -> one decision
 *   (deny). A connection that reached the HCM and sent nothing makes no entry: nothing was asked.
 *
 * Attribution comes from the route Envoy chose, whose name is the rule (`<policy>/<rule>`) or
 * `default-deny` (translate/names.ts), and from the response code and its details:
 * - 403 `direct_response`: denied, by the named deny rule or by default (nothing matched);
 * - an allow route: allowed, whatever the destination then answered (its 4xx/5xx are its own;
 *   a destination that cannot be reached or does not resolve is said in the reason), except when
 *   the guard removed every address the name resolved to: 503
 *   `dns_resolution_failure{address_denied}`, a denial (see `guardDenied`);
 * - no route (a request the HTTP codec rejected): denied by the sidecar, with Envoy's details.
 */
import { isIP } from 'node:net';
import { DEFAULT_DENY_ROUTE } from '../translate/names';
import { WOULD_DENY_PREFIX } from '../translate/routes';
import { FILTER_CHAIN_TAG } from '../translate/filters/access-log';
import { TLS_CHAIN_VERDICTS, type TlsChainVerdict } from '../translate/transparent';
import type { NodeId } from '../identity/node-id';
import { durationMs, toCount, type AccessLogCommonJson, type AddressJson, type HttpEntryJson, type TcpEntryJson } from './log-entry';

export type DecisionVerdict = 'allow' | 'deny' | 'would-deny';
export const VERDICTS: readonly DecisionVerdict[] = ['allow', 'deny', 'would-deny'];

/** One decision event (SPEC §5), plus a few fields an operator needs to read it. */
export interface DecisionEvent {
  /** Sequence number in this control plane process (the SSE event id); increases by one per event. */
  id: number;
  /** When the request or connection started (Envoy's start_time), RFC 3339. */
  time: string;
  tenant: string;
  agent: string;
  instance: string;
  /** The destination as the agent named it, normalised (lowercase, no trailing dot); '' if it named none. */
  host: string;
  /** 0 when the request named none (e.g. a malformed request). */
  port: number;
  method?: string;
  /** Plain HTTP only; without the query string (it may carry secrets). */
  path?: string;
  verdict: DecisionVerdict;
  policy?: string;
  rule?: string;
  reason: string;
  responseCode?: number;
  /** Bytes the agent sent to the sidecar for this request or tunnel (headers included). */
  bytesSent: number;
  /** Bytes the sidecar sent back to the agent. */
  bytesReceived: number;
  durationMs: number;
  /** Envoy's response_code_details (or connection termination details): why, in Envoy's words. */
  details?: string;
  /** The address Envoy connected to for an allowed request. */
  upstreamAddress?: string;
  /** CONNECT tunnels: `open` when established, `closed` once its close record arrived. */
  tunnel?: 'open' | 'closed';
}

/** What the close record of an established tunnel adds to its decision. */
export interface TunnelClosed {
  /** The decision it completes. */
  id: number;
  tenant: string;
  agent: string;
  instance: string;
  /** The verdict of the decision it completes (allow, or would-deny in dry-run). */
  verdict: DecisionVerdict;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  details?: string;
}

export type DecisionDraft = Omit<DecisionEvent, 'id'>;

/** One entry, interpreted. `tunnelKey` identifies a tunnel across its two entries (node + stream id). */
export type MappedEntry =
  | { kind: 'decision'; decision: DecisionDraft; tunnelKey?: string }
  /** The end of a CONNECT that was established: completes the open decision, or is the decision if that was lost. */
  | { kind: 'tunnel-end'; tunnelKey: string; decision: DecisionDraft }
  | { kind: 'ignored'; why: string };

export const GUARD_REASON = 'guard: destination resolves to a forbidden address';

type RouteRef = { kind: 'none' } | { kind: 'default-deny'; dryRun: boolean } | { kind: 'rule'; policy: string; rule: string; dryRun: boolean };

/** `<policy>/<rule>`, `default-deny`, either with the dry-run prefix (`would-deny/`, routes.ts), or nothing. */
export function parseRouteName(name: string | undefined): RouteRef {
  if (!name) return { kind: 'none' };
  const dryRun = name.startsWith(WOULD_DENY_PREFIX);
  const bare = dryRun ? name.slice(WOULD_DENY_PREFIX.length) : name;
  if (bare === DEFAULT_DENY_ROUTE) return { kind: 'default-deny', dryRun };
  const slash = bare.indexOf('/');
  if (slash > 0 && slash < bare.length - 1 && bare.indexOf('/', slash + 1) < 0) return { kind: 'rule', policy: bare.slice(0, slash), rule: bare.slice(slash + 1), dryRun };
  return { kind: 'none' };
}

/** Host (normalised) and, when it names a valid one, the port of a CONNECT target or Host/:authority value. */
function authorityParts(authority: string): { host: string; port?: number } {
  let host = authority;
  let port: number | undefined;
  const v6 = /^\[([^\]]*)\](?::(\d+))?$/.exec(authority);
  if (v6) {
    host = v6[1]!;
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else {
    const m = /^(.*):(\d+)$/.exec(authority);
    if (m && !m[1]!.includes(':')) {
      host = m[1]!;
      port = Number(m[2]);
    }
  }
  host = host.toLowerCase().replace(/\.$/, '');
  return port === undefined || !Number.isInteger(port) || port > 65535 ? { host } : { host, port };
}

const schemePort = (scheme: string | undefined): number => (scheme === 'https' ? 443 : scheme === 'http' ? 80 : 0);

/** Host and port from a CONNECT target or a Host/:authority value; the scheme's port when none is named. */
export function parseAuthority(authority: string | undefined, scheme: string | undefined): { host: string; port: number } {
  if (!authority) return { host: '', port: 0 };
  const { host, port } = authorityParts(authority);
  return { host, port: port ?? schemePort(scheme) };
}

export function formatAddress(a: AddressJson | undefined): string | undefined {
  const s = a?.socketAddress;
  if (!s?.address) return undefined;
  const host = s.address.includes(':') ? `[${s.address}]` : s.address;
  return s.portValue !== undefined ? `${host}:${s.portValue}` : host;
}

const flag = (c: AccessLogCommonJson | undefined, name: string): boolean => c?.responseFlags?.[name] === true;

/**
 * The guard at work: the dynamic forward proxy looked the allowed name up and the guard's
 * `resolved_address_filter` removed every address it got, which Envoy 1.40 reports as 503 with
 * details `dns_resolution_failure{address_denied}` (flag DF). A name that does not resolve at all
 * is also a DNS resolution failure, with the resolver's reason in the braces instead
 * (`{cares_norecords:...}`): that is the destination failing, not a denial.
 */
export function guardDenied(details: string | undefined): boolean {
  return /^dns_resolution_failure\{[^}]*address_denied[^}]*\}$/.test(details ?? '');
}

function isLiteral(host: string): boolean {
  return isIP(host) !== 0;
}

function stripQuery(path: string | undefined): string | undefined {
  if (path === undefined || path === '') return undefined;
  const q = path.search(/[?#]/);
  return q < 0 ? path : path.slice(0, q);
}

interface Verdicted {
  verdict: DecisionVerdict;
  policy?: string;
  rule?: string;
  reason: string;
}

/** The verdict an HTTP entry records. */
export function classify(route: RouteRef, code: number | undefined, details: string | undefined, host: string, c?: AccessLogCommonJson): Verdicted {
  const ref = route.kind === 'rule' ? { policy: route.policy, rule: route.rule } : {};
  const nothingMatched = isLiteral(host) ? 'IP literal matches no rule' : 'no rule matches';
  const d = details ?? '';
  if (code === 403 && d === 'direct_response') {
    if (route.kind === 'rule') return { verdict: 'deny', ...ref, reason: `denied by ${route.policy}/${route.rule}` };
    return { verdict: 'deny', reason: nothingMatched };
  }
  const rbac = /^rbac_access_denied_matched_policy\[(.*)\]$/.exec(d);
  if (rbac) {
    const named = parseRouteName(rbac[1]);
    if (named.kind === 'rule') return { verdict: 'deny', policy: named.policy, rule: named.rule, reason: `denied by ${named.policy}/${named.rule}` };
    return { verdict: 'deny', ...ref, reason: route.kind === 'rule' ? `not allowed by ${route.policy}/${route.rule} (method or path)` : nothingMatched };
  }
  if (d === 'local_rate_limited' || flag(c, 'rateLimited')) return { verdict: 'deny', ...ref, reason: 'rate limit exceeded (limits)' };
  if (route.kind === 'none') return { verdict: 'deny', reason: `request refused by the sidecar${d ? ` (${d})` : ''}` };
  // The guard applies whatever the mode: a dry-run agent is not let through to a forbidden address.
  if (guardDenied(d)) return { verdict: 'deny', ...ref, reason: GUARD_REASON };
  // Refused by the sidecar itself after routing, not by the destination: a credential that cannot
  // be loaded (routes.ts answers 503 directly), an upgrade no route allows, a malformed or smuggled
  // request, early data on a CONNECT. Recording these as allowed would misreport the attempt.
  if (code === 503 && d === 'direct_response') return { verdict: 'deny', ...ref, reason: 'credential unavailable: refused (fails closed)' };
  if (code !== undefined && code >= 400 && code < 500 && d !== '' && d !== 'via_upstream') {
    return { verdict: 'deny', ...ref, reason: route.kind === 'rule' ? `request refused by the sidecar (${d})` : nothingMatched };
  }
  if (route.kind === 'default-deny') {
    // A dry-run agent's default route lets the request through; enforce mode would have denied it.
    return { verdict: route.dryRun ? 'would-deny' : 'deny', reason: nothingMatched };
  }
  if (route.dryRun) return { verdict: 'would-deny', ...ref, reason: `would be denied by ${route.policy}/${route.rule}` };
  // Allowed: what the destination then did is its business, but a failure to reach it is worth saying.
  const unreachable = code !== undefined && code >= 500 && d !== '' && d !== 'via_upstream';
  return { verdict: 'allow', ...ref, reason: `allowed by ${route.policy}/${route.rule}${unreachable ? `; the destination could not be reached (${d})` : ''}` };
}

const nodeFields = (node: NodeId) => ({ tenant: node.tenant, agent: node.agent, instance: node.instance });

/** Maps one HTTP entry (a request, or a CONNECT tunnel's establishment or end). */
export function mapHttpEntry(node: NodeId, entry: HttpEntryJson): MappedEntry {
  const c = entry.commonProperties ?? {};
  const type = c.accessLogType ?? 'NotSet';
  if (type === 'DownstreamPeriodic' || type === 'DownstreamStart' || type.startsWith('Upstream')) return { kind: 'ignored', why: `entry type ${type}` };
  const req = entry.request ?? {};
  const res = entry.response ?? {};
  const method = req.requestMethod && req.requestMethod !== 'METHOD_UNSPECIFIED' ? req.requestMethod : undefined;
  const connect = method === 'CONNECT';
  const named = req.authority ? authorityParts(req.authority) : { host: '', port: 0 };
  const host = named.host;
  const port = named.port ?? schemePort(connect ? undefined : req.scheme || 'http');
  const code = res.responseCode;
  const details = res.responseCodeDetails || c.connectionTerminationDetails || undefined;
  const route = parseRouteName(c.routeName);
  const verdicted = classify(route, code, details, host, c);
  const path = connect ? undefined : stripQuery(req.path);
  const established = type === 'DownstreamTunnelSuccessfullyEstablished';
  // A port-less plain request to a `tls: originate` rule goes to the rule's first port, not the
  // scheme's: the destination port is the one Envoy dialled (SPEC §2).
  const dialledPort = c.upstreamRemoteAddress?.socketAddress?.portValue;
  const destinationPort = !connect && verdicted.verdict !== 'deny' && dialledPort && named.port === undefined ? dialledPort : port;
  const draft: DecisionDraft = {
    time: c.startTime ?? new Date(0).toISOString(),
    ...nodeFields(node),
    host,
    port: destinationPort,
    ...(method ? { method } : {}),
    ...(path !== undefined ? { path } : {}),
    ...verdicted,
    ...(code !== undefined && code !== 0 ? { responseCode: code } : {}),
    bytesSent: toCount(c.downstreamWireBytesReceived),
    bytesReceived: toCount(c.downstreamWireBytesSent),
    // An established tunnel's entry has no duration yet: the time it took to open the tunnel.
    durationMs: durationMs(c.duration) ?? durationMs(c.timeToFirstUpstreamRxByte) ?? durationMs(c.timeToLastDownstreamTxByte) ?? 0,
    ...(details ? { details } : {}),
    ...(formatAddress(c.upstreamRemoteAddress) && verdicted.verdict !== 'deny' ? { upstreamAddress: formatAddress(c.upstreamRemoteAddress)! } : {}),
  };
  if (!connect) return { kind: 'decision', decision: draft };
  const tunnelKey = c.streamId ? `${node.tenant}/${node.agent}/${node.instance}#${c.streamId}` : undefined;
  if (established) return { kind: 'decision', decision: { ...draft, tunnel: 'open' }, ...(tunnelKey ? { tunnelKey } : {}) };
  // The end of a CONNECT: if it was established (200), it closes a tunnel whose decision was made.
  if (code === 200 && tunnelKey) return { kind: 'tunnel-end', tunnelKey, decision: { ...draft, tunnel: 'closed' } };
  return { kind: 'decision', decision: draft };
}

/**
 * A transparent filter chain, from its name (translate/transparent.ts): `tls/<verdict>/...`
 * (judged by SNI) or `ip/allow/...` (a tunnel to an IP destination a `cidrs` rule allows).
 */
export type TlsChainRef = { verdict: TlsChainVerdict; policy?: string; rule?: string; ip?: true };

export function parseFilterChainName(name: string | undefined): TlsChainRef | null {
  const m = /^(tls|ip)\/([a-z-]+)\/(.+)$/.exec(name ?? '');
  if (!m || !TLS_CHAIN_VERDICTS.includes(m[2] as TlsChainVerdict)) return null;
  const verdict = m[2] as TlsChainVerdict;
  const ip = m[1] === 'ip' ? { ip: true as const } : {};
  const parts = m[3]!.split('/');
  if (parts[0] === DEFAULT_DENY_ROUTE) return { verdict, ...ip };
  if (parts.length < 3 || !parts[0] || !parts[1]) return null;
  return { verdict, policy: parts[0], rule: parts[1], ...ip };
}

/** Why a TLS connection an allowing chain took did not reach its destination, if it did not. */
function tcpFailure(c: AccessLogCommonJson): string | undefined {
  if (c.upstreamRemoteAddress?.socketAddress?.address) return undefined;
  const why = c.connectionTerminationDetails || c.upstreamTransportFailureReason || '';
  if (flag(c, 'noHealthyUpstream') || flag(c, 'dnsResolutionFailed')) return why || 'no address to connect to';
  if (flag(c, 'upstreamConnectionFailure')) return why || 'connection failed';
  return undefined;
}

/**
 * Maps one TCP entry: the listener's (only connections closed for want of a filter chain, flag NR,
 * are decisions; any other connection reached a filter chain whose own log speaks for it) or a
 * transparent TLS chain's tcp_proxy (`tls/<verdict>/<policy>/<rule>/...` in the filter chain tag):
 * allowed when the upstream connection is made (the entry `flush_access_log_on_connected` sends;
 * its end completes that decision as a tunnel does), denied when the chain closes (a deny rule, a
 * host allowed only with L7 rules, or the guard leaving the name no address).
 */
export function mapTcpEntry(node: NodeId, entry: TcpEntryJson): MappedEntry {
  const c = entry.commonProperties ?? {};
  const sni = c.tlsProperties?.tlsSniHostname;
  const host = (sni ?? '').toLowerCase().replace(/\.$/, '');
  // The address the connection was made to: the original destination of a redirected connection.
  const port = c.downstreamLocalAddress?.socketAddress?.portValue ?? 0;
  const details = c.connectionTerminationDetails || undefined;
  const base = {
    time: c.startTime ?? new Date(0).toISOString(),
    ...nodeFields(node),
    host,
    port,
    bytesSent: toCount(entry.connectionProperties?.receivedBytes ?? c.downstreamWireBytesReceived),
    bytesReceived: toCount(entry.connectionProperties?.sentBytes ?? c.downstreamWireBytesSent),
    durationMs: durationMs(c.duration) ?? 0,
  };
  if (flag(c, 'noRouteFound')) {
    return {
      kind: 'decision',
      decision: {
        ...base,
        verdict: 'deny',
        reason: !sni ? 'connection matched no filter chain (no TLS server name)' : isLiteral(host) ? 'connection matched no filter chain (IP literal matches no rule)' : 'connection matched no filter chain',
        details: details ?? 'filter_chain_not_found',
      },
    };
  }
  const chain = parseFilterChainName(c.customTags?.[FILTER_CHAIN_TAG]);
  if (!chain) return { kind: 'ignored', why: 'a connection a filter chain handled (its own log speaks for it)' };
  // A tunnel to an IP destination names no host: the destination is the address it was made to.
  if (chain.ip) base.host = c.downstreamLocalAddress?.socketAddress?.address ?? host;
  const ref = chain.policy ? { policy: chain.policy, rule: chain.rule! } : {};
  const named = chain.policy ? `${chain.policy}/${chain.rule}` : '';
  const type = c.accessLogType ?? 'NotSet';
  const tunnelKey = `${node.tenant}/${node.agent}/${node.instance}#tcp:${c.streamId ?? `${formatAddress(c.downstreamRemoteAddress) ?? '?'}@${c.startTime ?? ''}`}`;
  if (chain.verdict === 'deny') return { kind: 'decision', decision: { ...base, verdict: 'deny', ...ref, reason: chain.policy ? `denied by ${named}` : 'no rule matches', ...(details ? { details } : {}) } };
  if (chain.verdict === 'no-tunnel') {
    return { kind: 'decision', decision: { ...base, verdict: 'deny', ...ref, reason: `TLS passthrough refused: ${named} allows this host only with L7 rules or a credential (no tunnel); send plain HTTP`, ...(details ? { details } : {}) } };
  }
  const upstreamAddress = formatAddress(c.upstreamRemoteAddress);
  const failure = tcpFailure(c);
  if (failure !== undefined && !chain.ip) {
    // The guard removes forbidden addresses from the cache: an allowed name left with none is
    // refused (a name that does not resolve at all looks the same to a TCP log: said as such).
    return {
      kind: 'decision',
      decision: { ...base, verdict: 'deny', ...ref, reason: `${GUARD_REASON}, or it does not resolve (${failure})`, ...(details ? { details } : {}) },
    };
  }
  const verdict: DecisionVerdict = chain.verdict === 'would-deny' ? 'would-deny' : 'allow';
  const reason = verdict === 'allow' ? `allowed by ${named}` : chain.policy ? `would be denied by ${named}` : 'no rule matches';
  const draft: DecisionDraft = { ...base, verdict, ...ref, reason, ...(details ? { details } : {}), ...(upstreamAddress ? { upstreamAddress } : {}) };
  if (type === 'TcpUpstreamConnected') return { kind: 'decision', decision: { ...draft, tunnel: 'open' }, tunnelKey };
  if (type === 'TcpConnectionEnd' && upstreamAddress) return { kind: 'tunnel-end', tunnelKey, decision: { ...draft, tunnel: 'closed' } };
  return { kind: 'decision', decision: draft };
}
