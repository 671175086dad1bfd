/**
 * The verdict for one target, evaluated on the decision table exactly as Envoy selects a
 * virtual host (exact name first, then the longest matching wildcard suffix, else the default
 * deny) and then a route (first match: CONNECT, or method and path). `exitgate check` prints this;
 * the end-to-end tests assert Envoy agrees with it.
 */
import { normaliseHost, patternMatches, specificity, type HostPattern } from '../policy/host-pattern';
import { cidrContainsIp } from '../util/cidr';
import { formatRef, type AgentIr, type RouteIr, type RuleRef, type Verdict } from './agent-ir';
import { normaliseRequestPath, pathMatches } from './http-path';
import { ipLiteral, type IpLiteral } from './ip-literal';

export interface Target {
  /** As the agent wrote it; normalised here. IPv6 literals may keep their brackets. */
  host: string;
  port: number;
  /** CONNECT tunnel (default) or a plain-HTTP request through the proxy. */
  kind?: 'connect' | 'http';
  /** Plain HTTP only: false when the URL named no port (`http://host/path`). */
  portExplicit?: boolean;
  method?: string;
  path?: string;
  /**
   * The port was written in another spelling than its decimal form (`:0443`). Envoy matches
   * virtual hosts on the authority text, so such a request matches no rule.
   */
  nonCanonicalPort?: boolean;
}

export interface Decision {
  /** `would-deny`: enforce mode would deny; the agent is in dry-run, so it is allowed and recorded. */
  verdict: Verdict | 'would-deny';
  ref?: RuleRef;
  reason: string;
  /** Allowed plain HTTP: how Envoy reaches the destination, and the credential it adds. */
  upstream?: { port: number; tls: boolean; credential?: string };
}

function mostSpecific<T extends { pattern: HostPattern }>(rows: T[], host: string): T | undefined {
  let best: T | undefined;
  for (const row of rows) {
    if (!patternMatches(row.pattern, host)) continue;
    if (!best || specificity(row.pattern) > specificity(best.pattern)) best = row;
  }
  return best;
}

function routeFor(routes: RouteIr[], t: Target): RouteIr | undefined {
  if (t.kind !== 'http') return routes.find((r) => r.connect);
  const path = normaliseRequestPath(t.path ?? '/');
  if (path === null) return undefined;
  const method = (t.method ?? 'GET').toUpperCase();
  return routes.find((r) => (!r.methods || r.methods.includes(method)) && (!r.paths || r.paths.some((m) => pathMatches(m, path))));
}

export function decide(ir: AgentIr, target: Target): Decision {
  const d = enforceDecision(ir, target);
  return ir.dryRun && d.verdict === 'deny' ? { ...d, verdict: 'would-deny' } : d;
}

function enforceDecision(ir: AgentIr, target: Target): Decision {
  if (target.nonCanonicalPort) return { verdict: 'deny', reason: 'the port is not written in its plain decimal form, which matches no rule' };
  const host = normaliseHost(target.host);
  const bare = target.kind === 'http' && target.portExplicit === false;
  const literal = ipLiteral(host);
  if (literal) return ipDecision(ir, literal, target, bare);
  const row = bare ? mostSpecific(ir.bare, host) : mostSpecific(ir.table.filter((r) => r.port === target.port), host);
  if (!row) return { verdict: 'deny', reason: 'no rule matches' };
  if (row.verdict === 'deny') return { verdict: 'deny', ref: row.ref, reason: `denied by ${formatRef(row.ref)}` };
  const route = routeFor(row.routes ?? [], target);
  if (!route) return { verdict: 'deny', reason: noRouteReason(target) };
  return allowed(route, target, row.port);
}

/** Why an allowed destination still refuses this request: the rules' access does not fit it. */
function noRouteReason(target: Target): string {
  if (target.kind !== 'http') return 'a CONNECT tunnel cannot carry L7 rules or credentials (use plain HTTP: tls: originate)';
  return normaliseRequestPath(target.path ?? '/') === null ? 'path rejected (escaped slash or not absolute)' : 'no rule matches this method and path';
}

function allowed(route: RouteIr, target: Target, port: number): Decision {
  const decision: Decision = { verdict: 'allow', ref: route.ref, reason: `allowed by ${formatRef(route.ref)}` };
  if (target.kind === 'http') decision.upstream = { port, tls: route.upstream === 'tls', ...(route.credential ? { credential: route.credential } : {}) };
  return decision;
}

/**
 * IP literals meet only `cidrs` rules, tried in order (denies first): the first whose ranges and
 * ports hold the destination decides, or, for an allow whose access does not fit the request,
 * passes it on to the next rule, as Envoy passes over a route that does not match.
 */
function ipDecision(ir: AgentIr, ip: IpLiteral, target: Target, bare: boolean): Decision {
  if (bare) return { verdict: 'deny', reason: 'an IP destination must name its port' };
  if (!ip.canonical) return { verdict: 'deny', reason: 'IP literal not in canonical form matches no rule' };
  let accessMiss = false;
  for (const rule of ir.ipRules) {
    if (rule.ports !== 'all' && !rule.ports.includes(target.port)) continue;
    if (!rule.cidrs.some((c) => cidrContainsIp(c, ip.family, ip.value))) continue;
    if (rule.verdict === 'deny') return { verdict: 'deny', ref: rule.ref, reason: `denied by ${formatRef(rule.ref)}` };
    const route = routeFor([{ ref: rule.ref, ...rule.access! }], target);
    if (route) return allowed(route, target, target.port);
    accessMiss = true;
  }
  return { verdict: 'deny', reason: accessMiss ? noRouteReason(target) : 'IP literal matches no rule' };
}

/** `allow (policy/rule)` or `deny (reason)`, as `exitgate check` prints it (SPEC §3). */
export function formatDecision(d: Decision): string {
  if (d.verdict === 'allow') return `allow (${formatRef(d.ref!)})`;
  return d.ref ? `${d.verdict} (${formatRef(d.ref)})` : `${d.verdict} (${d.reason})`;
}
