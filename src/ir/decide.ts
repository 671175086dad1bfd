/**
 * The verdict for one target, evaluated on the decision table exactly as Envoy selects a
 * virtual host (exact name first, then the longest matching wildcard suffix, else the default
 * deny) and then a route (first match: CONNECT, or method and path). `exitgate check` prints this;
 * the end-to-end tests assert Envoy agrees with it.
 */
import { isIP } from 'node:net';
import { normaliseHost, patternMatches, specificity, type HostPattern } from '../policy/host-pattern';
import { formatRef, type AgentIr, type RouteIr, type RuleRef, type Verdict } from './agent-ir';
import { normaliseRequestPath, pathMatches } from './http-path';

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
  const row = bare ? mostSpecific(ir.bare, host) : mostSpecific(ir.table.filter((r) => r.port === target.port), host);
  if (!row) {
    const literal = isIP(host.replace(/^\[|\]$/g, '')) !== 0;
    return { verdict: 'deny', reason: literal ? 'IP literal matches no rule' : 'no rule matches' };
  }
  if (row.verdict === 'deny') return { verdict: 'deny', ref: row.ref, reason: `denied by ${formatRef(row.ref)}` };
  const route = routeFor(row.routes ?? [], target);
  if (!route) {
    const why =
      target.kind === 'http'
        ? normaliseRequestPath(target.path ?? '/') === null
          ? 'path rejected (escaped slash or not absolute)'
          : 'no rule matches this method and path'
        : 'a CONNECT tunnel cannot carry L7 rules or credentials (use plain HTTP: tls: originate)';
    return { verdict: 'deny', reason: why };
  }
  const decision: Decision = { verdict: 'allow', ref: route.ref, reason: `allowed by ${formatRef(route.ref)}` };
  if (target.kind === 'http') decision.upstream = { port: row.port, tls: route.upstream === 'tls', ...(route.credential ? { credential: route.credential } : {}) };
  return decision;
}

/** `allow (policy/rule)` or `deny (reason)`, as `exitgate check` prints it (SPEC §3). */
export function formatDecision(d: Decision): string {
  if (d.verdict === 'allow') return `allow (${formatRef(d.ref!)})`;
  return d.ref ? `${d.verdict} (${formatRef(d.ref)})` : `${d.verdict} (${d.reason})`;
}
