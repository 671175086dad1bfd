/**
 * Regexes over a request's authority (`203.0.113.7:9090`, `[2001:db8::7]:443`) that accept
 * exactly the canonical spellings of the addresses in a range, on the given ports. Envoy chooses
 * a virtual host by name, with no CIDR matching, so `cidrs` rules become header-matched routes;
 * the same authority then names the address the ORIGINAL_DST cluster dials (clusters.ts), so the
 * address checked is the address dialled.
 *
 * Each regex stays small: Envoy refuses a regex whose RE2 program is larger than 100 instructions
 * (runtime key re2.max_program_size.error_level), so one regex covers one range and a few ports.
 */
import toRegexRange from 'to-regex-range';
import type { Cidr } from '../util/cidr';
import { canonicalIpv6 } from '../ir/ip-literal';

/** Ports per regex; a longer alternation could exceed Envoy's program size limit. */
const PORTS_PER_REGEX = 8;

/** Decimal numbers lo..hi without leading zeros. */
const numberRange = (lo: number, hi: number): string => toRegexRange(lo, hi, { shorthand: false });

/** The canonical dotted-decimal spellings of an IPv4 range, unanchored. */
export function ipv4RangeRegex(c: Cidr): string {
  const octets = [24n, 16n, 8n, 0n].map((s) => Number((c.base >> s) & 0xffn));
  const fixed = Math.floor(c.prefix / 8);
  const parts = octets.map((octet, i) => {
    if (i < fixed) return String(octet);
    if (i > fixed) return numberRange(0, 255);
    const span = 2 ** (8 - (c.prefix % 8));
    return numberRange(octet, octet + span - 1);
  });
  return parts.join('\\.');
}

/** The canonical (RFC 5952) spellings of a small IPv6 range, one by one (cidr-rule.ts bounds it). */
export function ipv6RangeSpellings(c: Cidr): string[] {
  const size = 1n << BigInt(128 - c.prefix);
  const out: string[] = [];
  for (let i = 0n; i < size; i++) out.push(canonicalIpv6(c.base + i));
  return out;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Regexes that together accept `<canonical address in range>:<port>` for every port listed (or any). */
export function authorityRegexes(c: Cidr, ports: number[] | 'all'): string[] {
  const address = c.family === 4 ? ipv4RangeRegex(c) : `\\[(?:${ipv6RangeSpellings(c).join('|')})\\]`;
  // IPv6 hex digits may arrive in either case; Envoy does not lowercase the authority.
  const flags = c.family === 6 ? '(?i)' : '';
  if (ports === 'all') return [`${flags}^${address}:[0-9]+$`];
  return chunks(ports, PORTS_PER_REGEX).map((group) => `${flags}^${address}:(?:${group.join('|')})$`);
}
