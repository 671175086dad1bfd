/**
 * `cidrs` entries of a policy (SPEC §2): which IP ranges a rule may name. The guard does not
 * apply to explicit ranges, so the ranges that would let an agent reach its own sidecar or the
 * control plane on the sidecar's host (SPEC §1) are refused here instead: loopback and the
 * unspecified, IPv4-compatible and IPv4-mapped forms. Other private ranges are the author's
 * explicit choice (an internal service), which is what `cidrs` is for.
 */
import { cidrContains, mustParseCidr, parseCidr, type Cidr } from '../util/cidr';

const NEVER_ALLOWED: Array<{ range: string; cidr: Cidr; what: string }> = [
  { range: '0.0.0.0/8', what: '"this network" (0.0.0.0 reaches the sidecar\'s own host)' },
  { range: '127.0.0.0/8', what: 'loopback (the sidecar\'s and control plane\'s own ports)' },
  { range: '::/96', what: 'the unspecified, loopback and IPv4-compatible IPv6 addresses' },
  { range: '::ffff:0:0/96', what: 'IPv4-mapped IPv6 addresses (write the IPv4 range instead)' },
].map((n) => ({ ...n, cidr: mustParseCidr(n.range) }));

/**
 * The widest IPv6 range a rule may name. Envoy matches the destination as text, and an IPv6
 * range's canonical spellings (RFC 5952 zero compression) cannot be written as one small regex,
 * so each address is listed: at most 256 per range.
 */
export const WIDEST_IPV6_PREFIX = 120;

const overlaps = (a: Cidr, b: Cidr): boolean => cidrContains(a, b) || cidrContains(b, a);

/** Parses one entry; the reason (phrased to follow nothing) when it is not acceptable. */
export function parseCidrEntry(text: string, use: 'allow' | 'deny'): { ok: true; value: Cidr } | { ok: false; reason: string } {
  if (/[%\s]/.test(text)) return { ok: false, reason: `${JSON.stringify(text)} is not a CIDR range (no zone ids or spaces)` };
  const parsed = parseCidr(text);
  if (!parsed.ok) return { ok: false, reason: parsed.reason.replace(/^"[^"]*"/, JSON.stringify(text)) };
  const cidr = parsed.value;
  if (cidr.family === 6 && cidr.prefix < WIDEST_IPV6_PREFIX) {
    return { ok: false, reason: `${JSON.stringify(text)} is wider than /${WIDEST_IPV6_PREFIX}; IPv6 ranges of at most 256 addresses are supported, split the range` };
  }
  if (use === 'allow') {
    for (const never of NEVER_ALLOWED) {
      if (overlaps(never.cidr, cidr)) {
        return { ok: false, reason: `${JSON.stringify(text)} overlaps ${never.range}, ${never.what}, which no rule may allow` };
      }
    }
  }
  return { ok: true, value: cidr };
}

export function cidrRuleProblem(text: string, use: 'allow' | 'deny'): string | null {
  const parsed = parseCidrEntry(text, use);
  return parsed.ok ? null : parsed.reason;
}
