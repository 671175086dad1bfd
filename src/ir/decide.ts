/**
 * The verdict for one target, evaluated on the decision table exactly as Envoy selects a
 * virtual host (exact name first, then the longest matching wildcard suffix, else the default
 * deny). `exitgate check` prints this; the end-to-end tests assert Envoy agrees with it.
 */
import { isIP } from 'node:net';
import { normaliseHost, patternMatches, specificity } from '../policy/host-pattern';
import { formatRef, type AgentIr, type RuleRef, type Verdict } from './agent-ir';

export interface Target {
  /** As the agent wrote it; normalised here. IPv6 literals may keep their brackets. */
  host: string;
  port: number;
}

export interface Decision {
  verdict: Verdict;
  ref?: RuleRef;
  reason: string;
}

export function decide(ir: AgentIr, target: Target): Decision {
  const host = normaliseHost(target.host);
  let best: (typeof ir.table)[number] | undefined;
  for (const row of ir.table) {
    if (row.port !== target.port || !patternMatches(row.pattern, host)) continue;
    if (!best || specificity(row.pattern) > specificity(best.pattern)) best = row;
  }
  if (!best) {
    const literal = isIP(host.replace(/^\[|\]$/g, '')) !== 0;
    return { verdict: 'deny', reason: literal ? 'IP literal matches no rule' : 'no rule matches' };
  }
  return best.verdict === 'allow'
    ? { verdict: 'allow', ref: best.ref, reason: `allowed by ${formatRef(best.ref)}` }
    : { verdict: 'deny', ref: best.ref, reason: `denied by ${formatRef(best.ref)}` };
}

/** `allow (policy/rule)` or `deny (reason)`, as `exitgate check` prints it (SPEC §3). */
export function formatDecision(d: Decision): string {
  if (d.verdict === 'allow') return `allow (${formatRef(d.ref!)})`;
  return d.ref ? `deny (${formatRef(d.ref)})` : `deny (${d.reason})`;
}
