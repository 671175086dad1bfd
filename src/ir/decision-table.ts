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
import { specificity } from '../policy/host-pattern';
import { PLAIN_ACCESS, type BareEntry, type HostAllowIr, type HostDenyIr, type RouteIr, type RuleRef, type TableEntry } from './agent-ir';

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
          : { pattern: a.pattern, port, verdict: 'allow', ref: a.ref, routes: routesCovering(a.pattern, allowsHere) },
      );
    }
    table.push(...[...rows.entries()].sort(([x], [y]) => x.localeCompare(y)).map(([, row]) => row));
  }
  return table;
}

/** Every allow rule at a port whose pattern covers `pattern`, most specific first. */
function routesCovering(pattern: HostPattern, allowsHere: HostAllowIr[]): RouteIr[] {
  return allowsHere
    .filter((a) => patternCovers(a.pattern, pattern))
    .sort((x, y) => specificity(y.pattern) - specificity(x.pattern) || refOrder(x.ref, y.ref))
    .map((a) => ({ ref: a.ref, ...(a.access ?? PLAIN_ACCESS) }));
}

/**
 * Rows for port-less plain HTTP. A host pattern with a `tls: originate` rule (at any port) maps a
 * port-less request to the first port of its most specific such rule, over TLS; otherwise to 80.
 * The row's verdict and routes are the table's at that port, restricted to plain HTTP routes of
 * the matching upstream kind, so a port-less request never reaches a port no rule names.
 */
export function buildBareTable(table: TableEntry[], allows: HostAllowIr[]): BareEntry[] {
  const out: BareEntry[] = [];
  const patterns = new Map<string, HostPattern>();
  for (const row of table) patterns.set(formatHostPattern(row.pattern), row.pattern);
  for (const [key, pattern] of [...patterns.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const originate = allows
      .filter((a) => a.access?.upstream === 'tls' && patternCovers(a.pattern, pattern))
      .sort((x, y) => specificity(y.pattern) - specificity(x.pattern) || refOrder(x.ref, y.ref))[0];
    const port = originate ? originate.ports[0]! : 80;
    const upstream = originate ? 'tls' : 'plain';
    const row = table.find((r) => formatHostPattern(r.pattern) === key && r.port === port);
    if (!row) continue;
    if (row.verdict === 'deny') {
      out.push({ pattern, port, verdict: 'deny', ref: row.ref });
      continue;
    }
    const routes = (row.routes ?? []).filter((r) => r.upstream === upstream);
    out.push(routes.length > 0 ? { pattern, port, verdict: 'allow', ref: routes[0]!.ref, routes } : { pattern, port, verdict: 'deny', ref: row.ref });
  }
  return out;
}

export const patternKey = (p: HostPattern, port: number): string => `${formatHostPattern(p)}:${port}`;
