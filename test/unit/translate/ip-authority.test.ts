/**
 * The authority regexes of `cidrs` rules accept exactly the canonical spelling of every address in
 * the range on the listed ports, and nothing else: checked here against the CIDR arithmetic with
 * random ranges and addresses (JavaScript's regex engine agrees with RE2 on these constructs; the
 * golden test passes the same regexes through the real Envoy).
 */
import fc from 'fast-check';
import { authorityRegexes, ipv4RangeRegex } from '../../../src/translate/ip-authority';
import { cidrContainsIp, formatIp, type Cidr } from '../../../src/util/cidr';
import { canonicalIpv6 } from '../../../src/ir/ip-literal';

/** RE2's inline `(?i)` as a JavaScript flag. */
const compile = (re: string): RegExp => (re.startsWith('(?i)') ? new RegExp(re.slice(4), 'i') : new RegExp(re));
const accepts = (regexes: string[], authority: string): boolean => regexes.some((re) => compile(re).test(authority));

const v4Cidr = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })).map(([addr, prefix]): Cidr => {
  const mask = prefix === 0 ? 0n : ((1n << 32n) - 1n) & ~((1n << BigInt(32 - prefix)) - 1n);
  return { family: 4, base: BigInt(addr) & mask, prefix };
});

describe('authority regexes for IPv4 ranges', () => {
  it('accept an address exactly when the range holds it, on exactly the listed ports', () => {
    fc.assert(
      fc.property(v4Cidr, fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 255 }), fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 65535 }), (c, random, near, ports, port) => {
        // Half the addresses near the range's edges, where off-by-one mistakes live.
        const edge = Number((c.base + (1n << BigInt(32 - c.prefix)) + BigInt(near) - 128n) & 0xffffffffn);
        const regexes = authorityRegexes(c, ports);
        for (const addr of [random, edge, Number(c.base)]) {
          const inside = cidrContainsIp(c, 4, BigInt(addr));
          const text = formatIp(4, BigInt(addr));
          expect(accepts(regexes, `${text}:${port}`)).toBe(inside && ports.includes(port));
          expect(accepts(regexes, `${text}:${ports[0]}`)).toBe(inside);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('refuse other spellings of an address in the range', () => {
    const c: Cidr = { family: 4, base: 0xcb007100n, prefix: 24 }; // 203.0.113.0/24
    const regexes = authorityRegexes(c, [9090]);
    expect(accepts(regexes, '203.0.113.7:9090')).toBe(true);
    for (const spelling of ['203.0.113.07', '0313.0.113.7', '0xcb.0.113.7', '3405803783', '203.0.29447', '203.0.113.7.', ' 203.0.113.7', '203.0.113.7 ', '[203.0.113.7]']) {
      expect(accepts(regexes, `${spelling}:9090`)).toBe(false);
    }
    for (const port of ['09090', '9090 ', '+9090', '90900', '']) expect(accepts(regexes, `203.0.113.7:${port}`)).toBe(false);
    expect(accepts(regexes, '203.0.113.7')).toBe(false);
    expect(accepts(regexes, '203.0.113.7:9090,10.0.0.5:80')).toBe(false);
  });

  it('write each octet range without leading zeros', () => {
    expect(ipv4RangeRegex({ family: 4, base: 0x0a140000n, prefix: 20 })).toBe('10\\.20\\.(?:[0-9]|1[0-5])\\.(?:[0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])');
  });

  it('split long port lists so each regex stays small (Envoy refuses RE2 programs over 100)', () => {
    const regexes = authorityRegexes({ family: 4, base: 0n, prefix: 1 }, Array.from({ length: 20 }, (_, i) => 1000 + i));
    expect(regexes).toHaveLength(3);
    expect(accepts(regexes, '1.2.3.4:1019')).toBe(true);
  });
});

describe('authority regexes for IPv6 ranges', () => {
  it('accept the canonical spelling of every address in a small range, in any letter case, and nothing near it', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.integer({ min: 120, max: 128 }), fc.integer({ min: -300, max: 300 }), (addr, prefix, offset) => {
        const base = addr & ~((1n << BigInt(128 - prefix)) - 1n);
        const c: Cidr = { family: 6, base, prefix };
        const regexes = authorityRegexes(c, [443]);
        const probe = (base + BigInt(offset) + (1n << 128n)) % (1n << 128n);
        const text = canonicalIpv6(probe);
        const inside = cidrContainsIp(c, 6, probe);
        expect(accepts(regexes, `[${text}]:443`)).toBe(inside);
        expect(accepts(regexes, `[${text.toUpperCase()}]:443`)).toBe(inside);
        expect(accepts(regexes, `[${formatIp(6, probe)}]:443`)).toBe(inside && formatIp(6, probe) === text);
        expect(accepts(regexes, `${text}:443`)).toBe(false);
        expect(accepts(regexes, `[${text}]:444`)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});
