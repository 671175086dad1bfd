/**
 * Host names and host patterns (SPEC §2): the one place that decides what a valid pattern is,
 * how a requested host is normalised and whether a pattern matches it. Both `exitgate check`
 * and the Envoy translation go through the decision table built from these patterns, so they
 * cannot disagree.
 */
import { domainToASCII } from 'node:url';
import { isIP } from 'node:net';

/** An exact name (`api.example.com`) or a wildcard (`*.example.com`, one or more extra labels). */
export type HostPattern =
  | { kind: 'exact'; name: string }
  | { kind: 'wildcard'; suffix: string }; // suffix without the "*." e.g. "example.com"

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** A last label that inet_aton or a browser would read as a number: 1, 0x7f, 017, 0x. */
const NUMERIC_LABEL = /^(0x[0-9a-f]*|[0-9]+)$/;

/** Validates a lowercase DNS name (A-labels only). Returns the reason it is not one, or null. */
export function dnsNameProblem(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (name.endsWith('.')) return 'must not end with a dot';
  if (isIP(name.replace(/^\[|\]$/g, '')) !== 0) return 'is an IP literal; IP destinations belong in cidrs';
  if (/[^\x21-\x7e]/.test(name)) {
    const ascii = domainToASCII(name);
    return ascii ? `must be written as an A-label: "${ascii}"` : 'is not a valid DNS name';
  }
  if (name !== name.toLowerCase()) return `must be lowercase: "${name.toLowerCase()}"`;
  if (name.length > 253) return 'is longer than 253 characters';
  const labels = name.split('.');
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) {
    return 'ends in a numeric label, which resolvers read as an IP address; IP destinations belong in cidrs';
  }
  for (const label of labels) {
    if (!LABEL.test(label)) return 'is not a valid DNS name';
  }
  return null;
}

/** Parses a host pattern from a policy. Errors are phrased to follow the quoted value. */
export function parseHostPattern(text: string): { ok: true; value: HostPattern } | { ok: false; reason: string } {
  if (text.startsWith('*.')) {
    const suffix = text.slice(2);
    if (suffix.includes('*')) return { ok: false, reason: 'is not a valid host pattern' };
    const problem = dnsNameProblem(suffix);
    if (problem) return { ok: false, reason: `is not a valid host pattern: the part after "*." ${problem}` };
    return { ok: true, value: { kind: 'wildcard', suffix } };
  }
  if (text.includes('*')) return { ok: false, reason: 'is not a valid host pattern' };
  const problem = dnsNameProblem(text);
  if (problem) return { ok: false, reason: problem };
  return { ok: true, value: { kind: 'exact', name: text } };
}

export function formatHostPattern(p: HostPattern): string {
  return p.kind === 'exact' ? p.name : `*.${p.suffix}`;
}

/**
 * Normalises a requested host the way Envoy does before virtual-host matching
 * (case-insensitive, `strip_trailing_host_dot`): lowercase, one trailing dot removed.
 */
export function normaliseHost(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Does the pattern match this normalised host? `*.x` matches `a.x` and `a.b.x`, never `x`. */
export function patternMatches(p: HostPattern, host: string): boolean {
  if (p.kind === 'exact') return host === p.name;
  return host.length > p.suffix.length + 1 && host.endsWith(`.${p.suffix}`);
}

/** True when every host `inner` matches is also matched by `outer`. */
export function patternCovers(outer: HostPattern, inner: HostPattern): boolean {
  if (outer.kind === 'exact') return inner.kind === 'exact' && inner.name === outer.name;
  if (inner.kind === 'exact') return patternMatches(outer, inner.name);
  return inner.suffix === outer.suffix || inner.suffix.endsWith(`.${outer.suffix}`);
}

/**
 * Specificity in Envoy's virtual-host selection order: exact names first, then wildcards by
 * longest suffix (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto#config-route-v3-virtualhost).
 * Higher is more specific.
 */
export function specificity(p: HostPattern): number {
  return p.kind === 'exact' ? Number.MAX_SAFE_INTEGER : p.suffix.length;
}
