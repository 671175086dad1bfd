/**
 * The guard (SPEC §2): resolved addresses a sidecar must never dial, whatever the policy says
 * (cloud metadata, loopback, private networks, and their IPv4-mapped / NAT64 spellings), minus the
 * operator's `--guard-allow` exemptions.
 */
import { guardedRanges, toCidrRange } from '../../../src/translate/guard';
import { formatCidr, parseCidr, parseIp, type Cidr } from '../../../src/util/cidr';

function cidr(text: string): Cidr {
  const r = parseCidr(text);
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}

/** Independent containment: compare the top `prefix` bits. */
function guarded(ranges: Cidr[], ip: string): boolean {
  const parsed = parseIp(ip);
  if (!parsed) throw new Error(`bad test address ${ip}`);
  const width = parsed.family === 4 ? 32 : 128;
  return ranges.some((r) => r.family === parsed.family && parsed.value >> BigInt(width - r.prefix) === r.base >> BigInt(width - r.prefix));
}

const size = (c: Cidr): bigint => 1n << BigInt((c.family === 4 ? 32 : 128) - c.prefix);

describe('guardedRanges() without exemptions', () => {
  const ranges = guardedRanges([]);

  it.each([
    ['169.254.169.254', 'cloud metadata (link-local)'],
    ['169.254.0.1', 'link-local'],
    ['10.0.0.1', 'RFC 1918'],
    ['10.255.255.255', 'RFC 1918'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['100.64.0.1', 'CGNAT'],
    ['100.127.255.255', 'CGNAT'],
    ['172.16.0.1', 'RFC 1918'],
    ['172.31.255.255', 'RFC 1918'],
    ['192.168.1.1', 'RFC 1918'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast (SSDP)'],
    ['255.255.255.255', 'broadcast'],
    ['::', 'unspecified v6'],
    ['::1', 'loopback v6'],
    ['fd00:ec2::254', 'AWS metadata over IPv6 (unique-local)'],
    ['fc00::1', 'unique-local'],
    ['fe80::1', 'link-local v6'],
    ['ff02::1', 'multicast v6'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:169.254.169.254', 'IPv4-mapped metadata'],
    ['::ffff:10.0.0.1', 'IPv4-mapped RFC 1918'],
    ['64:ff9b::a9fe:a9fe', 'NAT64 of 169.254.169.254'],
    ['64:ff9b::127.0.0.1', 'NAT64 of loopback'],
    ['64:ff9b::10.1.2.3', 'NAT64 of RFC 1918'],
    ['64:ff9b::192.168.0.1', 'NAT64 of RFC 1918'],
    ['64:ff9b:1::1', 'local-use NAT64'],
    ['::127.0.0.1', 'deprecated IPv4-compatible loopback'],
  ])('guards %s (%s)', (ip) => {
    expect(guarded(ranges, ip)).toBe(true);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '203.0.113.7',
    '100.63.255.255', // just below CGNAT
    '100.128.0.0', // just above CGNAT
    '172.15.255.255', // just below 172.16/12
    '172.32.0.0', // just above
    '169.253.255.255',
    '11.0.0.0',
    '126.255.255.255',
    '128.0.0.0',
    '2001:4860::8888',
    '2606:4700:4700::1111',
    '64:ff9b::8.8.8.8', // NAT64 of a public address is how IPv6-only hosts reach the internet
    '2001:db8::1',
  ])('does not guard the public address %s', (ip) => {
    expect(guarded(ranges, ip)).toBe(false);
  });

  it('covers the whole IPv4-mapped space (an AAAA record cannot smuggle any v4 address in)', () => {
    expect(guarded(ranges, '::ffff:8.8.8.8')).toBe(true);
  });

  it('has no duplicate or nested ranges (the filter list stays small and exact)', () => {
    const texts = ranges.map(formatCidr);
    expect(new Set(texts).size).toBe(texts.length);
    for (const a of ranges) {
      for (const b of ranges) {
        if (a === b || a.family !== b.family) continue;
        const width = BigInt(a.family === 4 ? 32 : 128);
        const nested = a.prefix <= b.prefix && b.base >> (width - BigInt(a.prefix)) === a.base >> (width - BigInt(a.prefix));
        expect({ outer: formatCidr(a), inner: formatCidr(b), nested }).toEqual({ outer: formatCidr(a), inner: formatCidr(b), nested: false });
      }
    }
  });

  it('toCidrRange renders Envoy CidrRange', () => {
    expect(toCidrRange(cidr('169.254.0.0/16'))).toEqual({ address_prefix: '169.254.0.0', prefix_len: 16 });
    expect(toCidrRange(cidr('fe80::/10'))).toEqual({ address_prefix: 'fe80:0:0:0:0:0:0:0', prefix_len: 10 });
    expect(ranges.map(toCidrRange)).toContainEqual({ address_prefix: '169.254.0.0', prefix_len: 16 });
  });
});

describe('guardedRanges() with an exemption (serve --guard-allow 127.0.0.2/32)', () => {
  const base = guardedRanges([]);
  const ranges = guardedRanges([cidr('127.0.0.2/32')]);

  it('excludes exactly that address', () => {
    expect(guarded(ranges, '127.0.0.2')).toBe(false);
    expect(guarded(ranges, '127.0.0.1')).toBe(true);
    expect(guarded(ranges, '127.0.0.3')).toBe(true);
    expect(guarded(ranges, '127.255.255.255')).toBe(true);
    expect(guarded(ranges, '127.0.0.0')).toBe(true);
  });

  it('removes exactly one address from the v4 total and nothing from v6', () => {
    const total = (rs: Cidr[], fam: 4 | 6) => rs.filter((r) => r.family === fam).reduce((acc, r) => acc + size(r), 0n);
    expect(total(ranges, 4)).toBe(total(base, 4) - 1n);
    expect(total(ranges, 6)).toBe(total(base, 6));
  });

  it('leaves other ranges untouched', () => {
    const other = (rs: Cidr[]) => rs.filter((r) => !(r.family === 4 && r.base >> 24n === 127n)).map(formatCidr);
    expect(other(ranges)).toEqual(other(base));
  });

  it('keeps the mapped and NAT64 spellings of the exempted address guarded', () => {
    expect(guarded(ranges, '::ffff:127.0.0.2')).toBe(true);
    expect(guarded(ranges, '64:ff9b::127.0.0.2')).toBe(true);
  });

  it('an exemption for an unguarded range changes nothing', () => {
    expect(guardedRanges([cidr('8.8.8.0/24')]).map(formatCidr)).toEqual(base.map(formatCidr));
  });

  it('an IPv6 exemption applies to IPv6 only', () => {
    const v6 = guardedRanges([cidr('fd00:ec2::254/128')]);
    expect(guarded(v6, 'fd00:ec2::254')).toBe(false);
    expect(guarded(v6, 'fd00:ec2::253')).toBe(true);
    expect(guarded(v6, '169.254.169.254')).toBe(true);
  });
});
