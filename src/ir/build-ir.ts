/** PolicySet -> AgentIr for one (tenant, agent). Pure: no I/O, no clock, no randomness. */
import type { PolicySet } from '../policy/documents';
import type { EgressPolicy } from '../policy/schema';
import { parseHostPattern, type HostPattern } from '../policy/host-pattern';
import type { AccessIr, AgentIr, HostAllowIr, HostDenyIr, IpRuleIr, PathMatch } from './agent-ir';
import { parseCidrEntry } from '../policy/cidr-rule';
import type { Cidr } from '../util/cidr';
import type { AllowRule } from '../policy/schema';
import { buildBareTable, buildDecisionTable } from './decision-table';

/** The policies that apply to an agent: same tenant, naming the agent or "*". Sorted by name. */
export function applyingPolicies(set: PolicySet, tenant: string, agent: string): EgressPolicy[] {
  return set.policies
    .map((lp) => lp.policy)
    .filter((p) => p.metadata.tenant === tenant && (p.spec.agents.includes(agent) || p.spec.agents.includes('*')))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

function mustParseCidrs(texts: string[], use: 'allow' | 'deny'): Cidr[] {
  return texts.map((text) => {
    const parsed = parseCidrEntry(text, use);
    if (!parsed.ok) throw new Error(`internal: unvalidated cidr ${JSON.stringify(text)}`);
    return parsed.value;
  });
}

function mustParse(text: string): HostPattern {
  const parsed = parseHostPattern(text);
  // The schema validated every pattern; reaching this means a PolicySet bypassed validation.
  if (!parsed.ok) throw new Error(`internal: unvalidated host pattern ${JSON.stringify(text)}`);
  return parsed.value;
}

export function buildAgentIr(set: PolicySet, tenant: string, agent: string): AgentIr {
  return buildAgentIrFrom(applyingPolicies(set, tenant, agent), tenant, agent);
}

/**
 * The IR of an agent from the policies that apply to it, in `applyingPolicies` order. A pure
 * function of those policies: the same policy objects give the same IR, which lets the snapshot
 * cache skip agents whose applying policies did not change.
 */
export function buildAgentIrFrom(policies: EgressPolicy[], tenant: string, agent: string): AgentIr {
  const allows: HostAllowIr[] = [];
  const denies: HostDenyIr[] = [];
  const ipAllows: IpRuleIr[] = [];
  const ipDenies: IpRuleIr[] = [];
  for (const policy of policies) {
    const policyName = policy.metadata.name;
    for (const rule of policy.spec.allow) {
      const ports = [...new Set(rule.ports)].sort((a, b) => a - b);
      const access = accessOf(rule);
      for (const host of rule.hosts ?? []) allows.push({ ref: { policy: policyName, rule: rule.name }, pattern: mustParse(host), ports, access });
      if (rule.cidrs) ipAllows.push({ verdict: 'allow', ref: { policy: policyName, rule: rule.name }, cidrs: mustParseCidrs(rule.cidrs, 'allow'), ports, access });
    }
    for (const rule of policy.spec.deny) {
      const ports = rule.ports ? [...new Set(rule.ports)].sort((a, b) => a - b) : 'all';
      for (const host of rule.hosts ?? []) denies.push({ ref: { policy: policyName, rule: rule.name }, pattern: mustParse(host), ports });
      if (rule.cidrs) ipDenies.push({ verdict: 'deny', ref: { policy: policyName, rule: rule.name }, cidrs: mustParseCidrs(rule.cidrs, 'deny'), ports });
    }
  }
  const table = buildDecisionTable(allows, denies);
  return {
    tenant,
    agent,
    policies: policies.map((p) => p.metadata.name),
    allows,
    denies,
    table,
    bare: buildBareTable(table, allows),
    // Policies are already sorted by name, and rules keep their order within a policy.
    ipRules: [...ipDenies, ...ipAllows],
    dryRun: policies.length > 0 && policies.every((p) => p.spec.mode === 'dry-run'),
    limits: strictestLimits(policies),
  };
}

/** What a rule permits, from its tls / http / credential fields (SPEC §2). */
export function accessOf(rule: AllowRule): AccessIr {
  const l7 = rule.http !== undefined || rule.credential !== undefined;
  const access: AccessIr = { connect: !l7, upstream: rule.tls === 'originate' ? 'tls' : 'plain' };
  if (rule.http?.methods) access.methods = [...new Set(rule.http.methods)].sort();
  if (rule.http?.paths) access.paths = rule.http.paths.map((p): PathMatch => (p.endsWith('/*') ? { prefix: p.slice(0, -1) } : { exact: p }));
  if (rule.credential) access.credential = rule.credential;
  return access;
}

/** The smallest of each limit any applying policy sets (SPEC §2: the strictest value). */
function strictestLimits(policies: EgressPolicy[]): AgentIr['limits'] {
  const min = (values: Array<number | undefined>): number | undefined => {
    const set = values.filter((v): v is number => v !== undefined);
    return set.length ? Math.min(...set) : undefined;
  };
  const rpm = min(policies.map((p) => p.spec.limits?.requestsPerMinute));
  const conns = min(policies.map((p) => p.spec.limits?.maxConnections));
  return { ...(rpm !== undefined ? { requestsPerMinute: rpm } : {}), ...(conns !== undefined ? { maxConnections: conns } : {}) };
}

/** `applyingPolicies` for every (tenant, agent), from one pass over the set. */
export interface ApplyingIndex {
  /** The same policies, in the same order, as `applyingPolicies(set, tenant, agent)`. */
  applying(tenant: string, agent: string): EgressPolicy[];
}

/**
 * Indexes a policy set by tenant and agent once, so that looking up the policies of many agents
 * costs O(policies + lookups x applying) instead of O(policies) per agent.
 */
export function indexApplyingPolicies(set: PolicySet): ApplyingIndex {
  // Per tenant: the policies naming "*" and those naming each agent, each with its position in the
  // set (the tie-break that applyingPolicies' stable sort by name keeps).
  type Indexed = { policy: EgressPolicy; at: number };
  const tenants = new Map<string, { all: Indexed[]; byAgent: Map<string, Indexed[]> }>();
  set.policies.forEach((lp, at) => {
    const p = lp.policy;
    let t = tenants.get(p.metadata.tenant);
    if (!t) tenants.set(p.metadata.tenant, (t = { all: [], byAgent: new Map() }));
    if (p.spec.agents.includes('*')) t.all.push({ policy: p, at });
    else
      for (const agent of new Set(p.spec.agents)) {
        const list = t.byAgent.get(agent);
        if (list) list.push({ policy: p, at });
        else t.byAgent.set(agent, [{ policy: p, at }]);
      }
  });
  return {
    applying(tenant, agent) {
      const t = tenants.get(tenant);
      if (!t) return [];
      return [...t.all, ...(t.byAgent.get(agent) ?? [])]
        .sort((a, b) => a.policy.metadata.name.localeCompare(b.policy.metadata.name) || a.at - b.at)
        .map((x) => x.policy);
    },
  };
}
