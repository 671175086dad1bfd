/**
 * `cidrs` rules as `exitgate check` evaluates them (SPEC §2): IP literals meet only cidrs rules,
 * a deny of any applying policy wins, rules are tried in order like Envoy's routes, and only the
 * canonical spelling of an address matches (the sidecar matches the authority text).
 */
import { decide, formatDecision, type Target } from '../../../src/ir/decide';
import { parseTarget } from '../../../src/ir/target';
import { accessKeys, revokesAccess } from '../../../src/ir/revocation';
import { ipLiteral } from '../../../src/ir/ip-literal';
import { agentIrOf } from '../../support/policy-text';

const doc = (name: string, spec: string, mode = 'enforce'): string =>
  `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: ${name}, tenant: acme}\nspec:\n  agents: [bot]\n  mode: ${mode}\n${spec
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n')}\n`;

const irOf = (...docs: string[]) => agentIrOf(docs.join('---\n'), { agent: 'bot', file: 'policies/test.yaml' });

function verdict(ir: ReturnType<typeof irOf>, target: string, extra: Partial<Target> = {}): string {
  const parsed = parseTarget(target);
  if (!parsed.ok) throw new Error(parsed.reason);
  return formatDecision(decide(ir, { ...parsed.value, ...extra }));
}

const METRICS = doc(
  'infra',
  `allow:
  - name: metrics
    cidrs: ["203.0.113.0/24", "2001:db8::100/120"]
    ports: [9090]
  - name: api
    hosts: ["api.example.test"]
    cidrs: ["198.51.100.16/28"]
    ports: [8080]
    http:
      methods: [GET]
      paths: ["/v1/*"]
deny:
  - name: corner
    cidrs: ["203.0.113.128/25"]`,
);

describe('cidrs rules: exitgate check', () => {
  const ir = irOf(METRICS);

  it('builds the rules in match order: every deny before every allow', () => {
    expect(ir.ipRules.map((r) => `${r.verdict} ${r.ref.rule}`)).toEqual(['deny corner', 'allow metrics', 'allow api']);
  });

  it.each([
    ['203.0.113.7:9090', 'allow (infra/metrics)'],
    ['http://203.0.113.7:9090/anything', 'allow (infra/metrics)'],
    ['203.0.113.0:9090', 'allow (infra/metrics)'],
    ['203.0.113.127:9090', 'allow (infra/metrics)'],
    ['203.0.113.128:9090', 'deny (infra/corner)'],
    ['203.0.113.255:9090', 'deny (infra/corner)'],
    ['203.0.114.1:9090', 'deny (IP literal matches no rule)'],
    ['203.0.113.7:9091', 'deny (IP literal matches no rule)'],
    ['[2001:db8::1ff]:9090', 'allow (infra/metrics)'],
    ['[2001:DB8::1FF]:9090', 'allow (infra/metrics)'],
    ['[2001:db8::200]:9090', 'deny (IP literal matches no rule)'],
    ['[2001:db8:0::1ff]:9090', 'deny (IP literal not in canonical form matches no rule)'],
    ['[2001:0db8::1ff]:9090', 'deny (IP literal not in canonical form matches no rule)'],
    ['http://203.0.113.7/', 'deny (an IP destination must name its port)'],
    ['https://203.0.113.7:9090/', 'allow (infra/metrics)'],
  ])('%s -> %s', (target, expected) => {
    expect(verdict(ir, target)).toBe(expected);
  });

  it('a trailing dot is stripped, as Envoy strips it, and the address still matches', () => {
    expect(verdict(ir, '203.0.113.7.:9090')).toBe('allow (infra/metrics)');
  });

  it('other spellings of an allowed address match nothing', () => {
    for (const spelling of ['3405803783', '0xcb.0.113.7', '0313.0.113.7', '203.0.29447', '203.0.113.07', '[::ffff:203.0.113.7]', '[::ffff:cb00:7107]']) {
      expect(verdict(ir, `${spelling}:9090`)).toMatch(/^deny /);
    }
    expect(verdict(ir, '203.0.113.7:09090')).toBe('deny (the port is not written in its plain decimal form, which matches no rule)');
  });

  it('http rules narrow an IP rule as they narrow a host rule; CONNECT cannot carry them', () => {
    expect(verdict(ir, 'http://198.51.100.20:8080/v1/items')).toBe('allow (infra/api)');
    expect(verdict(ir, 'http://198.51.100.20:8080/v1/items', { method: 'POST' })).toBe('deny (no rule matches this method and path)');
    expect(verdict(ir, 'http://198.51.100.20:8080/admin')).toBe('deny (no rule matches this method and path)');
    expect(verdict(ir, '198.51.100.20:8080')).toMatch(/^deny \(a CONNECT tunnel cannot carry L7 rules/);
    // The same rule's host part: a name never matches a cidr and an address never a host.
    expect(verdict(ir, 'http://api.example.test:8080/v1/x')).toBe('allow (infra/api)');
  });

  it('a later allow rule still applies when an earlier one does not fit the request', () => {
    const two = irOf(
      doc('a', `allow:\n  - name: narrow\n    cidrs: ["198.51.100.0/24"]\n    ports: [8080]\n    http: {methods: [GET]}`),
      doc('b', `allow:\n  - name: wide\n    cidrs: ["198.51.100.0/24"]\n    ports: [8080]`),
    );
    expect(verdict(two, 'http://198.51.100.1:8080/', { method: 'GET' })).toBe('allow (a/narrow)');
    expect(verdict(two, 'http://198.51.100.1:8080/', { method: 'POST' })).toBe('allow (b/wide)');
    expect(verdict(two, '198.51.100.1:8080')).toBe('allow (b/wide)');
  });

  it('a deny of another policy wins over an allow, on all ports when it names none', () => {
    const two = irOf(METRICS, doc('zz-lockdown', `deny:\n  - name: all-203\n    cidrs: ["203.0.113.0/24"]`));
    expect(verdict(two, '203.0.113.7:9090')).toBe('deny (zz-lockdown/all-203)');
  });

  it('host rules never match IP literals, and cidrs rules never match names', () => {
    const hostsOnly = irOf(doc('h', `allow:\n  - name: h\n    hosts: ["*.example.test"]\n    ports: [443]`));
    expect(verdict(hostsOnly, '203.0.113.7:443')).toBe('deny (IP literal matches no rule)');
    expect(verdict(ir, 'metrics.example.test:9090')).toBe('deny (no rule matches)');
  });

  it('dry-run turns an IP deny into would-deny', () => {
    const dry = irOf(doc('infra', `allow:\n  - name: m\n    cidrs: ["203.0.113.0/24"]\n    ports: [9090]\ndeny:\n  - name: c\n    cidrs: ["203.0.113.128/25"]`, 'dry-run'));
    expect(verdict(dry, '203.0.113.200:9090')).toBe('would-deny (infra/c)');
    expect(verdict(dry, '203.0.113.7:9090')).toBe('allow (infra/m)');
  });
});

describe('ipLiteral', () => {
  it('recognises canonical and other spellings', () => {
    expect(ipLiteral('203.0.113.7')).toMatchObject({ family: 4, canonical: true });
    expect(ipLiteral('[2001:db8::7]')).toMatchObject({ family: 6, canonical: true });
    expect(ipLiteral('2001:db8::7')).toMatchObject({ family: 6, canonical: false });
    expect(ipLiteral('[2001:db8:0:0::7]')).toMatchObject({ family: 6, canonical: false });
    expect(ipLiteral('[fe80::1%eth0]')).toBeNull();
    expect(ipLiteral('example.test')).toBeNull();
    expect(ipLiteral('203.0.113.07')).toBeNull();
  });
});

describe('revocation of IP rules', () => {
  it('removing a range or adding a deny revokes; adding a range does not', () => {
    const before = accessKeys(irOf(doc('p', `allow:\n  - name: m\n    cidrs: ["203.0.113.0/24"]\n    ports: [9090]`)));
    const wider = accessKeys(irOf(doc('p', `allow:\n  - name: m\n    cidrs: ["203.0.113.0/24"]\n    ports: [9090]\n  - name: n\n    cidrs: ["198.51.100.0/24"]\n    ports: [9090]`)));
    const narrower = accessKeys(irOf(doc('p', `allow:\n  - name: m\n    cidrs: ["203.0.113.0/25"]\n    ports: [9090]`)));
    const denied = accessKeys(irOf(doc('p', `allow:\n  - name: m\n    cidrs: ["203.0.113.0/24"]\n    ports: [9090]\ndeny:\n  - name: d\n    cidrs: ["203.0.113.9"]`)));
    expect(revokesAccess(before, wider)).toBe(false);
    expect(revokesAccess(before, narrower)).toBe(true);
    expect(revokesAccess(before, denied)).toBe(true);
  });
});
