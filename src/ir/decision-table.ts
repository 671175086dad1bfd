/**
 * Compiles allow and deny rules into a table that most-specific-match lookup (Envoy's virtual
 * host selection) evaluates to the SPEC §2 semantics: default deny, union of allows, and a deny
 * of any applying policy wins over every allow.
 *
 * Why this is sound: host patterns are either nested or disjoint (an exact name, or "*." plus a
 * suffix), so the patterns matching one host form a chain. At each port we emit every allow and
 * deny pattern; an allow pattern that some deny pattern covers becomes a deny row. Then the most
 * specific row matching a host is an allow row only if no deny pattern in the chain (more or less
 * specific) matches it.
 */
import { formatHostPattern, patternCovers, type HostPattern } from '../policy/host-pattern';
import type { HostAllowIr, HostDenyIr, RuleRef, TableEntry } from './agent-ir';

const refOrder = (a: RuleRef, b: RuleRef): number => a.policy.localeCompare(b.policy) || a.rule.localeCompare(b.rule);

export function buildDecisionTable(allows: HostAllowIr[], denies: HostDenyIr[]): TableEntry[] {
  const ports = new Set<number>();
  for (const a of allows) a.ports.forEach((p) => ports.add(p));
  for (const d of denies) if (d.ports !== 'all') d.ports.forEach((p) => ports.add(p));

  const table: TableEntry[] = [];
  for (const port of [...ports].sort((x, y) => x - y)) {
    const allowsHere = allows.filter((a) => a.ports.includes(port)).sort((x, y) => refOrder(x.ref, y.ref));
    const deniesHere = denies.filter((d) => d.ports === 'all' || d.ports.includes(port)).sort((x, y) => refOrder(x.ref, y.ref));
    const rows = new Map<string, TableEntry>();
    // Deny rows first: on an equal pattern the deny wins and keeps its own attribution.
    for (const d of deniesHere) {
      const key = formatHostPattern(d.pattern);
      if (!rows.has(key)) rows.set(key, { pattern: d.pattern, port, verdict: 'deny', ref: d.ref });
    }
    for (const a of allowsHere) {
      const key = formatHostPattern(a.pattern);
      if (rows.has(key)) continue;
      const coveringDeny = deniesHere.find((d) => patternCovers(d.pattern, a.pattern));
      rows.set(
        key,
        coveringDeny
          ? { pattern: a.pattern, port, verdict: 'deny', ref: coveringDeny.ref }
          : { pattern: a.pattern, port, verdict: 'allow', ref: a.ref },
      );
    }
    table.push(...[...rows.entries()].sort(([x], [y]) => x.localeCompare(y)).map(([, row]) => row));
  }
  return table;
}

export const patternKey = (p: HostPattern, port: number): string => `${formatHostPattern(p)}:${port}`;
