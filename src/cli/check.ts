/**
 * `exitgate check`: the offline verdict for a target, from the same decision table the sidecar's
 * routes are generated from (SPEC §3). Exit 0 allow (or would-deny in dry-run), 3 deny.
 */
import { loadPolicyDir } from '../policy/load';
import { formatPolicyError } from '../policy/errors';
import { buildAgentIr } from '../ir/build-ir';
import { decide, formatDecision } from '../ir/decide';
import { parseTarget } from '../ir/target';
import { nodeArg } from './args';
import { UsageError } from './errors';

export async function check(flags: { policies: string; node: string; method?: string }, targetText: string): Promise<number> {
  const node = nodeArg(flags.node);
  const target = parseTarget(targetText);
  if (!target.ok) throw new UsageError(target.reason);
  const set = await loadPolicyDir(flags.policies);
  if (!set.ok) throw new UsageError(`invalid policies:\n${set.errors.map(formatPolicyError).join('\n')}`, 1);
  if (flags.method && target.value.kind !== 'http') throw new UsageError('--method applies to plain-HTTP targets (http://...); a CONNECT has no method of its own');
  const decision = decide(buildAgentIr(set.value, node.tenant, node.agent), { ...target.value, ...(flags.method ? { method: flags.method.toUpperCase() } : {}) });
  process.stdout.write(`${formatDecision(decision)}\n`);
  // would-deny (dry-run) lets the traffic through: exit 0, the output says what enforce would do.
  return decision.verdict === 'deny' ? 3 : 0;
}
