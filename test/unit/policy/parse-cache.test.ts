/** The parse cache: a file whose name and text did not change is not parsed again, and its objects are reused. */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ParseCache } from '../../../src/policy/parse-cache';
import { loadPolicyDir } from '../../../src/policy/load';

const text = (name: string, host: string) => `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: ${name}, tenant: acme }
spec:
  agents: ["*"]
  allow: [{ name: r, hosts: ["${host}"] }]
`;

describe('ParseCache', () => {
  it('returns the same parsed objects for the same name and text, and parses again when either differs', () => {
    const cache = new ParseCache();
    const first = cache.parse('policies/a.yaml', text('a', 'a.example.test'));
    expect(first.errors).toEqual([]);
    const again = cache.parse('policies/a.yaml', text('a', 'a.example.test'));
    expect(again).toBe(first);
    expect(again.policies[0]!.policy).toBe(first.policies[0]!.policy);
    expect(cache.stats).toEqual({ parsed: 1, reused: 1 });

    const edited = cache.parse('policies/a.yaml', text('a', 'b.example.test'));
    expect(edited).not.toBe(first);
    expect(edited.policies[0]!.policy.spec.allow[0]!.hosts).toEqual(['b.example.test']);
    // Another name with the same text: errors and sources name the file, so it is its own entry.
    const other = cache.parse('policies/b.yaml', text('a', 'b.example.test'));
    expect(other).not.toBe(edited);
    expect(other.policies[0]!.source.file).toBe('policies/b.yaml');
    expect(cache.stats).toEqual({ parsed: 3, reused: 1 });
  });

  it('hands out frozen objects: a consumer cannot change a shared policy', () => {
    const cache = new ParseCache();
    const parsed = cache.parse('policies/a.yaml', text('a', 'a.example.test'));
    const policy = parsed.policies[0]!.policy;
    expect(() => policy.spec.allow[0]!.hosts!.push('evil.example.test')).toThrow(TypeError);
    expect(() => {
      (policy.metadata as { name: string }).name = 'b';
    }).toThrow(TypeError);
    expect(Object.isFrozen(parsed.policies)).toBe(true);
    expect(policy.spec.allow[0]!.hosts).toEqual(['a.example.test']);
  });

  it('drops the entry of a file missing from two listings in a row', () => {
    const cache = new ParseCache();
    cache.parse('policies/a.yaml', text('a', 'a.example.test'));
    cache.parse('policies/b.yaml', text('b', 'b.example.test'));
    cache.retainOnly(['policies/b.yaml']);
    expect(cache.size).toBe(2); // e.g. a file the admin API is about to write
    cache.retainOnly(['policies/a.yaml', 'policies/b.yaml']);
    cache.retainOnly(['policies/b.yaml']);
    expect(cache.size).toBe(2); // present in between: missing once again
    cache.retainOnly(['policies/b.yaml']);
    expect(cache.size).toBe(1);
    cache.parse('policies/a.yaml', text('a', 'a.example.test'));
    expect(cache.stats.parsed).toBe(3);
  });

  it('through loadPolicyDir: a change to one file re-parses only that file; the others keep their objects', async () => {
    const dir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-parse-cache-')), 'policies');
    await fs.mkdir(dir);
    for (const n of ['a', 'b', 'c']) await fs.writeFile(path.join(dir, `${n}.yaml`), text(n, `${n}.example.test`));
    const cache = new ParseCache();
    const first = await loadPolicyDir(dir, cache);
    expect(first.ok && first.value.policies.map((p) => p.policy.metadata.name)).toEqual(['a', 'b', 'c']);
    expect(cache.stats).toEqual({ parsed: 3, reused: 0 });

    await fs.writeFile(path.join(dir, 'b.yaml'), text('b', 'b2.example.test'));
    const second = await loadPolicyDir(dir, cache);
    expect(cache.stats).toEqual({ parsed: 4, reused: 2 });
    if (!first.ok || !second.ok) throw new Error('expected valid sets');
    expect(second.value.policies[0]).toBe(first.value.policies[0]);
    expect(second.value.policies[2]).toBe(first.value.policies[2]);
    expect(second.value.policies[1]).not.toBe(first.value.policies[1]);
    expect(second.value.policies[1]!.policy.spec.allow[0]!.hosts).toEqual(['b2.example.test']);

    await fs.unlink(path.join(dir, 'c.yaml'));
    await loadPolicyDir(dir, cache);
    await loadPolicyDir(dir, cache);
    expect(cache.size).toBe(2);
    // Without a cache nothing is shared.
    const uncached = await loadPolicyDir(dir);
    expect(uncached.ok && uncached.value.policies[0]).not.toBe(first.value.policies[0]);
  });
});
