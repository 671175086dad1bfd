/**
 * CIDR parsing, formatting and subtraction: the arithmetic behind `serve --guard-allow` (a hole
 * cut into a guarded range). A wrong subtraction either leaves an internal range reachable or
 * blocks what the operator exempted, so results are checked against node's own BlockList.
 */
import { BlockList, SocketAddress } from 'node:net';
import fc from 'fast-check';
import {
  cidrContains,
  cidrContainsIp,
  formatCidr,
  formatIp,
  parseCidr,
  parseIp,
  subtractAll,
  subtractCidr,
  type Cidr,
} from '../../../src/util/cidr';

function cidr(text: string): Cidr {
  const r = parseCidr(text);
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}

const v4 = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
const size = (c: Cidr): bigint => 1n << BigInt((c.family === 4 ? 32 : 128) - c.prefix);

function blockListOf(ranges: Cidr[]): BlockList {
  const bl = new BlockList();
  for (const r of ranges) bl.addSubnet(formatIp(r.family, r.base), r.prefix, r.family === 4 ? 'ipv4' : 'ipv6');
  return bl;
}

describe('parseIp / formatIp', () => {
  it('parses IPv4', () => {
    expect(parseIp('0.0.0.0')).toEqual({ family: 4, value: 0n });
    expect(parseIp('127.0.0.1')).toEqual({ family: 4, value: 0x7f000001n });
    expect(parseIp('255.255.255.255')).toEqual({ family: 4, value: 0xffffffffn });
  });

  it('parses IPv6 in all spellings', () => {
    expect(parseIp('::')).toEqual({ family: 6, value: 0n });
    expect(parseIp('::1')).toEqual({ family: 6, value: 1n });
    expect(parseIp('1::')).toEqual({ family: 6, value: 1n << 112n });
    expect(parseIp('2001:db8::1')).toEqual({ family: 6, value: (0x20010db8n << 96n) | 1n });
    expect(parseIp('2001:DB8::1')).toEqual(parseIp('2001:db8::1'));
    expect(parseIp('::ffff:127.0.0.1')).toEqual({ family: 6, value: (0xffffn << 32n) | 0x7f000001n });
    expect(parseIp('::ffff:7f00:1')).toEqual(parseIp('::ffff:127.0.0.1'));
    expect(parseIp('64:ff9b::169.254.169.254')).toEqual({ family: 6, value: (0x64ff9bn << 96n) | 0xa9fea9fen });
    expect(parseIp('1:2:3:4:5:6:7:8')).toEqual({ family: 6, value: 0x00010002000300040005000600070008n });
  });

  it('refuses what is not an address (no inet_aton shorthands)', () => {
    for (const bad of ['', '1.2.3', '127.1', '0x7f000001', '1.2.3.256', '01.2.3.4', 'a.test', ':::', '1::2::3', '[::1]', '1.2.3.4/32']) {
      expect(parseIp(bad)).toBeNull();
    }
  });

  it('formats IPv4 and IPv6 (uncompressed groups)', () => {
    expect(formatIp(4, 0xa9fea9fen)).toBe('169.254.169.254');
    expect(formatIp(6, 1n)).toBe('0:0:0:0:0:0:0:1');
    expect(formatIp(6, (0x20010db8n << 96n) | 1n)).toBe('2001:db8:0:0:0:0:0:1');
  });

  it('round-trips random IPv4 addresses', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), (n) => {
        expect(formatIp(4, BigInt(n))).toBe(v4(n));
        expect(parseIp(v4(n))).toEqual({ family: 4, value: BigInt(n) });
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips random IPv6 addresses, also in node\'s compressed / dotted-quad spelling', () => {
    const group = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.nat({ max: 0xffff }));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
        const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
        const long = formatIp(6, value);
        expect(parseIp(long)).toEqual({ family: 6, value });
        const canonical = new SocketAddress({ address: long, family: 'ipv6' }).address; // e.g. ::ffff:1.2.3.4, 2001:db8::1
        expect(parseIp(canonical)).toEqual({ family: 6, value });
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseCidr / formatCidr', () => {
  it('parses v4 and v6 ranges; a bare address is a host route', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ ok: true, value: { family: 4, base: 0x0a000000n, prefix: 8 } });
    expect(parseCidr('127.0.0.2')).toEqual({ ok: true, value: { family: 4, base: 0x7f000002n, prefix: 32 } });
    expect(parseCidr('::1')).toEqual({ ok: true, value: { family: 6, base: 1n, prefix: 128 } });
    expect(parseCidr('fd00::/8')).toEqual({ ok: true, value: { family: 6, base: 0xfdn << 120n, prefix: 8 } });
    expect(parseCidr('0.0.0.0/0')).toEqual({ ok: true, value: { family: 4, base: 0n, prefix: 0 } });
    expect(parseCidr('::/0')).toEqual({ ok: true, value: { family: 6, base: 0n, prefix: 0 } });
  });

  it('refuses host bits and suggests the network', () => {
    const r = parseCidr('10.1.0.0/8');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe('"10.1.0.0/8" has host bits set; did you mean 10.0.0.0/8?');
    expect(parseCidr('fd00::1/64').ok).toBe(false);
  });

  it.each(['1.2.3.4/33', '::/129', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', '10.0.0.0/x', 'a.test/8', '/8', '', '127.1/8'])('refuses %j', (text) => {
    expect(parseCidr(text).ok).toBe(false);
  });

  it('formats as address/prefix and round-trips', () => {
    for (const t of ['10.0.0.0/8', '169.254.169.254/32', '0.0.0.0/0', '100.64.0.0/10']) expect(formatCidr(cidr(t))).toBe(t);
    expect(formatCidr(cidr('fe80::/10'))).toBe('fe80:0:0:0:0:0:0:0/10');
    expect(cidr(formatCidr(cidr('2001:db8::/32')))).toEqual(cidr('2001:db8::/32'));
  });
});

describe('containment', () => {
  it('cidrContains', () => {
    expect(cidrContains(cidr('10.0.0.0/8'), cidr('10.1.0.0/16'))).toBe(true);
    expect(cidrContains(cidr('10.0.0.0/8'), cidr('10.0.0.0/8'))).toBe(true);
    expect(cidrContains(cidr('10.1.0.0/16'), cidr('10.0.0.0/8'))).toBe(false);
    expect(cidrContains(cidr('10.0.0.0/8'), cidr('11.0.0.0/8'))).toBe(false);
    expect(cidrContains(cidr('0.0.0.0/0'), cidr('::/128'))).toBe(false); // families never mix
  });

  it('cidrContainsIp', () => {
    const ten = cidr('10.0.0.0/8');
    expect(cidrContainsIp(ten, 4, 0x0a000001n)).toBe(true);
    expect(cidrContainsIp(ten, 4, 0x0b000000n)).toBe(false);
    expect(cidrContainsIp(ten, 4, 0x09ffffffn)).toBe(false);
    expect(cidrContainsIp(ten, 6, 0x0a000001n)).toBe(false);
  });
});

describe('subtractCidr', () => {
  it('a /32 out of a /8 leaves 24 ranges (one per prefix /9../32) covering exactly the rest', () => {
    const range = cidr('10.0.0.0/8');
    const hole = cidr('10.20.30.40/32');
    const rest = subtractCidr(range, hole);
    expect(rest).toHaveLength(24);
    expect(rest.map((c) => c.prefix).sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i + 9));
    // disjoint and complete: sizes add up to 2^24 - 1, and each range lies inside the /8
    expect(rest.reduce((acc, c) => acc + size(c), 0n)).toBe((1n << 24n) - 1n);
    for (const c of rest) expect(cidrContains(range, c)).toBe(true);
    for (const c of rest) expect(cidrContainsIp(c, 4, hole.base)).toBe(false);
    // in address order
    const bases = rest.map((c) => c.base);
    expect([...bases].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(bases);
  });

  it('covers exactly range minus hole, checked against node BlockList on random addresses', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffff }), fc.array(fc.nat({ max: 0xffffffff }), { minLength: 20, maxLength: 20 }), fc.array(fc.nat({ max: 0xffffff }), { minLength: 20, maxLength: 20 }), (holeLow, anywhere, inside) => {
        const range = cidr('10.0.0.0/8');
        const holeIp = 0x0a000000 + holeLow;
        const rest = subtractCidr(range, cidr(`${v4(holeIp)}/32`));
        expect(rest).toHaveLength(24);
        const bl = blockListOf(rest);
        const samples = [...anywhere, ...inside.map((n) => 0x0a000000 + n), holeIp, holeIp - 1, holeIp + 1, 0x0a000000, 0x0affffff, 0x09ffffff, 0x0b000000];
        for (const n of samples) {
          if (n < 0 || n > 0xffffffff) continue;
          const expected = n >>> 24 === 10 && n !== holeIp;
          expect({ ip: v4(n), covered: bl.check(v4(n), 'ipv4') }).toEqual({ ip: v4(n), covered: expected });
        }
      }),
      { numRuns: 300 },
    );
  });

  it('random range and hole (any prefixes): covered = in range and not in hole', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), fc.array(fc.nat({ max: 0xffffffff }), { minLength: 10, maxLength: 10 }), (a, pa, b, pb, probes) => {
        const mask = (p: number) => (p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0);
        const range: Cidr = { family: 4, base: BigInt((a & mask(pa)) >>> 0), prefix: pa };
        const hole: Cidr = { family: 4, base: BigInt((b & mask(pb)) >>> 0), prefix: pb };
        const rest = subtractCidr(range, hole);
        // disjoint: total size equals the size of the difference
        const overlap = cidrContains(hole, range) ? size(range) : cidrContains(range, hole) ? size(hole) : 0n;
        expect(rest.reduce((acc, c) => acc + size(c), 0n)).toBe(size(range) - overlap);
        const bl = blockListOf(rest);
        for (const n of [...probes, a, b]) {
          const inRange = ((n & mask(pa)) >>> 0) === Number(range.base);
          const inHole = ((n & mask(pb)) >>> 0) === Number(hole.base);
          expect(bl.check(v4(n), 'ipv4')).toBe(inRange && !inHole);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('a hole outside the range leaves it whole; a hole covering it removes it', () => {
    expect(subtractCidr(cidr('10.0.0.0/8'), cidr('11.0.0.0/8'))).toEqual([cidr('10.0.0.0/8')]);
    expect(subtractCidr(cidr('10.1.0.0/16'), cidr('10.0.0.0/8'))).toEqual([]);
    expect(subtractCidr(cidr('10.0.0.0/8'), cidr('::/0'))).toEqual([cidr('10.0.0.0/8')]); // other family
  });

  it('works for IPv6: a /128 out of a /96', () => {
    const rest = subtractCidr(cidr('::ffff:0:0/96'), cidr('::ffff:7f00:2/128'));
    expect(rest).toHaveLength(32);
    expect(rest.reduce((acc, c) => acc + size(c), 0n)).toBe((1n << 32n) - 1n);
    const hole = parseIp('::ffff:127.0.0.2')!.value;
    expect(rest.some((c) => cidrContainsIp(c, 6, hole))).toBe(false);
    expect(rest.some((c) => cidrContainsIp(c, 6, parseIp('::ffff:127.0.0.1')!.value))).toBe(true);
  });

  it('subtractAll applies every hole to every range', () => {
    const rest = subtractAll([cidr('10.0.0.0/8'), cidr('127.0.0.0/8')], [cidr('10.0.0.0/9'), cidr('127.0.0.1/32')]);
    const bl = blockListOf(rest);
    expect(bl.check('10.1.2.3', 'ipv4')).toBe(false);
    expect(bl.check('10.200.0.1', 'ipv4')).toBe(true);
    expect(bl.check('127.0.0.1', 'ipv4')).toBe(false);
    expect(bl.check('127.0.0.2', 'ipv4')).toBe(true);
    expect(subtractAll([cidr('10.0.0.0/8')], [])).toEqual([cidr('10.0.0.0/8')]);
  });
});
