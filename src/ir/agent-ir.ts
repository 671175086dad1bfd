/**
 * The per-agent intermediate representation: the merged, effective egress policy of one
 * (tenant, agent), as plain data. Built by a pure function from the policy set; consumed by
 * the translator (-> Envoy resources) and by `exitgate check` (-> a verdict), which is why
 * they cannot disagree.
 */
import type { HostPattern } from '../policy/host-pattern';
import type { Cidr } from '../util/cidr';

/** Where a rule came from; rendered `<policy>/<rule>` in routes, access logs and verdicts. */
export interface RuleRef {
  policy: string;
  rule: string;
}

/** A path condition of an L7 rule: `/exact` or `/prefix/*` (prefix kept with its trailing "/"). */
export type PathMatch = { exact: string } | { prefix: string };

/**
 * What an allow rule lets through to a host and port: CONNECT tunnels, and plain HTTP forwarded
 * as is or over TLS that Envoy originates, possibly narrowed to methods and paths and with a
 * credential injected. Absent on a rule means the plain default (tunnels and any plain HTTP).
 */
export interface AccessIr {
  /** CONNECT tunnels are allowed (not for rules with http or credential: unenforceable inside TLS). */
  connect: boolean;
  /** How plain-HTTP requests reach the destination. */
  upstream: 'plain' | 'tls';
  /** Upper-case methods; absent: any. */
  methods?: string[];
  /** Absent: any path. */
  paths?: PathMatch[];
  /** Name of a Credential of the agent's tenant, injected by Envoy. */
  credential?: string;
}

export const PLAIN_ACCESS: AccessIr = { connect: true, upstream: 'plain' };

export interface HostAllowIr {
  ref: RuleRef;
  pattern: HostPattern;
  ports: number[];
  access?: AccessIr;
}

/** One allow rule's contribution to a table row; routes are tried in order, first match wins. */
export interface RouteIr extends AccessIr {
  ref: RuleRef;
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
  /**
   * Allow rows: the access of every allow rule matching the row's hosts at this port (its own
   * pattern and every broader one), most specific first, so the most specific row alone decides
   * as the SPEC's union of allows would.
   */
  routes?: RouteIr[];
}

/**
 * Plain-HTTP requests whose authority names no port (`http://host/path`): port 80, or, for a host
 * with a `tls: originate` rule, that rule's first port over TLS (SPEC §2).
 */
export interface BareEntry {
  pattern: HostPattern;
  /** The port Envoy dials. */
  port: number;
  verdict: Verdict;
  ref: RuleRef;
  routes?: RouteIr[];
}

/**
 * A `cidrs` rule: IP-literal destinations only (a host name never matches one, and an IP literal
 * never matches a host rule). Kept in match order, every deny rule before every allow rule, each
 * group in policy-name order and, within a policy, in document order: the first rule whose ranges and ports hold the destination
 * (and, for an allow, whose access fits the request) decides, exactly as Envoy tries routes.
 */
export interface IpRuleIr {
  verdict: Verdict;
  ref: RuleRef;
  cidrs: Cidr[];
  /** `all` for a deny rule that names no ports. */
  ports: number[] | 'all';
  /** Allow rules only. */
  access?: AccessIr;
}

export interface AgentIr {
  tenant: string;
  agent: string;
  /** Names of the policies that apply to this agent, sorted. */
  policies: string[];
  allows: HostAllowIr[];
  denies: HostDenyIr[];
  table: TableEntry[];
  bare: BareEntry[];
  /** `cidrs` rules in match order. */
  ipRules: IpRuleIr[];
  /** True only when every policy applying to the agent is dry-run (SPEC §2). */
  dryRun: boolean;
  /** The strictest limits across applying policies, per agent instance. */
  limits: { requestsPerMinute?: number; maxConnections?: number };
}

export const formatRef = (ref: RuleRef): string => `${ref.policy}/${ref.rule}`;
