/** The store's API writes: managed files, revisions, validation against the whole directory, serialization. */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FilePolicyStore } from '../../../src/store/file-store';
import { checkPreconditions } from '../../../src/store/policy-writes';
import { policyEtag, canonicalJson } from '../../../src/store/revision';
import { parsePolicyText } from '../../../src/policy/parse';
import { formatPolicyError } from '../../../src/policy/errors';
import type { EgressPolicy } from '../../../src/policy/schema';
import type { PolicySet } from '../../../src/policy/documents';

const text = (tenant: string, name: string, hosts: string[]) => `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: ${name}, tenant: ${tenant} }
spec:
  agents: ["*"]
  allow: [{ name: r, hosts: ${JSON.stringify(hosts)} }]
`;
const policy = (tenant: string, name: string, hosts: string[]): EgressPolicy => {
  const p = parsePolicyText('x', text(tenant, name, hosts));
  if (p.errors.length > 0) throw new Error(p.errors.map(formatPolicyError).join('\n'));
  return p.policies[0]!.policy;
};

describe('FilePolicyStore writes', () => {
  let dir: string;
  let store: FilePolicyStore;
  const applied: PolicySet[] = [];
  beforeEach(async () => {
    dir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-writes-')), 'policies');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'hand.yaml'), text('acme', 'legacy', ['legacy.example.test']));
    store = new FilePolicyStore(dir);
    applied.length = 0;
    store.on('policies', (s) => applied.push(s));
    expect(await store.start()).toEqual({ ok: true });
  });
  afterEach(() => store.stop());

  it('creates <dir>/<tenant>/<name>.yaml and has applied it when it resolves', async () => {
    const p = policy('acme', 'web', ['a.example.test']);
    const r = await store.putPolicy(p);
    expect(r).toEqual({ ok: true, created: true, etag: policyEtag(p), policy: p, applied: true });
    expect(applied).toHaveLength(2); // start, then the write: no waiting for the watcher
    expect(store.getPolicy('acme', 'web')).toEqual({ policy: p, etag: policyEtag(p), file: 'policies/acme/web.yaml', doc: 1, managed: true });
    const onDisk = await fs.readFile(path.join(dir, 'acme', 'web.yaml'), 'utf8');
    expect(onDisk).toMatch(/^# Written by the exitgate admin API/);
    expect(parsePolicyText('f', onDisk).policies[0]!.policy).toEqual(p);
    expect(store.getPolicy('acme', 'legacy')).toMatchObject({ file: 'policies/hand.yaml', managed: false });
  });

  it('checks If-Match against what is on disk, and replaces the file', async () => {
    const v1 = policy('acme', 'web', ['a.example.test']);
    const v2 = policy('acme', 'web', ['b.example.test']);
    await store.putPolicy(v1);
    expect(await store.putPolicy(v2, { ifMatch: ['"sha256-other"'] })).toEqual({
      ok: false,
      reason: 'conflict',
      message: `policy acme/web has changed: its revision is ${policyEtag(v1)}, not "sha256-other"; read it again and retry`,
      etag: policyEtag(v1),
    });
    expect(await store.putPolicy(v2, { ifMatch: [policyEtag(v1)] })).toMatchObject({ ok: true, created: false, etag: policyEtag(v2) });
    // A hand edit of the managed file is a new revision too.
    await fs.writeFile(path.join(dir, 'acme', 'web.yaml'), text('acme', 'web', ['c.example.test']));
    expect(await store.putPolicy(v1, { ifMatch: [policyEtag(v2)] })).toMatchObject({ ok: false, reason: 'conflict' });
  });

  it('serializes writers: of 50 concurrent writers with the same If-Match, one wins', async () => {
    const v0 = policy('acme', 'race', ['v0.example.test']);
    await store.putPolicy(v0);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.putPolicy(policy('acme', 'race', [`h${i}.example.test`]), { ifMatch: [policyEtag(v0)] })));
    const winners = results.filter((r) => r.ok);
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => !r.ok && r.reason === 'conflict')).toHaveLength(49);
    const onDisk = parsePolicyText('f', await fs.readFile(path.join(dir, 'acme', 'race.yaml'), 'utf8'));
    expect(onDisk.policies.map((p) => p.policy)).toEqual([winners[0]!.ok && winners[0]!.policy]);
  });

  it('refuses a policy that is invalid together with itself (400) and writes nothing', async () => {
    const p = policy('acme', 'web', ['a.example.test']);
    p.spec.allow.push({ ...p.spec.allow[0]!, hosts: ['b.example.test'] });
    const r = await store.putPolicy(p);
    expect(r.ok || r.reason === 'invalid' ? r : undefined).toEqual({
      ok: false,
      reason: 'invalid',
      errors: [{ file: 'policies/acme/web.yaml', doc: 1, path: 'spec.allow[1].name', message: 'rule name "r" is already used by spec.allow[0].name' }],
    });
    await expect(fs.stat(path.join(dir, 'acme'))).rejects.toThrow();
  });

  it('will not write a policy defined in a file it does not manage, nor a managed path that holds more', async () => {
    const r = await store.putPolicy(policy('acme', 'legacy', ['x.example.test']));
    expect(r).toMatchObject({ ok: false, reason: 'conflict', message: expect.stringContaining('is defined in policies/hand.yaml (doc 1), a file the admin API does not manage') });
    expect(await store.deletePolicy('acme', 'legacy')).toMatchObject({ ok: false, reason: 'conflict' });

    await fs.mkdir(path.join(dir, 'acme'));
    const crowded = `${text('acme', 'shared', ['a.example.test'])}---\napiVersion: exitgate.dev/v1\nkind: Credential\nmetadata: { name: k, tenant: acme }\nspec: { header: X-Key, source: { env: K } }\n`;
    await fs.writeFile(path.join(dir, 'acme', 'shared.yaml'), crowded);
    expect(await store.putPolicy(policy('acme', 'shared', ['b.example.test']))).toMatchObject({
      ok: false,
      reason: 'conflict',
      message: 'policies/acme/shared.yaml holds something other than exactly policy acme/shared, so the admin API will not replace it; fix or remove that file by hand',
    });
    expect(await fs.readFile(path.join(dir, 'acme', 'shared.yaml'), 'utf8')).toBe(crowded);
  });

  it('is blocked while another file of the directory is invalid, and says so without writing', async () => {
    await fs.writeFile(path.join(dir, 'broken.yaml'), text('globex', 'x', ['*.*.bad.test']));
    const r = await store.putPolicy(policy('acme', 'web', ['a.example.test']));
    expect(r.ok ? r : { ...r, errors: 'errors' in r ? r.errors.map(formatPolicyError) : [] }).toEqual({
      ok: false,
      reason: 'blocked',
      message: 'the policy directory has 1 error(s) outside this policy, so no change can be applied until an operator fixes them; nothing was written',
      errors: ['policies/broken.yaml: doc 1: spec.allow[0].hosts[0]: "*.*.bad.test" is not a valid host pattern'],
    });
    await expect(fs.stat(path.join(dir, 'acme', 'web.yaml'))).rejects.toThrow();
  });

  it('deletes with If-Match, durably, and has applied it when it resolves', async () => {
    const p = policy('acme', 'web', ['a.example.test']);
    await store.putPolicy(p);
    expect(await store.deletePolicy('acme', 'web', { ifMatch: ['"sha256-x"'] })).toMatchObject({ ok: false, reason: 'conflict', etag: policyEtag(p) });
    expect(await store.deletePolicy('acme', 'web', { ifMatch: [policyEtag(p)] })).toEqual({ ok: true, etag: policyEtag(p), applied: true });
    expect(store.getPolicy('acme', 'web')).toBeUndefined();
    expect(applied.at(-1)!.policies.map((lp) => lp.policy.metadata.name)).toEqual(['legacy']);
    expect(await store.deletePolicy('acme', 'web')).toEqual({ ok: false, reason: 'not-found', message: 'policy acme/web does not exist' });
  });

  it('ignores temporary files while loading and removes stale ones at start', async () => {
    await fs.mkdir(path.join(dir, 'acme'));
    const stale = path.join(dir, 'acme', '.web.yaml.123.abcdef.exitgate-tmp');
    await fs.writeFile(stale, 'apiVersion: exitgate.dev/v1\nkind: EgressPol'); // a write cut short
    expect(await store.applyNow()).toEqual({ ok: true });
    store.stop();
    const again = new FilePolicyStore(dir);
    expect(await again.start()).toEqual({ ok: true });
    again.stop();
    await expect(fs.stat(stale)).rejects.toThrow();
  });
});

describe('revisions and preconditions', () => {
  it('are content hashes independent of key order and formatting', () => {
    const a = policy('acme', 'web', ['a.example.test']);
    const b = parsePolicyText('y', `# comment\nkind: EgressPolicy\napiVersion: exitgate.dev/v1\nspec: { allow: [{ hosts: ["a.example.test"], ports: [443], name: r }], agents: ["*"], mode: enforce }\nmetadata: { tenant: acme, name: web }\n`).policies[0]!.policy;
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(policyEtag(a)).toBe(policyEtag(b));
    expect(policyEtag(a)).not.toBe(policyEtag(policy('acme', 'web', ['b.example.test'])));
  });

  it.each<[string | undefined, Parameters<typeof checkPreconditions>[1], boolean]>([
    [undefined, {}, true],
    ['"e1"', {}, true],
    ['"e1"', { ifMatch: ['"e1"'] }, true],
    ['"e1"', { ifMatch: ['"e0"', '"e1"'] }, true],
    ['"e1"', { ifMatch: ['W/"e1"'] }, false], // If-Match compares strongly
    ['"e1"', { ifMatch: ['"e0"'] }, false],
    [undefined, { ifMatch: ['"e0"'] }, false],
    [undefined, { ifMatch: '*' }, false],
    ['"e1"', { ifMatch: '*' }, true],
    [undefined, { ifNoneMatch: '*' }, true],
    ['"e1"', { ifNoneMatch: '*' }, false],
    ['"e1"', { ifNoneMatch: ['W/"e1"'] }, false],
    ['"e1"', { ifNoneMatch: ['"e0"'] }, true],
  ])('current %s, %j -> %s', (current, pre, passes) => {
    expect(checkPreconditions(current, pre, 'policy acme/web') === undefined).toBe(passes);
  });
});
