/**
 * The per-agent IR and its decision table (SPEC §2 semantics). Envoy evaluates the table as
 * virtual hosts (most specific match wins); decide() evaluates it the same way. The property test
 * at the end checks decide() against a naive reading of the SPEC text, so the table construction
 * (deny rows, covered allows, ports) is proven to implement the SPEC, not just itself.
 */
import fc from 'fast-check';
import { egressPolicySchema, type EgressPolicy } from '../../../src/policy/schema';
import type { PolicySet } from '../../../src/policy/documents';
import { applyingPolicies, buildAgentIr } from '../../../src/ir/build-ir';
import { buildDecisionTable, patternKey } from '../../../src/ir/decision-table';
import { decide, formatDecision } from '../../../src/ir/decide';
import { formatRef, type AgentIr } from '../../../src/ir/agent-ir';
import { formatHostPattern } from '../../../src/policy/host-pattern';
import { policySetOf } from '../../support/policy-text';

const setFromYaml = (text: string): PolicySet => policySetOf(text, 'policies/test.yaml');

const doc = (name: string, tenant: string, spec: string): string =>
  `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: ${name}, tenant: ${tenant}}\nspec:\n${spec
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n')}\n`;

const check = (ir: AgentIr, host: string, port: number): string => formatDecision(decide(ir, { host, port }));

describe('buildAgentIr: which policies apply', () => {
  const set = setFromYaml(
    [
      doc('oncall-observability', 'acme', `agents: [oncall-assistant]\nallow:\n  - name: datadog\n    hosts: [api.datadoghq.test, "*.logs.datadoghq.test"]\n    ports: [443]`),
      doc('everyone', 'acme', `agents: ["*"]\nallow:\n  - name: docs\n    hosts: [docs.example.test]\ndeny:\n  - name: no-paste\n    hosts: ["*.pastebin.test"]`),
      doc('coder-only', 'acme', `agents: [coder]\nallow:\n  - name: github\n    hosts: [api.github.test]`),
      doc('globex-all', 'globex', `agents: ["*", oncall-assistant]\nallow:\n  - name: everything\n    hosts: ["*.test"]\ndeny:\n  - name: no-docs\n    hosts: [docs.example.test]`),
      doc('paste-ok', 'acme', `agents: [oncall-assistant]\nallow:\n  - name: paste\n    hosts: [www.pastebin.test, pastebin.test]`),
    ].join('---\n'),
  );
  const ir = buildAgentIr(set, 'acme', 'oncall-assistant');

  it('lists the applying policies (naming the agent or "*", same tenant), sorted', () => {
    expect(ir.tenant).toBe('acme');
    expect(ir.agent).toBe('oncall-assistant');
    expect(ir.policies).toEqual(['everyone', 'oncall-observability', 'paste-ok']);
    expect(applyingPolicies(set, 'acme', 'coder').map((p) => p.metadata.name)).toEqual(['coder-only', 'everyone']);
    expect(applyingPolicies(set, 'globex', 'anyone').map((p) => p.metadata.name)).toEqual(['globex-all']);
    expect(applyingPolicies(set, 'initech', 'oncall-assistant')).toEqual([]);
  });

  it('the allow set is the union of the allow rules of every applying policy', () => {
    expect(check(ir, 'api.datadoghq.test', 443)).toBe('allow (oncall-observability/datadog)');
    expect(check(ir, 'x.logs.datadoghq.test', 443)).toBe('allow (oncall-observability/datadog)');
    expect(check(ir, 'docs.example.test', 443)).toBe('allow (everyone/docs)');
  });

  it("other agents' and other tenants' policies are ignored", () => {
    expect(check(ir, 'api.github.test', 443)).toBe('deny (no rule matches)'); // coder-only
    expect(check(ir, 'anything.test', 443)).toBe('deny (no rule matches)'); // globex-all allow
    // globex-all's deny of docs.example.test does not apply to acme either
    expect(check(ir, 'docs.example.test', 443)).toBe('allow (everyone/docs)');
    const coder = buildAgentIr(set, 'acme', 'coder');
    expect(check(coder, 'api.github.test', 443)).toBe('allow (coder-only/github)');
    expect(check(coder, 'api.datadoghq.test', 443)).toBe('deny (no rule matches)');
  });

  it('a deny rule of any applying policy wins over an allow of another policy', () => {
    expect(check(ir, 'www.pastebin.test', 443)).toBe('deny (everyone/no-paste)');
    // *.pastebin.test never matches pastebin.test itself, so that allow stands
    expect(check(ir, 'pastebin.test', 443)).toBe('allow (paste-ok/paste)');
  });

  it('default deny says why', () => {
    const d = decide(ir, { host: 'unknown.test', port: 443 });
    expect(d).toEqual({ verdict: 'deny', reason: 'no rule matches' });
    expect(decide(ir, { host: '127.0.0.1', port: 443 })).toEqual({ verdict: 'deny', reason: 'IP literal matches no rule' });
    expect(decide(ir, { host: '[::1]', port: 443 }).reason).toBe('IP literal matches no rule');
  });

  it('attribution: allow and rule-based deny decisions carry the rule, default deny does not', () => {
    expect(decide(ir, { host: 'api.datadoghq.test', port: 443 })).toMatchObject({
      verdict: 'allow',
      ref: { policy: 'oncall-observability', rule: 'datadog' },
      reason: 'allowed by oncall-observability/datadog',
    });
    expect(decide(ir, { host: 'a.pastebin.test', port: 443 })).toMatchObject({
      verdict: 'deny',
      ref: { policy: 'everyone', rule: 'no-paste' },
      reason: 'denied by everyone/no-paste',
    });
    expect(decide(ir, { host: 'nope.test', port: 443 }).ref).toBeUndefined();
  });

  it('hosts are matched after normalisation (lowercase, trailing dot removed)', () => {
    expect(check(ir, 'API.DataDogHQ.test', 443)).toBe('allow (oncall-observability/datadog)');
    expect(check(ir, 'api.datadoghq.test.', 443)).toBe('allow (oncall-observability/datadog)');
    expect(check(ir, 'WWW.PASTEBIN.TEST.', 443)).toBe('deny (everyone/no-paste)');
  });

  it('a wildcard never matches its own suffix nor a look-alike', () => {
    expect(check(ir, 'logs.datadoghq.test', 443)).toBe('deny (no rule matches)');
    expect(check(ir, 'xlogs.datadoghq.test', 443)).toBe('deny (no rule matches)');
    expect(check(ir, 'a.b.logs.datadoghq.test', 443)).toBe('allow (oncall-observability/datadog)');
  });
});

describe('ports', () => {
  const set = setFromYaml(
    [
      doc(
        'p',
        'acme',
        `agents: [bot]\nallow:\n  - name: default-port\n    hosts: [a.test]\n  - name: web\n    hosts: [b.test]\n    ports: [80, 8443]\ndeny:\n  - name: no-plain\n    hosts: ["*.c.test"]\n    ports: [80]\n  - name: never\n    hosts: [evil.c.test]`,
      ),
      doc('q', 'acme', `agents: [bot]\nallow:\n  - name: c\n    hosts: ["*.c.test"]\n    ports: [80, 443]`),
    ].join('---\n'),
  );
  const ir = buildAgentIr(set, 'acme', 'bot');

  it('an allow without ports means [443] only', () => {
    expect(check(ir, 'a.test', 443)).toBe('allow (p/default-port)');
    expect(check(ir, 'a.test', 80)).toBe('deny (no rule matches)');
    expect(check(ir, 'a.test', 8443)).toBe('deny (no rule matches)');
  });

  it('explicit ports are the only ones allowed', () => {
    expect(check(ir, 'b.test', 80)).toBe('allow (p/web)');
    expect(check(ir, 'b.test', 8443)).toBe('allow (p/web)');
    expect(check(ir, 'b.test', 443)).toBe('deny (no rule matches)');
  });

  it('a deny with ports denies only those ports', () => {
    expect(check(ir, 'x.c.test', 80)).toBe('deny (p/no-plain)');
    expect(check(ir, 'x.c.test', 443)).toBe('allow (q/c)');
  });

  it('a deny without ports denies every port', () => {
    expect(check(ir, 'evil.c.test', 443)).toBe('deny (p/never)');
    expect(check(ir, 'evil.c.test', 80)).toMatch(/^deny \(p\/(never|no-plain)\)$/);
    expect(decide(ir, { host: 'evil.c.test', port: 12345 }).verdict).toBe('deny');
  });
});

describe('buildDecisionTable', () => {
  const ref = (policy: string, rule: string) => ({ policy, rule });
  const p = (text: string) => (text.startsWith('*.') ? { kind: 'wildcard' as const, suffix: text.slice(2) } : { kind: 'exact' as const, name: text });

  it('a broader deny turns a narrower allow into a deny row attributed to the deny', () => {
    const table = buildDecisionTable(
      [{ ref: ref('a', 'allow-x'), pattern: p('*.x.test'), ports: [443] }],
      [{ ref: ref('d', 'deny-all'), pattern: p('*.test'), ports: 'all' }],
    );
    const rows = table.map((r) => [formatHostPattern(r.pattern), r.port, r.verdict, formatRef(r.ref)]);
    expect(rows).toContainEqual(['*.x.test', 443, 'deny', 'd/deny-all']);
    expect(table.some((r) => r.verdict === 'allow')).toBe(false);
  });

  it('a narrower deny under a broader allow is its own more specific row', () => {
    const allows = [{ ref: ref('a', 'all'), pattern: p('*.test'), ports: [443] }];
    const denies = [{ ref: ref('d', 'bad'), pattern: p('bad.test'), ports: 'all' as const }];
    const table = buildDecisionTable(allows, denies);
    expect(table.map((r) => [formatHostPattern(r.pattern), r.port, r.verdict])).toEqual([
      ['*.test', 443, 'allow'],
      ['bad.test', 443, 'deny'],
    ]);
  });

  it('on an equal pattern the deny wins and keeps its attribution', () => {
    const table = buildDecisionTable(
      [{ ref: ref('a', 'r'), pattern: p('same.test'), ports: [443] }],
      [{ ref: ref('z', 'd'), pattern: p('same.test'), ports: [443] }],
    );
    expect(table).toEqual([{ pattern: p('same.test'), port: 443, verdict: 'deny', ref: ref('z', 'd') }]);
  });

  it('the same pattern allowed by several rules yields one row per port (Envoy refuses duplicate domains)', () => {
    const table = buildDecisionTable(
      [
        { ref: ref('b', 'r'), pattern: p('a.test'), ports: [443, 80] },
        { ref: ref('a', 'r'), pattern: p('a.test'), ports: [443] },
      ],
      [],
    );
    expect(table.map((r) => patternKey(r.pattern, r.port))).toEqual(['a.test:80', 'a.test:443']);
    // deterministic attribution: the first rule in policy/rule order
    expect(formatRef(table.find((r) => r.port === 443)!.ref)).toBe('a/r');
  });

  it('is deterministic: rule order does not change the table', () => {
    const allows = [
      { ref: ref('p1', 'r1'), pattern: p('*.a.test'), ports: [443] },
      { ref: ref('p2', 'r2'), pattern: p('x.a.test'), ports: [443, 80] },
    ];
    const denies = [{ ref: ref('p3', 'd'), pattern: p('*.x.a.test'), ports: [80] }];
    expect(buildDecisionTable([...allows].reverse(), denies)).toEqual(buildDecisionTable(allows, denies));
  });
});

// ---------------------------------------------------------------------------------------------
// Property: decide(buildAgentIr(set)) == a naive reference of SPEC §2, for random policy sets.
// ---------------------------------------------------------------------------------------------

interface GenRule {
  hosts: string[];
  ports?: number[];
}
interface GenPolicy {
  tenant: string;
  agents: string[];
  allow: GenRule[];
  deny: GenRule[];
}

/** The SPEC text, read literally. Written without any code from src/. */
const reference = {
  normalise(host: string): string {
    const lower = host.toLowerCase();
    return lower.endsWith('.') ? lower.slice(0, -1) : lower;
  },
  /** "*.example.com matches names with one or more extra labels ... never example.com itself". */
  matches(pattern: string, host: string): boolean {
    if (!pattern.startsWith('*.')) return host === pattern;
    const suffix = pattern.slice(2).split('.');
    const labels = host.split('.');
    if (labels.length <= suffix.length) return false;
    const extra = labels.slice(0, labels.length - suffix.length);
    const tail = labels.slice(labels.length - suffix.length);
    return extra.every((l) => l.length > 0) && tail.join('.') === suffix.join('.');
  },
  applies(p: GenPolicy, tenant: string, agent: string): boolean {
    return p.tenant === tenant && (p.agents.includes(agent) || p.agents.includes('*'));
  },
  /** Returns the verdict and the rules (policy index, kind, rule index) that match. */
  decide(policies: GenPolicy[], tenant: string, agent: string, rawHost: string, port: number) {
    const host = reference.normalise(rawHost);
    const matchingDenies: string[] = [];
    const matchingAllows: string[] = [];
    policies.forEach((p, pi) => {
      if (!reference.applies(p, tenant, agent)) return;
      p.deny.forEach((r, ri) => {
        const portOk = r.ports === undefined || r.ports.includes(port); // deny without ports: every port
        if (portOk && r.hosts.some((h) => reference.matches(h, host))) matchingDenies.push(`p${pi}/d${ri}`);
      });
      p.allow.forEach((r, ri) => {
        const portOk = (r.ports ?? [443]).includes(port); // allow ports default [443]
        if (portOk && r.hosts.some((h) => reference.matches(h, host))) matchingAllows.push(`p${pi}/a${ri}`);
      });
    });
    const verdict = matchingDenies.length > 0 ? 'deny' : matchingAllows.length > 0 ? 'allow' : 'deny';
    return { verdict, matchingDenies, matchingAllows };
  },
};

function toPolicySet(policies: GenPolicy[]): PolicySet {
  return {
    credentials: [],
    policies: policies.map((p, pi) => {
      const raw = {
        apiVersion: 'exitgate.dev/v1',
        kind: 'EgressPolicy',
        metadata: { name: `p${pi}`, tenant: p.tenant },
        spec: {
          agents: p.agents,
          allow: p.allow.map((r, ri) => ({ name: `a${ri}`, hosts: r.hosts, ...(r.ports ? { ports: r.ports } : {}) })),
          deny: p.deny.map((r, ri) => ({ name: `d${ri}`, hosts: r.hosts, ...(r.ports ? { ports: r.ports } : {}) })),
        },
      };
      const policy: EgressPolicy = egressPolicySchema.parse(raw); // validated exactly as a file would be
      return { policy, source: { file: 'gen.yaml', doc: pi + 1 } };
    }),
  };
}

// Labels chosen so that string-suffix confusions exist (`ba.t` ends with `a.t`).
const LABELS = ['a', 'b', 'c', 'ba'];
const label = fc.constantFrom(...LABELS);
const tld = fc.constantFrom('t', 't', 't', 'u');
const nameOf = (prefix: string[], top: string) => [...prefix, top].join('.');
const patternArb = fc
  .tuple(fc.boolean(), fc.array(label, { maxLength: 2 }), tld)
  .map(([wildcard, prefix, top]) => (wildcard ? `*.${nameOf(prefix, top)}` : nameOf(prefix, top)));
const portsArb = fc.uniqueArray(fc.constantFrom(80, 443, 8443), { minLength: 1, maxLength: 3 });
const allowArb = fc.record({ hosts: fc.array(patternArb, { minLength: 1, maxLength: 3 }), ports: fc.option(portsArb, { nil: undefined }) });
const denyArb = allowArb; // same shape; for deny, missing ports means every port
const policyArb: fc.Arbitrary<GenPolicy> = fc.record({
  tenant: fc.constantFrom('acme', 'acme', 'acme', 'globex'),
  agents: fc.uniqueArray(fc.constantFrom('bot', 'other', '*'), { minLength: 1, maxLength: 2 }),
  allow: fc.array(allowArb, { maxLength: 3 }),
  deny: fc.array(denyArb, { maxLength: 2 }),
});
const cleanGen = (p: GenPolicy): GenPolicy => ({
  ...p,
  allow: p.allow.map((r) => (r.ports === undefined ? { hosts: r.hosts } : r)),
  deny: p.deny.map((r) => (r.ports === undefined ? { hosts: r.hosts } : r)),
});

const hostArb = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(fc.array(label, { maxLength: 4 }), tld).map(([prefix, top]) => nameOf(prefix, top)) },
  { weight: 1, arbitrary: fc.constantFrom('127.0.0.1', '[::1]', 'x.t', 'ab.t', 'aa.t', 'b.a.t.u') },
);
const requestArb = fc.record({
  host: fc
    .tuple(hostArb, fc.boolean(), fc.boolean(), fc.nat())
    .map(([h, upper, dot, seed]) => {
      let out = h;
      if (upper) out = [...out].map((ch, i) => ((seed >> i % 30) & 1 ? ch.toUpperCase() : ch)).join('');
      if (dot) out += '.';
      return out;
    }),
  port: fc.constantFrom(80, 443, 8443, 9999),
  agent: fc.constantFrom('bot', 'other', 'nobody'),
  tenant: fc.constantFrom('acme', 'globex'),
});

describe('property: decide() implements SPEC §2 (reference model)', () => {
  it('agrees with the naive reference on random policy sets and requests', () => {
    fc.assert(
      fc.property(fc.array(policyArb.map(cleanGen), { maxLength: 4 }), fc.array(requestArb, { minLength: 1, maxLength: 8 }), (policies, requests) => {
        const set = toPolicySet(policies);
        const irs = new Map<string, AgentIr>();
        for (const req of requests) {
          const key = `${req.tenant}/${req.agent}`;
          let ir = irs.get(key);
          if (!ir) irs.set(key, (ir = buildAgentIr(set, req.tenant, req.agent)));
          const expected = reference.decide(policies, req.tenant, req.agent, req.host, req.port);
          const got = decide(ir, { host: req.host, port: req.port });
          const ctx = `${req.tenant}/${req.agent} ${req.host}:${req.port} -> ${formatDecision(got)}; reference ${JSON.stringify(expected)}`;

          expect({ ctx, verdict: got.verdict }).toEqual({ ctx, verdict: expected.verdict });
          const gotRef = got.ref ? formatRef(got.ref) : undefined;
          if (got.verdict === 'allow') {
            // attributed to an allow rule that really matches this host and port
            expect({ ctx, inMatchingAllows: expected.matchingAllows.includes(gotRef!) }).toEqual({ ctx, inMatchingAllows: true });
          } else if (gotRef !== undefined) {
            // a deny is only ever attributed to a deny rule that matches this host and port
            expect({ ctx, inMatchingDenies: expected.matchingDenies.includes(gotRef) }).toEqual({ ctx, inMatchingDenies: true });
          }
          if (expected.matchingDenies.length > 0 && expected.matchingAllows.length > 0) {
            // an allow that a deny overrides: the deny is named, so the operator sees why
            expect({ ctx, attributed: gotRef !== undefined && expected.matchingDenies.includes(gotRef) }).toEqual({ ctx, attributed: true });
          }
          if (expected.matchingDenies.length === 0 && expected.matchingAllows.length === 0) {
            expect({ ctx, ref: got.ref }).toEqual({ ctx, ref: undefined });
          }
        }
        // Envoy refuses a route configuration in which two virtual hosts share a domain.
        for (const ir of irs.values()) {
          const domains = ir.table.map((r) => patternKey(r.pattern, r.port));
          expect(new Set(domains).size).toBe(domains.length);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
