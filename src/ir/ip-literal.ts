/**
 * IP-literal destinations as Envoy sees them: the request's authority text. `cidrs` rules match
 * only the canonical spelling (IPv4 dotted decimal without leading zeros, IPv6 in brackets and
 * RFC 5952 form, any letter case), because the sidecar matches the authority with a regex of
 * those spellings; any other spelling (`0x7f.1`, `[2001:db8:0::1]`) matches no rule and is denied.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { formatIp, parseIp } from '../util/cidr';

export interface IpLiteral {
  family: 4 | 6;
  value: bigint;
  /** The spelling a `cidrs` rule's regex accepts. */
  canonical: boolean;
}

/** RFC 5952 text of an IPv6 address (lowercase, longest zero run compressed), as WHATWG URLs write it. */
export function canonicalIpv6(value: bigint): string {
  return new URL(`http://[${formatIp(6, value)}]/`).hostname.slice(1, -1);
}

/** The IP literal a normalised host names, or null for a host name. */
export function ipLiteral(host: string): IpLiteral | null {
  if (isIPv4(host)) {
    const ip = parseIp(host)!;
    return { family: 4, value: ip.value, canonical: true };
  }
  const inner = /^\[([^\]]*)\]$/.exec(host)?.[1] ?? host;
  if (inner.includes('%') || !isIPv6(inner)) return null;
  const ip = parseIp(inner)!;
  return { family: 6, value: ip.value, canonical: host.startsWith('[') && inner.toLowerCase() === canonicalIpv6(ip.value) };
}
