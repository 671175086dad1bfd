/** The merged policy of an agent as the admin API shows it: each rule with its source policy. */
import { formatHostPattern } from '../policy/host-pattern';
import { formatCidr } from '../util/cidr';
import type { AgentIr } from '../ir/agent-ir';

export function effectivePolicyView(ir: AgentIr): unknown {
  return {
    tenant: ir.tenant,
    agent: ir.agent,
    policies: ir.policies,
    mode: ir.dryRun ? 'dry-run' : 'enforce',
    limits: ir.limits,
    allow: ir.allows.map((a) => ({ policy: a.ref.policy, rule: a.ref.rule, host: formatHostPattern(a.pattern), ports: a.ports })),
    deny: ir.denies.map((d) => ({ policy: d.ref.policy, rule: d.ref.rule, host: formatHostPattern(d.pattern), ports: d.ports })),
    // IP destinations, in the order they are tried (denies first).
    ipRules: ir.ipRules.map((r) => ({ policy: r.ref.policy, rule: r.ref.rule, verdict: r.verdict, cidrs: r.cidrs.map(formatCidr), ports: r.ports })),
    table: ir.table.map((r) => ({ host: formatHostPattern(r.pattern), port: r.port, verdict: r.verdict, policy: r.ref.policy, rule: r.ref.rule })),
  };
}
