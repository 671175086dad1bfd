/**
 * Policy text -> validated documents (SPEC §2). Users see these errors from `exitgate validate`,
 * the admin API's 400s and the server log: each must name file, document (1-based), field path
 * and reason, and nothing the author wrote may be silently ignored.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crossCheck, parsePolicyText, type ParsedFile } from '../../../src/policy/parse';
import { formatPath, formatPolicyError, type PolicyError } from '../../../src/policy/errors';
import { loadPolicyDir } from '../../../src/policy/load';
import type { PolicySet } from '../../../src/policy/documents';

const FILE = 'policies/acme.yaml';

const policyDoc = (name: string, body: string, tenant = 'acme'): string =>
  `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata:
  name: ${name}
  tenant: ${tenant}
spec:
${body
  .split('\n')
  .map((l) => (l === '' ? l : `  ${l}`))
  .join('\n')}
`;

const simpleSpec = (hosts = '["api.example.test"]') => `agents: ["bot"]
allow:
  - name: r1
    hosts: ${hosts}
`;

const lines = (f: ParsedFile): string[] => f.errors.map(formatPolicyError);

/** Parses one EgressPolicy document with the given spec, expecting errors. */
function specErrors(spec: string): string[] {
  const f = parsePolicyText(FILE, policyDoc('p', spec));
  expect(f.policies).toHaveLength(0);
  return lines(f);
}

describe('parsePolicyText: valid documents', () => {
  it('parses an EgressPolicy and fills in defaults (ports [443], mode enforce, empty deny)', () => {
    const f = parsePolicyText(FILE, policyDoc('oncall', simpleSpec()));
    expect(f.errors).toEqual([]);
    expect(f.policies).toHaveLength(1);
    const lp = f.policies[0]!;
    expect(lp.source).toEqual({ file: FILE, doc: 1 });
    expect(lp.policy.metadata).toEqual({ name: 'oncall', tenant: 'acme' });
    expect(lp.policy.spec.mode).toBe('enforce');
    expect(lp.policy.spec.allow).toEqual([{ name: 'r1', hosts: ['api.example.test'], ports: [443] }]);
    expect(lp.policy.spec.deny).toEqual([]);
  });

  it('a deny rule without ports stays port-less (meaning every port), never defaulted to [443]', () => {
    const f = parsePolicyText(
      FILE,
      policyDoc('p', `agents: ["*"]\ndeny:\n  - name: no-paste\n    hosts: ["*.pastebin.test"]\n`),
    );
    expect(f.errors).toEqual([]);
    expect(f.policies[0]!.policy.spec.deny[0]!.ports).toBeUndefined();
    expect(f.policies[0]!.policy.spec.agents).toEqual(['*']);
  });

  it('an allow or deny key with no entries (YAML null, e.g. all entries commented out) is an empty list', () => {
    const f = parsePolicyText(FILE, policyDoc('p', `agents: [bot]\nallow:\n  # - name: r1\ndeny:\n`));
    expect(f.errors).toEqual([]);
    expect(f.policies[0]!.policy.spec.allow).toEqual([]);
    expect(f.policies[0]!.policy.spec.deny).toEqual([]);
  });

  it('keeps explicit ports', () => {
    const f = parsePolicyText(FILE, policyDoc('p', `agents: [bot]\nallow:\n  - name: r\n    hosts: [a.test]\n    ports: [80, 8443]\n`));
    expect(f.policies[0]!.policy.spec.allow[0]!.ports).toEqual([80, 8443]);
  });

  it('several documents per file; the source records the 1-based document index', () => {
    const text = [policyDoc('one', simpleSpec()), policyDoc('two', simpleSpec()), policyDoc('three', simpleSpec())].join('---\n');
    const f = parsePolicyText(FILE, text);
    expect(f.errors).toEqual([]);
    expect(f.policies.map((p) => [p.policy.metadata.name, p.source.doc])).toEqual([
      ['one', 1],
      ['two', 2],
      ['three', 3],
    ]);
  });

  it('accepts JSON', () => {
    const json = JSON.stringify({
      apiVersion: 'exitgate.dev/v1',
      kind: 'EgressPolicy',
      metadata: { name: 'j', tenant: 'acme' },
      spec: { agents: ['bot'], allow: [{ name: 'r', hosts: ['a.test'], ports: [443] }] },
    });
    const f = parsePolicyText('policies/j.json', json);
    expect(f.errors).toEqual([]);
    expect(f.policies[0]!.policy.metadata.name).toBe('j');
  });

  it('skips empty documents (a trailing ---)', () => {
    const f = parsePolicyText(FILE, `${policyDoc('p', simpleSpec())}---\n`);
    expect(f.errors).toEqual([]);
    expect(f.policies).toHaveLength(1);
  });

  it('an empty file yields nothing and no error', () => {
    expect(parsePolicyText(FILE, '')).toEqual({ policies: [], credentials: [], errors: [] });
  });
});

describe('error messages name file, doc, field path and reason', () => {
  it('reproduces the SPEC example exactly', () => {
    const text = [
      policyDoc('first', simpleSpec()),
      policyDoc('second', `agents: [bot]\nallow:\n  - name: r1\n    hosts: ["api.example.com", "*.*.example.com"]\n`),
    ].join('---\n');
    const f = parsePolicyText(FILE, text);
    expect(lines(f)).toEqual(['policies/acme.yaml: doc 2: spec.allow[0].hosts[1]: "*.*.example.com" is not a valid host pattern']);
    // The valid document still parses (the caller decides to apply all or nothing).
    expect(f.policies.map((p) => p.policy.metadata.name)).toEqual(['first']);
  });

  it('host pattern problems carry the quoted value and the reason', () => {
    expect(specErrors(simpleSpec('["API.example.test"]'))).toEqual([
      'policies/acme.yaml: doc 1: spec.allow[0].hosts[0]: "API.example.test" must be lowercase: "api.example.test"',
    ]);
    expect(specErrors(simpleSpec('["1.2.3.4"]'))).toEqual([
      'policies/acme.yaml: doc 1: spec.allow[0].hosts[0]: "1.2.3.4" is an IP literal; IP destinations belong in cidrs',
    ]);
    expect(specErrors(simpleSpec('["bücher.example"]'))[0]).toMatch(/hosts\[0\]: "bücher\.example" must be written as an A-label: "xn--bcher-kva\.example"/);
    expect(specErrors(simpleSpec('["a.test."]'))[0]).toMatch(/^policies\/acme\.yaml: doc 1: spec\.allow\[0\]\.hosts\[0\]: "a\.test\." must not end with a dot/);
  });

  it('deny rule paths are spec.deny[i]', () => {
    const errs = specErrors(`agents: [bot]\ndeny:\n  - name: d\n    hosts: ["ok.test"]\n  - name: e\n    hosts: ["x.*.test"]\n`);
    expect(errs).toEqual(['policies/acme.yaml: doc 1: spec.deny[1].hosts[0]: "x.*.test" is not a valid host pattern']);
  });

  it('formatPath and formatPolicyError', () => {
    expect(formatPath(['spec', 'allow', 0, 'hosts', 1])).toBe('spec.allow[0].hosts[1]');
    expect(formatPath([])).toBe('');
    const e: PolicyError = { file: 'f.yaml', doc: 0, path: '', message: 'cannot read' };
    expect(formatPolicyError(e)).toBe('f.yaml: cannot read');
    expect(formatPolicyError({ file: 'f.yaml', doc: 3, path: '', message: 'm' })).toBe('f.yaml: doc 3: m');
  });

  it('reports every error of a document, not only the first', () => {
    const errs = specErrors(`agents: [bot]\nallow:\n  - name: r1\n    hosts: ["A.test", "*.*.test"]\n    ports: [0]\n`);
    expect(errs).toHaveLength(3);
    expect(errs.join('\n')).toMatch(/hosts\[0\]/);
    expect(errs.join('\n')).toMatch(/hosts\[1\]/);
    expect(errs.join('\n')).toMatch(/ports\[0\]: 0 is not a port \(1-65535\)/);
  });

  it('a missing required field says "is required"', () => {
    const f = parsePolicyText(FILE, `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: p}\nspec: {agents: [bot]}\n`);
    expect(lines(f)).toEqual(['policies/acme.yaml: doc 1: metadata.tenant: is required']);
  });

  it('names and agents must be DNS labels', () => {
    const f = parsePolicyText(FILE, `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: My_Policy, tenant: acme}\nspec: {agents: [Bot]}\n`);
    const out = lines(f).join('\n');
    expect(out).toMatch(/doc 1: metadata\.name: "My_Policy" is not a DNS label/);
    expect(out).toMatch(/doc 1: spec\.agents\[0\]: "Bot" is not (an agent name|a DNS label)/);
  });

  it('agents must not be empty', () => {
    expect(specErrors(`agents: []\n`)).toEqual(['policies/acme.yaml: doc 1: spec.agents: must name at least one agent, or "*"']);
  });

  it('a rule needs hosts; empty hosts and empty ports lists are refused', () => {
    expect(specErrors(`agents: [bot]\nallow:\n  - name: r1\n    ports: [443]\n`)).toEqual([
      'policies/acme.yaml: doc 1: spec.allow[0]: a rule needs hosts or cidrs',
    ]);
    expect(specErrors(`agents: [bot]\nallow:\n  - name: r1\n    hosts: []\n`)).toEqual([
      'policies/acme.yaml: doc 1: spec.allow[0].hosts: must list at least one host',
    ]);
    expect(specErrors(`agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    ports: []\n`)).toEqual([
      'policies/acme.yaml: doc 1: spec.allow[0].ports: must list at least one port',
    ]);
    expect(specErrors(`agents: [bot]\ndeny:\n  - name: d\n    hosts: [a.test]\n    ports: []\n`)).toEqual([
      'policies/acme.yaml: doc 1: spec.deny[0].ports: must list at least one port',
    ]);
  });

  it('ports outside 1-65535 are refused', () => {
    expect(specErrors(`agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    ports: [65536]\n`)).toEqual([
      'policies/acme.yaml: doc 1: spec.allow[0].ports[0]: 65536 is not a port (1-65535)',
    ]);
  });

  it('the wrong apiVersion is an error on apiVersion', () => {
    const f = parsePolicyText(FILE, policyDoc('p', simpleSpec()).replace('exitgate.dev/v1', 'exitgate.dev/v2'));
    expect(f.policies).toHaveLength(0);
    expect(lines(f)).toHaveLength(1);
    expect(lines(f)[0]).toMatch(/^policies\/acme\.yaml: doc 1: apiVersion: .*exitgate\.dev\/v1/);
  });

  // Regression guard: zod v4 omits `input` from issues, and fromZodIssues once reported EVERY
  // invalid_type issue as "is required" (a quoted port `ports: ["443"]` said "is required").
  // Fixed in src/policy/errors.ts by commit 85901e3 while these tests were written.
  it('a value of the wrong type is reported as the type expected, never as "is required"', () => {
    const quoted = specErrors(`agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    ports: ["443"]\n`);
    expect(quoted).toHaveLength(1);
    expect(quoted[0]).toMatch(/^policies\/acme\.yaml: doc 1: spec\.allow\[0\]\.ports\[0\]: must be a (port )?number$/);
    const fraction = specErrors(`agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    ports: [443.5]\n`);
    expect(fraction).toHaveLength(1);
    expect(fraction[0]).toMatch(/^policies\/acme\.yaml: doc 1: spec\.allow\[0\]\.ports\[0\]: must be (an int|a whole)/);
    const numberHost = specErrors(`agents: [bot]\nallow:\n  - name: r1\n    hosts: [127.1]\n`); // YAML reads a number
    expect(numberHost).toHaveLength(1);
    expect(numberHost[0]).toMatch(/^policies\/acme\.yaml: doc 1: spec\.allow\[0\]\.hosts\[0\]: must be a string$/);
    for (const line of [...quoted, ...fraction, ...numberHost]) expect(line).not.toMatch(/is required/);
  });
});

describe('nothing the author wrote is silently ignored', () => {
  it('unknown keys are errors that name the key (a typo like "alow:")', () => {
    expect(specErrors(`agents: [bot]\nalow:\n  - name: r1\n    hosts: [a.test]\n`)).toEqual([
      'policies/acme.yaml: doc 1: spec.alow: unknown field',
    ]);
  });

  it('unknown keys are errors at every level', () => {
    const f = parsePolicyText(
      FILE,
      `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nextra: 1\nmetadata: {name: p, tenant: acme, labels: {}}\nspec:\n  agents: [bot]\n  allow:\n    - name: r1\n      hosts: [a.test]\n      port: [80]\n  deny:\n    - name: d\n      hosts: [b.test]\n      tls: originate\n`,
    );
    expect(lines(f).sort()).toEqual(
      [
        'policies/acme.yaml: doc 1: extra: unknown field',
        'policies/acme.yaml: doc 1: metadata.labels: unknown field',
        'policies/acme.yaml: doc 1: spec.allow[0].port: unknown field',
        'policies/acme.yaml: doc 1: spec.deny[0].tls: unknown field',
      ].sort(),
    );
  });

  it('cidrs rules parse, on allow and deny, with or without hosts', () => {
    const f = parsePolicyText(
      FILE,
      policyDoc('p', `agents: [bot]\nallow:\n  - name: metrics\n    cidrs: ["203.0.113.0/24", "198.51.100.7", "2001:db8::/120"]\n    ports: [9090]\n  - name: both\n    hosts: [a.test]\n    cidrs: ["10.1.0.0/16"]\ndeny:\n  - name: d\n    cidrs: ["203.0.113.128/25", "::1"]\n`),
    );
    expect(f.errors).toEqual([]);
    expect(f.policies[0]!.policy.spec.allow[0]!.cidrs).toEqual(['203.0.113.0/24', '198.51.100.7', '2001:db8::/120']);
    expect(f.policies[0]!.policy.spec.deny[0]!.cidrs).toEqual(['203.0.113.128/25', '::1']);
  });

  it.each([
    ['an empty list', `cidrs: []`, 'spec.allow[0].cidrs: must list at least one range'],
    ['not an address', `cidrs: ["example.test/24"]`, 'spec.allow[0].cidrs[0]: "example.test/24" is not a CIDR range: "example.test" is not an IP address'],
    ['host bits set', `cidrs: ["203.0.113.5/24"]`, 'spec.allow[0].cidrs[0]: "203.0.113.5/24" has host bits set; did you mean 203.0.113.0/24?'],
    ['a prefix too long', `cidrs: ["203.0.113.0/33"]`, 'spec.allow[0].cidrs[0]: "203.0.113.0/33" has an invalid prefix length'],
    ['a leading zero', `cidrs: ["203.0.113.05"]`, 'spec.allow[0].cidrs[0]: "203.0.113.05" is not a CIDR range'],
    ['a zone id', `cidrs: ["fe80::1%eth0"]`, 'spec.allow[0].cidrs[0]: "fe80::1%eth0" is not a CIDR range (no zone ids or spaces)'],
    ['loopback', `cidrs: ["127.0.0.1"]`, 'spec.allow[0].cidrs[0]: "127.0.0.1" overlaps 127.0.0.0/8, loopback'],
    ['a range containing loopback', `cidrs: ["0.0.0.0/0"]`, 'spec.allow[0].cidrs[0]: "0.0.0.0/0" overlaps 0.0.0.0/8'],
    ['IPv6 loopback', `cidrs: ["::1"]`, 'spec.allow[0].cidrs[0]: "::1" overlaps ::/96'],
    ['IPv4-mapped IPv6', `cidrs: ["::ffff:203.0.113.0/120"]`, 'spec.allow[0].cidrs[0]: "::ffff:203.0.113.0/120" overlaps ::ffff:0:0/96'],
    ['a wide IPv6 range', `cidrs: ["2001:db8::/64"]`, 'spec.allow[0].cidrs[0]: "2001:db8::/64" is wider than /120'],
    ['not a string', `cidrs: [10]`, 'spec.allow[0].cidrs[0]: must be a string'],
    ['with tls: originate', `cidrs: ["203.0.113.0/24"]\n    tls: originate`, 'spec.allow[0].cidrs: cidrs cannot be combined with tls: originate or a credential'],
  ])('cidrs: %s is refused with a clear message', (_what, rule, expected) => {
    const errs = specErrors(`agents: [bot]\nallow:\n  - name: r1\n    ${rule}\n`);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toContain(`policies/acme.yaml: doc 1: ${expected}`);
  });

  it('a deny rule may name loopback and wide IPv6 is still refused there', () => {
    expect(parsePolicyText(FILE, policyDoc('p', `agents: [bot]\ndeny:\n  - name: d\n    cidrs: ["127.0.0.0/8", "0.0.0.0/0"]\n`)).errors).toEqual([]);
    expect(specErrors(`agents: [bot]\ndeny:\n  - name: d\n    cidrs: ["2001:db8::/64"]\n`)[0]).toContain('spec.deny[0].cidrs[0]: "2001:db8::/64" is wider than /120');
  });

  it.each([
    ['http rules on a TLS tunnel', `agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    http: {methods: [POST]}\n`, 'spec.allow[0].http: http rules need tls: originate'],
    ['a credential on a TLS tunnel', `agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    credential: k\n`, 'spec.allow[0].credential: a credential needs tls: originate'],
    ['an unknown method', `agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    tls: originate\n    http: {methods: [FETCH]}\n`, 'spec.allow[0].http.methods[0]: "FETCH" is not an HTTP method'],
    ['a mid-path wildcard', `agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    tls: originate\n    http: {paths: ["/v1/*/x"]}\n`, 'spec.allow[0].http.paths[0]: "/v1/*/x" may only end in "/*"'],
    ['a dot segment', `agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    tls: originate\n    http: {paths: ["/v1/../admin"]}\n`, 'spec.allow[0].http.paths[0]: "/v1/../admin" must be normalised'],
    ['a percent-encoded path', `agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    tls: originate\n    http: {paths: ["/a%2Fb"]}\n`, 'spec.allow[0].http.paths[0]: "/a%2Fb" may contain only unreserved'],
    ['tls other than originate', `agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    tls: passthrough\n`, 'spec.allow[0].tls: must be "originate"'],
    ['a credential of no known Credential', `agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n    tls: originate\n    credential: nope\n`, 'spec.allow[0].credential: "nope" is not a Credential of tenant "acme"'],
  ])('L7 rules: %s is refused with a clear message', (_what, spec, expected) => {
    const f = parsePolicyText(FILE, policyDoc('p', spec));
    const errs = [...lines(f), ...crossCheck({ policies: f.policies, credentials: f.credentials }).map(formatPolicyError)];
    expect(errs).toHaveLength(1);
    expect(errs[0]).toContain(`policies/acme.yaml: doc 1: ${expected}`);
  });

  it('L7 rules: tls: originate with methods, exact and prefix paths and a credential of the tenant is valid', () => {
    const f = parsePolicyText(
      FILE,
      `${policyDoc('p', `agents: [bot]\nallow:\n  - name: r1\n    hosts: [events.pagerduty.test]\n    tls: originate\n    http: {methods: [POST], paths: ["/v2/enqueue", "/v2/change/*"]}\n    credential: pd\n  - name: plain-80\n    hosts: [a.test]\n    ports: [80]\n    http: {methods: [GET]}\n`)}---\napiVersion: exitgate.dev/v1\nkind: Credential\nmetadata: {name: pd, tenant: acme}\nspec: {header: Authorization, prefix: "Token token=", source: {env: PD_TOKEN}}\n`,
    );
    expect(lines(f)).toEqual([]);
    expect(crossCheck({ policies: f.policies, credentials: f.credentials })).toEqual([]);
  });

  it('mode: dry-run and limits are accepted; bad limits are refused with their path', () => {
    const ok = parsePolicyText(FILE, policyDoc('p', `agents: [bot]\nmode: dry-run\nlimits: {requestsPerMinute: 600, maxConnections: 64}\nallow:\n  - name: r1\n    hosts: [a.test]\n`));
    expect(ok.errors).toEqual([]);
    expect(ok.policies[0]!.policy.spec.mode).toBe('dry-run');
    expect(specErrors(`agents: [bot]\nlimits: {requestsPerMinute: 0, maxConections: 5}\n`).sort()).toEqual(
      ['policies/acme.yaml: doc 1: spec.limits.maxConections: unknown field', 'policies/acme.yaml: doc 1: spec.limits.requestsPerMinute: must be at least 1'].sort(),
    );
  });

  it('mode: enforce is accepted; an unknown mode is refused', () => {
    const ok = parsePolicyText(FILE, policyDoc('p', `agents: [bot]\nmode: enforce\n`));
    expect(ok.errors).toEqual([]);
    expect(specErrors(`agents: [bot]\nmode: audit\n`)[0]).toMatch(/doc 1: spec\.mode: /);
  });
});

describe('document-level errors', () => {
  it('an unknown kind names the known ones', () => {
    const f = parsePolicyText(FILE, `apiVersion: exitgate.dev/v1\nkind: EgressPolicyy\nmetadata: {name: p, tenant: acme}\n`);
    expect(lines(f)).toEqual(['policies/acme.yaml: doc 1: kind: "EgressPolicyy" is not a known kind (EgressPolicy, Credential)']);
  });

  it('a missing kind is required', () => {
    const f = parsePolicyText(FILE, `apiVersion: exitgate.dev/v1\nmetadata: {name: p, tenant: acme}\n`);
    expect(lines(f)).toEqual(['policies/acme.yaml: doc 1: kind: is required']);
  });

  it('invalid YAML is reported with its document index, and other documents still parse', () => {
    const text = `${policyDoc('ok', simpleSpec())}---\nspec: {agents: [bot\n---\n${policyDoc('ok2', simpleSpec())}`;
    const f = parsePolicyText(FILE, text);
    expect(f.errors.length).toBeGreaterThan(0);
    for (const e of f.errors) {
      expect(formatPolicyError(e)).toMatch(/^policies\/acme\.yaml: doc 2: invalid YAML: /);
      expect(e.message.includes('\n')).toBe(false); // one line per error
    }
    expect(f.policies.map((p) => p.policy.metadata.name)).toEqual(['ok', 'ok2']);
  });

  it('duplicate keys in a mapping are invalid YAML (the later one would silently win)', () => {
    const f = parsePolicyText(FILE, `${policyDoc('p', simpleSpec())}spec: {agents: [other]}\n`);
    expect(f.policies).toHaveLength(0);
    expect(lines(f)[0]).toMatch(/^policies\/acme\.yaml: doc 1: invalid YAML: .*unique/i);
  });

  it('a document that is not a mapping is refused', () => {
    expect(lines(parsePolicyText(FILE, '- a\n- b\n'))).toEqual(['policies/acme.yaml: doc 1: a policy document must be a mapping']);
    expect(lines(parsePolicyText(FILE, 'just a string\n'))).toEqual(['policies/acme.yaml: doc 1: a policy document must be a mapping']);
  });
});

describe('Credential documents', () => {
  const cred = (spec: string, name = 'pagerduty-key') =>
    `apiVersion: exitgate.dev/v1\nkind: Credential\nmetadata: {name: ${name}, tenant: acme}\nspec:\n${spec}`;

  it('a valid Credential (env source) parses', () => {
    const f = parsePolicyText(FILE, cred(`  header: Authorization\n  prefix: "Token token="\n  source: {env: PAGERDUTY_TOKEN}\n`));
    expect(f.errors).toEqual([]);
    expect(f.credentials).toHaveLength(1);
    expect(f.credentials[0]!.credential.spec).toEqual({ header: 'Authorization', prefix: 'Token token=', source: { env: 'PAGERDUTY_TOKEN' } });
    expect(f.credentials[0]!.source).toEqual({ file: FILE, doc: 1 });
  });

  it('a valid Credential (file source) parses', () => {
    const f = parsePolicyText(FILE, cred(`  header: Authorization\n  source: {file: /run/secrets/pagerduty}\n`));
    expect(f.errors).toEqual([]);
    expect(f.credentials[0]!.credential.spec.source).toEqual({ file: '/run/secrets/pagerduty' });
  });

  it('invalid Credentials are refused with a path', () => {
    const missingHeader = parsePolicyText(FILE, cred(`  source: {env: X}\n`));
    expect(missingHeader.credentials).toHaveLength(0);
    expect(lines(missingHeader)).toEqual(['policies/acme.yaml: doc 1: spec.header: is required']);

    const both = parsePolicyText(FILE, cred(`  header: Authorization\n  source: {env: X, file: /y}\n`));
    expect(both.credentials).toHaveLength(0);
    expect(lines(both)[0]).toMatch(/^policies\/acme\.yaml: doc 1: spec\.source: /);

    const unknownKey = parsePolicyText(FILE, cred(`  header: Authorization\n  source: {env: X}\n  value: hunter2\n`));
    expect(unknownKey.credentials).toHaveLength(0);
    expect(lines(unknownKey)).toEqual(['policies/acme.yaml: doc 1: spec.value: unknown field']);
  });

  it('a Credential and a policy in one file both parse', () => {
    const f = parsePolicyText(FILE, `${policyDoc('p', simpleSpec())}---\n${cred(`  header: Authorization\n  source: {env: X}\n`)}`);
    expect(f.errors).toEqual([]);
    expect(f.policies).toHaveLength(1);
    expect(f.credentials).toHaveLength(1);
    expect(f.credentials[0]!.source.doc).toBe(2);
  });
});

describe('crossCheck: names unique across files and documents', () => {
  function setOf(...files: Array<[string, string]>): PolicySet {
    const set: PolicySet = { policies: [], credentials: [] };
    for (const [file, text] of files) {
      const f = parsePolicyText(file, text);
      expect(f.errors).toEqual([]);
      set.policies.push(...f.policies);
      set.credentials.push(...f.credentials);
    }
    return set;
  }

  it('a policy name used twice within a tenant across files is an error naming both places', () => {
    const set = setOf(
      ['policies/a.yaml', policyDoc('shared', simpleSpec())],
      ['policies/b.yaml', `${policyDoc('other', simpleSpec())}---\n${policyDoc('shared', simpleSpec())}`],
    );
    expect(crossCheck(set).map(formatPolicyError)).toEqual([
      'policies/b.yaml: doc 2: metadata.name: policy "shared" of tenant "acme" is already defined in policies/a.yaml doc 1',
    ]);
  });

  it('the same policy name in different tenants is fine', () => {
    const set = setOf(['policies/a.yaml', policyDoc('shared', simpleSpec(), 'acme')], ['policies/b.yaml', policyDoc('shared', simpleSpec(), 'globex')]);
    expect(crossCheck(set)).toEqual([]);
  });

  it('duplicate rule names within a policy (allow and deny share one namespace)', () => {
    const set = setOf([
      FILE,
      policyDoc('p', `agents: [bot]\nallow:\n  - name: r1\n    hosts: [a.test]\n  - name: r1\n    hosts: [b.test]\ndeny:\n  - name: r1\n    hosts: [c.test]\n`),
    ]);
    expect(crossCheck(set).map(formatPolicyError)).toEqual([
      'policies/acme.yaml: doc 1: spec.allow[1].name: rule name "r1" is already used by spec.allow[0].name',
      'policies/acme.yaml: doc 1: spec.deny[0].name: rule name "r1" is already used by spec.allow[0].name',
    ]);
  });

  it('the same rule name in different policies is fine', () => {
    const set = setOf([FILE, `${policyDoc('p', simpleSpec())}---\n${policyDoc('q', simpleSpec())}`]);
    expect(crossCheck(set)).toEqual([]);
  });

  it('a credential defined twice in a tenant is an error', () => {
    const c = `apiVersion: exitgate.dev/v1\nkind: Credential\nmetadata: {name: k, tenant: acme}\nspec: {header: Authorization, source: {env: X}}\n`;
    const set = setOf(['policies/a.yaml', c], ['policies/b.yaml', c]);
    expect(crossCheck(set).map(formatPolicyError)).toEqual([
      'policies/b.yaml: doc 1: metadata.name: credential "acme/k" is already defined in policies/a.yaml doc 1',
    ]);
  });
});

describe('loadPolicyDir: errors name the file as the user sees it', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'exitgate-parse-'));
    fs.mkdirSync(path.join(tmp, 'policies'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reports `policies/acme.yaml: doc 2: ...` and applies nothing when any document is invalid', async () => {
    fs.writeFileSync(
      path.join(tmp, 'policies', 'acme.yaml'),
      `${policyDoc('first', simpleSpec())}---\n${policyDoc('second', simpleSpec('["api.example.com", "*.*.example.com"]'))}`,
    );
    const r = await loadPolicyDir(path.join(tmp, 'policies'));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors.map(formatPolicyError)).toEqual([
        'policies/acme.yaml: doc 2: spec.allow[0].hosts[1]: "*.*.example.com" is not a valid host pattern',
      ]);
    }
  });

  it('duplicate policy names across files make the load fail', async () => {
    fs.writeFileSync(path.join(tmp, 'policies', 'a.yaml'), policyDoc('shared', simpleSpec()));
    fs.writeFileSync(path.join(tmp, 'policies', 'b.yaml'), policyDoc('shared', simpleSpec()));
    const r = await loadPolicyDir(path.join(tmp, 'policies'));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map(formatPolicyError)).toEqual(['policies/b.yaml: doc 1: metadata.name: policy "shared" of tenant "acme" is already defined in policies/a.yaml doc 1']);
  });

  it('a valid directory loads', async () => {
    fs.writeFileSync(path.join(tmp, 'policies', 'a.yaml'), policyDoc('one', simpleSpec()));
    fs.writeFileSync(path.join(tmp, 'policies', 'notes.txt'), 'not a policy');
    const r = await loadPolicyDir(path.join(tmp, 'policies'));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.policies.map((p) => p.source.file)).toEqual(['policies/a.yaml']);
  });
});
