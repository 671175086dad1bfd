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
  const policies = applyingPolicies(set, tenant, agent);
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
