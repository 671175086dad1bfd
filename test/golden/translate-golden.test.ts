/**
 * Golden tests for translate() (ARCHITECTURE.md principle 2): every `in/<case>.yaml` is translated
 * and compared with `out/<case>.{listeners,routes,clusters}.yaml`, as parsed YAML and as text.
 * `UPDATE_GOLDEN=1` rewrites the outputs (review the diff before committing them).
 *
 * Each case's output is also (a) encoded strictly against Envoy 1.40's API, for its xDS type, and
 * (b) fed to the real Envoy's `--mode validate` in a static bootstrap, the route configuration
 * inlined into the HCM in place of `rds`. When the golden comparison passes, the output validated
 * is byte-for-byte the golden content, so the goldens themselves are what Envoy accepted.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { locateEnvoy } from '../../src/envoy/locate';
import { validateEnvoyConfig } from '../../src/envoy/process';
import { checkReferences } from '../../src/translate/check-references';
import { encodeStrict } from '../../src/xds/proto';
import {
  classifyEnvoyOutput,
  goldenMismatch,
  GOLDEN_OUT,
  KINDS,
  limitConcurrency,
  listGoldenCases,
  loadGoldenCase,
  outputPath,
  readGolden,
  renderGolden,
  resourcesOf,
  staleOutputs,
  strictEncodeErrors,
  translateCase,
  unifiedDiff,
  validationBootstrap,
  writeGolden,
  type GoldenCase,
  type Translated,
} from '../support/golden-case';

const UPDATE = process.env.UPDATE_GOLDEN === '1';
const CASES = listGoldenCases();
const VALIDATE_CONCURRENCY = 2;
const BOOTSTRAP_TYPE = 'type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap';

interface Prepared {
  c: GoldenCase;
  t: Translated;
}

const prepared = new Map<string, Prepared>();
function prepare(name: string): Prepared {
  let p = prepared.get(name);
  if (!p) {
    const c = loadGoldenCase(name);
    p = { c, t: translateCase(c) };
    prepared.set(name, p);
  }
  return p;
}

interface Validation {
  ok: boolean;
  output: string;
  ms: number;
}

describe('translate goldens', () => {
  let workDir: string;
  let envoyBin: string;
  const validations = new Map<string, Promise<Validation>>();

  beforeAll(async () => {
    // Short base path: the admin socket path must fit in sun_path (108 bytes).
    workDir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'eg-golden-'));
    envoyBin = await locateEnvoy();
    const limit = limitConcurrency(VALIDATE_CONCURRENCY);
    for (const name of CASES) {
      // Never rejects: a failure becomes a result its own test reports.
      const run = async (): Promise<Validation> => {
        const start = performance.now();
        try {
          const { c, t } = prepare(name);
          const bootstrap = validationBootstrap(c, t.set, path.join(workDir, `${name}.sock`));
          const strict = encodeStrict(BOOTSTRAP_TYPE, bootstrap);
          if (!strict.ok) return { ok: false, output: `bootstrap does not encode: ${strict.errors.join('; ')}`, ms: performance.now() - start };
          const result = await validateEnvoyConfig(envoyBin, stringify(bootstrap, { aliasDuplicateObjects: false, lineWidth: 0 }), path.join(workDir, name));
          return { ...result, ms: performance.now() - start };
        } catch (err) {
          return { ok: false, output: err instanceof Error ? err.message : String(err), ms: performance.now() - start };
        }
      };
      validations.set(name, limit(run));
    }
  }, 10 * 60_000);

  afterAll(async () => {
    await Promise.allSettled(validations.values());
    if (workDir) await fs.promises.rm(workDir, { recursive: true, force: true });
  });

  it('has enough cases and no output without an input', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(8);
    const stale = staleOutputs(CASES);
    if (UPDATE) {
      for (const f of stale) fs.rmSync(path.join(GOLDEN_OUT, f));
    } else if (stale.length > 0) {
      throw new Error(`golden outputs with no input case (delete them, or run UPDATE_GOLDEN=1): ${stale.join(', ')}`);
    }
  });

  describe.each(CASES)('%s', (name) => {
    it('loads, and its translation is self-consistent', () => {
      const { c, t } = prepare(name);
      expect([t.ir.tenant, t.ir.agent]).toEqual([c.header.tenant, c.header.agent]);
      // What the snapshot cache checks before publishing (ARCHITECTURE.md principle 4).
      expect(checkReferences(t.set)).toEqual([]);
      expect(t.set.secrets).toEqual([]);
      for (const kind of KINDS) for (const r of t.set[kind]) expect(r.name).toBe(r.resource.name);
    });

    it.each(KINDS)(`matches out/${name}.%s.yaml`, (kind) => {
      const { t } = prepare(name);
      const actual = renderGolden(name, kind, resourcesOf(t.set, kind));
      if (UPDATE) {
        if (readGolden(name, kind) !== actual) writeGolden(name, kind, actual);
        return;
      }
      const mismatch = goldenMismatch(path.relative(process.cwd(), outputPath(name, kind)), readGolden(name, kind), actual);
      if (mismatch) throw new Error(mismatch);
    });

    it('encodes strictly against the Envoy 1.40 API', () => {
      expect(strictEncodeErrors(prepare(name).t.set)).toEqual([]);
    });

    it('passes envoy --mode validate, with no unexpected warning', async () => {
      const v = await validations.get(name);
      if (!v) throw new Error('validation was not scheduled (beforeAll failed?)');
      const { known, unexpected } = classifyEnvoyOutput(v.output);
      if (!v.ok) throw new Error(`envoy --mode validate rejected ${name} (${Math.round(v.ms)} ms; ${known} known warnings not shown):\n${unexpected.join('\n')}`);
      // A deprecation or other new warning is a change to review, like a golden diff.
      expect(unexpected).toEqual([]);
    });
  });

  describe('the golden comparison can fail', () => {
    const name = CASES.includes('deny-inside-wildcard') ? 'deny-inside-wildcard' : CASES[0]!;

    it('reports a changed domain as a content difference, with a diff naming it', () => {
      const { t } = prepare(name);
      const routes = structuredClone(resourcesOf(t.set, 'routes'));
      const vhosts = routes[0]!.virtual_hosts as Array<{ domains: string[] }>;
      const original = vhosts[0]!.domains[0]!;
      const changed = original.replace('example.test', 'example.tes');
      expect(changed).not.toBe(original);
      vhosts[0]!.domains[0] = changed;
      const golden = renderGolden(name, 'routes', resourcesOf(t.set, 'routes'));
      const mutated = renderGolden(name, 'routes', routes);

      expect(goldenMismatch('routes', golden, golden)).toBeNull();
      const mismatch = goldenMismatch('routes', golden, mutated);
      expect(mismatch).not.toBeNull();
      expect(mismatch).toContain('content differs');
      const lines = mismatch!.split('\n');
      expect(lines.filter((l) => l.startsWith('-') && l.includes(original))).toHaveLength(1);
      expect(lines.filter((l) => l.startsWith('+') && l.includes(changed))).toHaveLength(1);
    });

    it('reports formatting drift even when the parsed YAML is equal', () => {
      const { t } = prepare(name);
      const golden = renderGolden(name, 'listeners', resourcesOf(t.set, 'listeners'));
      const reindented = renderGolden(name, 'listeners', resourcesOf(t.set, 'listeners'), { indent: 4 });
      const mismatch = goldenMismatch('listeners', golden, reindented);
      expect(mismatch).toContain('formatting drifted');
    });

    it('reports a reordered list (virtual hosts swapped) as a content difference', () => {
      const { t } = prepare(name);
      const routes = structuredClone(resourcesOf(t.set, 'routes'));
      const vhosts = routes[0]!.virtual_hosts as unknown[];
      expect(vhosts.length).toBeGreaterThanOrEqual(2);
      [vhosts[0], vhosts[1]] = [vhosts[1], vhosts[0]];
      const mismatch = goldenMismatch('routes', renderGolden(name, 'routes', resourcesOf(t.set, 'routes')), renderGolden(name, 'routes', routes));
      expect(mismatch).toContain('content differs');
    });

    it('envoy --mode validate rejects a broken variant of a golden (a duplicated domain)', async () => {
      const { c, t } = prepare(name);
      const bootstrap = validationBootstrap(c, t.set, path.join(workDir, 'broken.sock'));
      type Inlined = { filter_chains: Array<{ filters: Array<{ typed_config: { route_config: { virtual_hosts: Array<{ domains: string[] }> } } }> }> };
      const listeners = (bootstrap.static_resources as { listeners: Inlined[] }).listeners;
      const routeConfig = listeners[0]!.filter_chains[0]!.filters[0]!.typed_config.route_config;
      routeConfig.virtual_hosts[1]!.domains = [...routeConfig.virtual_hosts[0]!.domains];
      const result = await validateEnvoyConfig(envoyBin, stringify(bootstrap, { aliasDuplicateObjects: false, lineWidth: 0 }), path.join(workDir, 'broken'));
      expect(result.ok).toBe(false);
      expect(classifyEnvoyOutput(result.output).unexpected.join('\n')).toMatch(/Only unique values for domains are permitted/);
    });

    it('reports a missing golden file', () => {
      expect(goldenMismatch('routes', undefined, 'x')).toContain('missing');
    });

    it('diffs line by line with context', () => {
      expect(unifiedDiff('a\nb\nc\n', 'a\nb\nc\n')).toBe('');
      expect(unifiedDiff('a\nb\nc\nd', 'a\nB\nc\nd', 1)).toBe(['--- golden (expected)', '+++ translate (actual)', '@@ golden line 1, actual line 1 @@', ' a', '-b', '+B', ' c'].join('\n'));
    });
  });
});
