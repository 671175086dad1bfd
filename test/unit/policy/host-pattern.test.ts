/**
 * Host patterns (SPEC §2): what a policy author may write, how a requested host is normalised,
 * and what a pattern matches. These functions decide every verdict, so the tests pin the exact
 * boundaries users rely on (`*.example.com` never matches `example.com` nor `xexample.com`).
 */
import fc from 'fast-check';
import {
  dnsNameProblem,
  formatHostPattern,
  normaliseHost,
  parseHostPattern,
  patternCovers,
  patternMatches,
  specificity,
  type HostPattern,
} from '../../../src/policy/host-pattern';

const exact = (name: string): HostPattern => ({ kind: 'exact', name });
const wild = (suffix: string): HostPattern => ({ kind: 'wildcard', suffix });

function parsed(text: string): HostPattern {
  const r = parseHostPattern(text);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(text)} to be valid, got: ${r.reason}`);
  return r.value;
}

function reason(text: string): string {
  const r = parseHostPattern(text);
  if (r.ok) throw new Error(`expected ${JSON.stringify(text)} to be rejected, got ${JSON.stringify(r.value)}`);
  return r.reason;
}

describe('parseHostPattern: valid patterns', () => {
  it.each([
    ['api.example.com', exact('api.example.com')],
    ['example.com', exact('example.com')],
    ['localhost', exact('localhost')],
    ['a-b.example.com', exact('a-b.example.com')],
    ['xn--bcher-kva.example', exact('xn--bcher-kva.example')],
    ['a1.b2.test', exact('a1.b2.test')],
    ['*.example.com', wild('example.com')],
    ['*.logs.datadoghq.test', wild('logs.datadoghq.test')],
    ['*.com', wild('com')],
  ])('%s', (text, expected) => {
    expect(parseHostPattern(text)).toEqual({ ok: true, value: expected });
  });

  it('round-trips through formatHostPattern', () => {
    for (const t of ['api.example.com', '*.example.com', '*.a.b.c.test']) expect(formatHostPattern(parsed(t))).toBe(t);
  });

  it('accepts a 63-character label and a 253-character name', () => {
    const label63 = 'a'.repeat(63);
    expect(parseHostPattern(`${label63}.test`).ok).toBe(true);
    // 63 + 63 + 63 + 61 characters and 3 dots: exactly 253
    const name253 = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.');
    expect(name253.length).toBe(253);
    expect(parseHostPattern(name253).ok).toBe(true);
  });
});

describe('parseHostPattern: wildcard forms other than a leading "*." are refused', () => {
  it.each(['*', '*.*.example.com', 'a.*.example.com', '**.example.com', '*example.com', 'api.*', 'api*.example.com', '*.', '*.example.*'])(
    '%s',
    (text) => {
      expect(reason(text)).toMatch(/is not a valid host pattern/);
    },
  );
});

describe('parseHostPattern: invalid names, with reasons that say what to do', () => {
  it('uppercase: suggests the lowercase spelling', () => {
    expect(reason('API.Example.com')).toBe('must be lowercase: "api.example.com"');
    expect(reason('*.Example.COM')).toMatch(/must be lowercase: "example\.com"/);
  });

  it('trailing dot is refused', () => {
    expect(reason('example.com.')).toMatch(/must not end with a dot/);
    expect(reason('*.example.com.')).toMatch(/must not end with a dot/);
  });

  it('IDN (U-label): suggests the A-label', () => {
    expect(reason('bücher.example')).toBe('must be written as an A-label: "xn--bcher-kva.example"');
    expect(reason('*.bücher.example')).toMatch(/A-label: "xn--bcher-kva\.example"/);
    expect(reason('Bücher.example')).toMatch(/A-label: "xn--bcher-kva\.example"/);
  });

  it('empty names and empty labels are refused', () => {
    expect(reason('')).toMatch(/empty/);
    expect(parseHostPattern('a..com').ok).toBe(false);
    expect(parseHostPattern('.a.com').ok).toBe(false);
  });

  it('labels longer than 63 characters and names longer than 253 are refused', () => {
    expect(parseHostPattern(`${'a'.repeat(64)}.test`).ok).toBe(false);
    const name254 = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(62)].join('.');
    expect(name254.length).toBe(254);
    expect(reason(name254)).toMatch(/longer than 253/);
    expect(parseHostPattern(`*.${'a'.repeat(64)}.test`).ok).toBe(false);
  });

  it('hyphen rules: no leading or trailing hyphen in a label; inner hyphens are fine', () => {
    expect(parseHostPattern('-a.test').ok).toBe(false);
    expect(parseHostPattern('a-.test').ok).toBe(false);
    expect(parseHostPattern('a.-b.test').ok).toBe(false);
    expect(parseHostPattern('a.b-.test').ok).toBe(false);
    expect(parseHostPattern('*.-b.test').ok).toBe(false);
    expect(parseHostPattern('a-b.test').ok).toBe(true);
    expect(parseHostPattern('a--b.test').ok).toBe(true);
  });

  it.each(['_dmarc.example.com', 'a_b.test', 'a b.test', 'a/b.test', 'a.test:443', 'user@a.test', 'a\\b.test', ' a.test'])(
    'characters outside [a-z0-9-.] are refused: %j',
    (text) => {
      expect(parseHostPattern(text).ok).toBe(false);
    },
  );
});

describe('parseHostPattern: IP literals in every spelling are refused (they belong in cidrs)', () => {
  it.each([
    '1.2.3.4', // dotted quad
    '127.0.0.1',
    '127.1', // short form: inet_aton reads 127.0.0.1
    '0x7f000001', // hex integer
    '0x7F000001',
    '017700000001', // octal integer
    '2130706433', // decimal integer
    '0x7f.1', // mixed
    '1.2.3.4.5', // ends in a numeric label: resolvers/browsers treat it as an address, never as a name
    '::1',
    '[::1]',
    '[1.2.3.4]',
    '::ffff:127.0.0.1',
    '2001:db8::1',
    'fe80::1',
    'a.b.0x',
  ])('%s', (text) => {
    const r = parseHostPattern(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/IP|numeric|lowercase/);
  });

  it('says where IP destinations go', () => {
    expect(reason('1.2.3.4')).toMatch(/IP literal.*cidrs/);
    expect(reason('::1')).toMatch(/IP literal.*cidrs/);
    expect(reason('[::1]')).toMatch(/IP literal.*cidrs/);
    expect(reason('127.1')).toMatch(/numeric label.*cidrs/);
    expect(reason('0x7f000001')).toMatch(/numeric label.*cidrs/);
    expect(reason('017700000001')).toMatch(/numeric label.*cidrs/);
  });

  it('refuses IP literals after "*." too', () => {
    expect(reason('*.127.0.0.1')).toMatch(/IP literal/);
    expect(reason('*.1.2.3')).toMatch(/numeric label/);
  });

  it('a numeric label that is not the last one is a normal DNS label', () => {
    expect(parseHostPattern('1.2.3.test').ok).toBe(true);
    expect(parseHostPattern('0x7f.test').ok).toBe(true);
    expect(parseHostPattern('a.0xg').ok).toBe(true); // not hex, so not a number
  });
});

describe('dnsNameProblem', () => {
  it('returns null for a valid name and a reason otherwise', () => {
    expect(dnsNameProblem('api.example.com')).toBeNull();
    expect(dnsNameProblem('api.example.com.')).not.toBeNull();
    expect(dnsNameProblem('API.example.com')).not.toBeNull();
  });
});

describe('normaliseHost', () => {
  it.each([
    ['api.example.com', 'api.example.com'],
    ['API.Example.COM', 'api.example.com'],
    ['api.example.com.', 'api.example.com'],
    ['API.EXAMPLE.COM.', 'api.example.com'],
    ['[::1]', '[::1]'],
  ])('%s -> %s', (input, out) => {
    expect(normaliseHost(input)).toBe(out);
  });

  it('removes one trailing dot only', () => {
    expect(normaliseHost('a.test..')).toBe('a.test.');
  });

  it('is idempotent on valid names', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-zA-Z0-9]{1,5}(\.[a-zA-Z0-9]{1,5}){0,3}\.?$/), (h) => {
        const once = normaliseHost(h);
        expect(normaliseHost(once)).toBe(once);
        expect(once).toBe(once.toLowerCase());
        expect(once.endsWith('.')).toBe(false);
      }),
    );
  });
});

describe('patternMatches', () => {
  const w = parsed('*.example.com');

  it('*.example.com matches one or more extra labels', () => {
    expect(patternMatches(w, 'a.example.com')).toBe(true);
    expect(patternMatches(w, 'a.b.example.com')).toBe(true);
    expect(patternMatches(w, 'x-y.a.b.c.example.com')).toBe(true);
  });

  it('*.example.com never matches example.com itself', () => {
    expect(patternMatches(w, 'example.com')).toBe(false);
  });

  it('*.example.com never matches a name that merely ends with the same characters', () => {
    expect(patternMatches(w, 'xexample.com')).toBe(false);
    expect(patternMatches(w, 'a.xexample.com')).toBe(false);
    expect(patternMatches(w, 'example.com.evil.test')).toBe(false);
    expect(patternMatches(w, 'aexample.com')).toBe(false);
  });

  it('*.example.com does not match the bare separator form ".example.com"', () => {
    expect(patternMatches(w, '.example.com')).toBe(false);
  });

  it('exact patterns match only the same name', () => {
    const e = parsed('api.example.com');
    expect(patternMatches(e, 'api.example.com')).toBe(true);
    expect(patternMatches(e, 'x.api.example.com')).toBe(false);
    expect(patternMatches(e, 'example.com')).toBe(false);
    expect(patternMatches(e, 'api.example.co')).toBe(false);
    expect(patternMatches(e, 'api.example.com.evil.test')).toBe(false);
  });

  it('expects a normalised host (uppercase/trailing-dot variants match after normaliseHost)', () => {
    expect(patternMatches(w, normaliseHost('A.Example.COM.'))).toBe(true);
    expect(patternMatches(parsed('api.example.com'), normaliseHost('API.example.com.'))).toBe(true);
  });

  it('agrees with a label-based reading of the SPEC on random names', () => {
    const label = fc.constantFrom('a', 'b', 'ab', 'ba', 'x');
    const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
    fc.assert(
      fc.property(fc.boolean(), name, name, (isWild, p, h) => {
        const pat: HostPattern = isWild ? wild(p) : exact(p);
        const hl = h.split('.');
        const pl = p.split('.');
        const expected = isWild ? hl.length > pl.length && hl.slice(hl.length - pl.length).join('.') === p : h === p;
        expect(patternMatches(pat, h)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('patternCovers', () => {
  it.each([
    ['*.example.com', '*.example.com', true],
    ['*.example.com', '*.a.example.com', true],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'a.b.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', '*.xexample.com', false],
    ['*.example.com', 'xexample.com', false],
    ['*.a.example.com', '*.example.com', false],
    ['a.example.com', '*.example.com', false],
    ['a.example.com', 'a.example.com', true],
    ['a.example.com', 'b.example.com', false],
  ])('%s covers %s: %s', (outer, inner, expected) => {
    expect(patternCovers(parsed(outer), parsed(inner))).toBe(expected);
  });

  // Sound: covers(o, i) => every host i matches, o matches. Complete: !covers(o, i) => a witness
  // host matched by i and not by o exists ("zz" is a label outside the alphabet).
  const label = fc.constantFrom('a', 'b', 'c');
  const name = fc.array(label, { minLength: 1, maxLength: 3 }).map((ls) => ls.join('.'));
  const pattern = fc.tuple(fc.boolean(), name).map(([w, n]): HostPattern => (w ? wild(n) : exact(n)));
  const host = fc.array(fc.constantFrom('a', 'b', 'c', 'zz'), { minLength: 1, maxLength: 5 }).map((ls) => ls.join('.'));

  it('is sound: when outer covers inner, every host inner matches is matched by outer', () => {
    fc.assert(
      fc.property(pattern, pattern, host, (o, i, h) => {
        if (patternCovers(o, i) && patternMatches(i, h)) expect(patternMatches(o, h)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('is complete: when outer does not cover inner, some host is matched by inner only', () => {
    fc.assert(
      fc.property(pattern, pattern, (o, i) => {
        if (patternCovers(o, i)) return;
        const witness = i.kind === 'exact' ? i.name : `zz.${i.suffix}`;
        expect(patternMatches(i, witness)).toBe(true);
        expect(patternMatches(o, witness)).toBe(false);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('specificity (Envoy virtual-host selection order)', () => {
  it('exact beats any wildcard; longer wildcard suffix beats shorter', () => {
    expect(specificity(parsed('a.example.com'))).toBeGreaterThan(specificity(parsed('*.b.c.d.example.com')));
    expect(specificity(parsed('*.a.example.com'))).toBeGreaterThan(specificity(parsed('*.example.com')));
  });
});
