/**
 * The guard of SPEC §2: address ranges a sidecar must never connect to after resolving an
 * allowed name, whatever the policy says (DNS rebinding, cloud metadata, the sidecar's own
 * loopback ports). Enforced by DnsCacheConfig.resolved_address_filter: filtered addresses never
 * enter the DNS cache the DFP cluster connects from, so the address checked is the address dialled.
 */
import { formatIp, mustParseCidr, subtractAll, type Cidr } from '../util/cidr';

const GUARDED_V4 = [
  '0.0.0.0/8', // "this network", includes the unspecified address
  '10.0.0.0/8', // RFC 1918
  '100.64.0.0/10', // CGNAT, RFC 6598
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, incl. 169.254.169.254 cloud metadata
  '172.16.0.0/12', // RFC 1918
  '192.168.0.0/16', // RFC 1918
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, incl. 255.255.255.255 broadcast
];

const GUARDED_V6 = [
  '::/96', // unspecified, loopback and the deprecated IPv4-compatible form (::a.b.c.d)
  '::ffff:0:0/96', // IPv4-mapped: an AAAA record must not smuggle a v4 address in
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215): maps to anything the operator chose
  'fc00::/7', // unique-local, incl. fd00:ec2::254 (AWS metadata over IPv6)
  'fe80::/10', // link-local
  'fec0::/10', // deprecated site-local
  'ff00::/8', // multicast
];


/** The NAT64 (64:ff9b::/96, RFC 6052) form of a guarded IPv4 range. */
function nat64(v4: Cidr): Cidr {
  return { family: 6, base: (0x64ff9bn << 96n) | v4.base, prefix: 96 + v4.prefix };
}

/**
 * The ranges to filter out, minus the operator's `--guard-allow` exemptions. Exemptions apply to
 * the address family they are written in; the mapped and NAT64 spellings of an exempted IPv4
 * range stay guarded (nothing legitimate resolves to them).
 */
export function guardedRanges(exemptions: Cidr[]): Cidr[] {
  const v4 = GUARDED_V4.map(mustParseCidr);
  const v6 = [...GUARDED_V6.map(mustParseCidr), ...v4.map(nat64)];
  return subtractAll([...v4, ...v6], exemptions);
}

/** As Envoy's config.core.v3.CidrRange. */
export function toCidrRange(c: Cidr): { address_prefix: string; prefix_len: number } {
  return { address_prefix: formatIp(c.family, c.base), prefix_len: c.prefix };
}
