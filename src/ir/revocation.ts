/**
 * Whether a policy change takes anything away from an agent. Routes apply to new requests at
 * once, but a CONNECT tunnel, once open, is never routed again: a revocation must drain the
 * connections the old configuration accepted (SPEC §6.2). Conservative: any allow row that does
 * not reappear identically, or any new deny row, counts as a revocation (a false positive costs a
 * reconnect, a false negative an open tunnel to a revoked destination).
 */
import { formatHostPattern } from '../policy/host-pattern';
import { formatCidr } from '../util/cidr';
import type { AgentIr, IpRuleIr } from './agent-ir';

/** The rows of an IR as comparable strings. */
export interface AccessKeys {
  allow: string[];
  deny: string[];
}

export function accessKeys(ir: AgentIr): AccessKeys {
  const rows = [...ir.table.map((r) => ({ kind: 'port', r })), ...ir.bare.map((r) => ({ kind: 'no-port', r }))];
  const key = ({ kind, r }: (typeof rows)[number]) => `${kind} ${formatHostPattern(r.pattern)}:${r.port} ${JSON.stringify(r.routes ?? [])}`;
  // IP rules match in order, so a rule's key carries everything that decides what it lets through.
  const ipKey = (r: IpRuleIr) => `ip ${r.cidrs.map(formatCidr).join(',')}:${r.ports === 'all' ? 'all' : r.ports.join(',')} ${JSON.stringify(r.access ?? null)}`;
  return {
    allow: [...rows.filter(({ r }) => r.verdict === 'allow').map(key), ...ir.ipRules.filter((r) => r.verdict === 'allow').map(ipKey)].sort(),
    deny: [...rows.filter(({ r }) => r.verdict === 'deny').map(key), ...ir.ipRules.filter((r) => r.verdict === 'deny').map(ipKey)].sort(),
  };
}

export function revokesAccess(before: AccessKeys, after: AccessKeys): boolean {
  const allowedAfter = new Set(after.allow);
  if (before.allow.some((k) => !allowedAfter.has(k))) return true;
  const deniedBefore = new Set(before.deny);
  return after.deny.some((k) => !deniedBefore.has(k));
}

export const sameAccess = (a: AccessKeys, b: AccessKeys): boolean => a.allow.join('\n') === b.allow.join('\n') && a.deny.join('\n') === b.deny.join('\n');
