/**
 * The per-agent intermediate representation: the merged, effective egress policy of one
 * (tenant, agent), as plain data. Built by a pure function from the policy set; consumed by
 * the translator (-> Envoy resources) and by `exitgate check` (-> a verdict), which is why
 * they cannot disagree.
 */
import type { HostPattern } from '../policy/host-pattern';

/** Where a rule came from; rendered `<policy>/<rule>` in routes, access logs and verdicts. */
export interface RuleRef {
  policy: string;
  rule: string;
}

export interface HostAllowIr {
  ref: RuleRef;
  pattern: HostPattern;
  ports: number[];
}

export interface HostDenyIr {
  ref: RuleRef;
  pattern: HostPattern;
  /** `all` when the deny rule names no ports. */
  ports: number[] | 'all';
}

export type Verdict = 'allow' | 'deny';

/**
 * One row of the decision table: requests for a host matched by `pattern` on `port` get
 * `verdict`, attributed to `ref`. Each row becomes one Envoy virtual host; lookup picks the most
 * specific row as Envoy does (exact name, then longest wildcard suffix), and no row means deny.
 */
export interface TableEntry {
  pattern: HostPattern;
  port: number;
  verdict: Verdict;
  ref: RuleRef;
}

export interface AgentIr {
  tenant: string;
  agent: string;
  /** Names of the policies that apply to this agent, sorted. */
  policies: string[];
  allows: HostAllowIr[];
  denies: HostDenyIr[];
  table: TableEntry[];
}

export const formatRef = (ref: RuleRef): string => `${ref.policy}/${ref.rule}`;
