/**
 * Golden tests for the translation (ARCHITECTURE.md principle 2): `test/golden/in/<case>.yaml` ->
 * `test/golden/out/<case>.{listeners,routes,clusters}.yaml`.
 *
 * An input file is a multi-document YAML file. Its first document is the case header (which agent,
 * where its listener binds, the server-wide translate options); the others are policy documents,
 * parsed exactly as the file store parses them (parsePolicyText per document, then crossCheck).
 *
 * Nothing here sorts or normalises the translation's output: the goldens are what `translate`
 * produced, serialised as YAML, so any change of content, order or formatting shows up in review.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { z } from 'zod';
import { buildAgentIr } from '../../src/ir/build-ir';
import type { AgentIr } from '../../src/ir/agent-ir';
import { crossCheck, parsePolicyText } from '../../src/policy/parse';
import { formatPolicyError, type PolicyError } from '../../src/policy/errors';
import type { PolicySet } from '../../src/policy/documents';
import { translate } from '../../src/translate/translate';
import { SIDECAR_MODES, XDS_PROTOCOLS, type NodeFacts, type SidecarMode, type TranslateOptions, type XdsProtocol } from '../../src/translate/options';
import type { ResourceSet } from '../../src/translate/resource-set';
import { parseCidr } from '../../src/util/cidr';
import { parseHostPort } from '../../src/xds/node-facts';
import { encodeStrict } from '../../src/xds/proto';
import { TYPE } from '../../src/xds/type-urls';

export const GOLDEN_DIR = path.resolve(__dirname, '..', 'golden');
export const GOLDEN_IN = path.join(GOLDEN_DIR, 'in');
export const GOLDEN_OUT = path.join(GOLDEN_DIR, 'out');

/** The three golden outputs of a case, in the order they are written and checked. */
export const KINDS = ['listeners', 'routes', 'clusters'] as const;
export type Kind = (typeof KINDS)[number];

export const TYPE_OF: Record<Kind, string> = { listeners: TYPE.listener, routes: TYPE.route, clusters: TYPE.cluster };

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const headerSchema = z.strictObject({
  kind: z.literal('GoldenCase'),
  description: z.string().min(1),
  tenant: z.string().regex(LABEL),
  agent: z.string().regex(LABEL),
  /** `IP:PORT` or `[IPv6]:PORT`, as node.metadata.exitgate.listen carries it. */
  listen: z.string(),
  guardAllow: z.array(z.string()).optional(),
  /** `IP:PORT` or `[IPv6]:PORT`. */
  dnsResolver: z.string().optional(),
  /** node.metadata.exitgate.xds; absent means ADS, as for a node that does not say. */
  xdsProtocol: z.enum(XDS_PROTOCOLS as [XdsProtocol, ...XdsProtocol[]]).optional(),
  /** node.metadata.exitgate.mode; absent means proxy. */
  mode: z.enum(SIDECAR_MODES as [SidecarMode, ...SidecarMode[]]).optional(),
});

export type GoldenHeader = z.infer<typeof headerSchema>;

export interface GoldenCase {
  name: string;
  file: string;
  header: GoldenHeader;
  policies: PolicySet;
  node: NodeFacts;
  options: TranslateOptions;
}

/** The case names (input files without `.yaml`), sorted. */
export function listGoldenCases(): string[] {
  return fs
    .readdirSync(GOLDEN_IN)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

const inputPath = (name: string): string => path.join(GOLDEN_IN, `${name}.yaml`);
export const outputPath = (name: string, kind: Kind): string => path.join(GOLDEN_OUT, `${name}.${kind}.yaml`);

function hostPort(what: string, text: string): { address: string; port: number } {
  const hp = parseHostPort(text);
  if (!hp) throw new Error(`${what} ${JSON.stringify(text)} is not IP:PORT or [IPv6]:PORT`);
  return { address: hp.host, port: hp.port };
}

/** Reads and validates one case; throws with every problem found (a broken case is a test bug). */
export function loadGoldenCase(name: string): GoldenCase {
  const file = path.relative(path.resolve(GOLDEN_DIR, '..', '..'), inputPath(name));
  const text = fs.readFileSync(inputPath(name), 'utf8');
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const yamlErrors = list.flatMap((d, i) => d.errors.map((e) => `${file}: doc ${i + 1}: ${e.message}`));
  if (yamlErrors.length > 0) throw new Error(yamlErrors.join('\n'));
  if (list.length === 0) throw new Error(`${file}: empty; the first document must be the GoldenCase header`);

  const headerParsed = headerSchema.safeParse(list[0]!.toJS());
  if (!headerParsed.success) {
    throw new Error(`${file}: doc 1 (GoldenCase header): ${headerParsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const header = headerParsed.data;

  // Each policy document is parsed on its own, then given its real position in the file.
  const policies: PolicySet = { policies: [], credentials: [] };
  const errors: PolicyError[] = [];
  list.slice(1).forEach((doc, i) => {
    const index = i + 2;
    const parsed = parsePolicyText(file, doc.toString());
    policies.policies.push(...parsed.policies.map((p) => ({ ...p, source: { file, doc: index } })));
    policies.credentials.push(...parsed.credentials.map((c) => ({ ...c, source: { file, doc: index } })));
    errors.push(...parsed.errors.map((e) => ({ ...e, doc: index })));
  });
  errors.push(...crossCheck(policies));
  if (errors.length > 0) throw new Error(errors.map(formatPolicyError).join('\n'));

  const guardAllow = (header.guardAllow ?? []).map((c) => {
    const parsed = parseCidr(c);
    if (!parsed.ok) throw new Error(`${file}: guardAllow: ${parsed.reason}`);
    return parsed.value;
  });
  const options: TranslateOptions = {
    guardAllow,
    ...(header.dnsResolver !== undefined ? { dnsResolver: hostPort(`${file}: dnsResolver`, header.dnsResolver) } : {}),
  };
  const node: NodeFacts = {
    listen: hostPort(`${file}: listen`, header.listen),
    ...(header.xdsProtocol !== undefined ? { xdsProtocol: header.xdsProtocol } : {}),
    ...(header.mode === 'transparent' ? { mode: 'transparent' as const } : {}),
  };
  return { name, file, header, policies, node, options };
}

export interface Translated {
  ir: AgentIr;
  set: ResourceSet;
}

export function translateCase(c: GoldenCase): Translated {
  const ir = buildAgentIr(c.policies, c.header.tenant, c.header.agent);
  return { ir, set: translate(ir, c.node, c.options) };
}

/** The resource objects of one kind, exactly as translate returned them. */
export function resourcesOf(set: ResourceSet, kind: Kind): Record<string, unknown>[] {
  return set[kind].map((r) => r.resource);
}

/**
 * The golden text of one kind: a comment saying where it comes from, then the YAML list of the
 * resources in translate's order. No line folding (a folded string would diff badly) and no
 * anchors (a shared object must be spelled out, as Envoy receives it).
 */
export function renderGolden(caseName: string, kind: Kind, resources: Record<string, unknown>[], opts: { indent?: number } = {}): string {
  const head =
    `# Golden output of translate() for test/golden/in/${caseName}.yaml: ${kind}.\n` +
    '# Generated by test/golden/translate-golden.test.ts; rewrite with UPDATE_GOLDEN=1 and review the diff.\n';
  return head + stringify(resources, { lineWidth: 0, aliasDuplicateObjects: false, indent: opts.indent ?? 2 });
}

/** A small unified line diff (LCS-based; goldens are a few hundred lines). */
export function unifiedDiff(expected: string, actual: string, context = 3): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const n = a.length;
  const m = b.length;
  // lcs[i][j] = length of the LCS of a[i..] and b[j..]
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  /** aLine/bLine: 1-based line numbers in expected/actual where this op sits. */
  type Op = { tag: ' ' | '-' | '+'; text: string; aLine: number; bLine: number };
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    const at = { aLine: i + 1, bLine: j + 1 };
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ tag: ' ', text: a[i]!, ...at });
      i += 1;
      j += 1;
    } else if (i < n && (j >= m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      ops.push({ tag: '-', text: a[i]!, ...at }); // removals before additions, as diff(1) prints them
      i += 1;
    } else {
      ops.push({ tag: '+', text: b[j]!, ...at });
      j += 1;
    }
  }
  const changed = ops.map((op, k) => (op.tag !== ' ' ? k : -1)).filter((k) => k >= 0);
  if (changed.length === 0) return '';
  // Group changes into hunks with `context` unchanged lines around them.
  const out: string[] = ['--- golden (expected)', '+++ translate (actual)'];
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - context);
    let end = changed[k]! + context;
    while (k + 1 < changed.length && changed[k + 1]! - context <= end + 1) end = changed[++k]! + context;
    k += 1;
    end = Math.min(ops.length - 1, end);
    const hunk = ops.slice(start, end + 1);
    out.push(`@@ golden line ${hunk[0]!.aLine}, actual line ${hunk[0]!.bLine} @@`);
    for (const op of hunk) out.push(`${op.tag}${op.text}`);
  }
  return out.join('\n');
}

/**
 * Compares a golden file's text with freshly rendered output. Returns null when identical,
 * otherwise a readable explanation: whether the content differs (parsed YAML not deep-equal) or
 * only the formatting drifted, followed by a unified diff.
 */
export function goldenMismatch(label: string, expectedText: string | undefined, actualText: string): string | null {
  if (expectedText === undefined) return `${label}: golden file is missing; run UPDATE_GOLDEN=1 npx jest test/golden and review it`;
  if (expectedText === actualText) return null;
  let sameContent: boolean;
  try {
    sameContent = isDeepStrictEqual(parse(expectedText), parse(actualText));
  } catch {
    sameContent = false; // an unparsable golden is a content difference
  }
  const what = sameContent ? 'formatting drifted (parsed YAML is equal, text is not)' : 'content differs';
  return `${label}: ${what}; if the change is intended, run UPDATE_GOLDEN=1 npx jest test/golden and review the diff\n${unifiedDiff(expectedText, actualText)}`;
}

export function readGolden(name: string, kind: Kind): string | undefined {
  try {
    return fs.readFileSync(outputPath(name, kind), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function writeGolden(name: string, kind: Kind, text: string): void {
  fs.mkdirSync(GOLDEN_OUT, { recursive: true });
  fs.writeFileSync(outputPath(name, kind), text);
}

/** Output files that belong to no input case (a renamed or deleted case leaves them behind). */
export function staleOutputs(cases: string[]): string[] {
  if (!fs.existsSync(GOLDEN_OUT)) return [];
  const expected = new Set(cases.flatMap((c) => KINDS.map((k) => `${c}.${k}.yaml`)));
  return fs
    .readdirSync(GOLDEN_OUT)
    .filter((f) => !expected.has(f))
    .sort();
}

/** encodeStrict for every resource; the errors name the resource. */
export function strictEncodeErrors(set: ResourceSet): string[] {
  const errors: string[] = [];
  for (const kind of KINDS) {
    for (const r of set[kind]) {
      const encoded = encodeStrict(TYPE_OF[kind], r.resource);
      if (!encoded.ok) errors.push(...encoded.errors.map((e) => `${kind} ${r.name}: ${e}`));
    }
  }
  return errors;
}

/**
 * Replaces each HCM's `rds` by its route configuration inline, so the listeners can stand in a
 * static bootstrap (there is no ADS in `--mode validate`). Returns deep copies; throws when an
 * HCM names a route config the set does not have, or when no HCM uses RDS at all.
 */
export function inlineRouteConfigs(listeners: Record<string, unknown>[], routes: Record<string, unknown>[]): Record<string, unknown>[] {
  const byName = new Map(routes.map((r) => [r.name as string, r]));
  let inlined = 0;
  const copies = structuredClone(listeners);
  for (const listener of copies) {
    const chains = [...((listener.filter_chains as Record<string, unknown>[] | undefined) ?? [])];
    if (listener.default_filter_chain) chains.push(listener.default_filter_chain as Record<string, unknown>);
    for (const chain of chains) {
      for (const filter of (chain.filters as Record<string, unknown>[] | undefined) ?? []) {
        const hcm = filter.typed_config as Record<string, unknown> | undefined;
        if (!hcm || hcm['@type'] !== HCM_TYPE || hcm.rds === undefined) continue;
        const name = (hcm.rds as { route_config_name?: string }).route_config_name;
        const routeConfig = name === undefined ? undefined : byName.get(name);
        if (!routeConfig) throw new Error(`listener ${String(listener.name)}: HCM names route config ${String(name)}, which the set does not have`);
        delete hcm.rds;
        hcm.route_config = structuredClone(routeConfig);
        inlined += 1;
      }
    }
  }
  if (inlined === 0) throw new Error('no HttpConnectionManager with rds found in the listeners');
  return copies;
}

/**
 * A static bootstrap holding the case's resources for `envoy --mode validate`: admin on a unix
 * socket, the golden clusters, the golden listeners with their route configs inlined, and no
 * dynamic_resources.
 */
export function validationBootstrap(c: GoldenCase, set: ResourceSet, adminSocketPath: string): Record<string, unknown> {
  return {
    node: { id: `${c.header.tenant}/${c.header.agent}/golden`, cluster: `${c.header.tenant}/${c.header.agent}` },
    admin: { address: { pipe: { path: adminSocketPath, mode: 0o600 } } },
    static_resources: {
      clusters: structuredClone(resourcesOf(set, 'clusters')),
      listeners: inlineRouteConfigs(resourcesOf(set, 'listeners'), resourcesOf(set, 'routes')),
    },
  };
}

/**
 * Envoy's warning for every `xds.core.v3.CidrRange` it loads: the guard's
 * DnsCacheConfig.resolved_address_filter (envoy.type.matcher.v3.AddressMatcher) holds them, and
 * their proto file is marked work-in-progress. Expected, one line per range and per load.
 */
const KNOWN_WARNING = /message 'xds\.core\.v3\.CidrRange' is contained in proto file 'xds\/core\/v3\/cidr\.proto' marked as work-in-progress/;
const VALIDATE_OK = /^configuration '.*' OK$/;

/** `envoy --mode validate` output split into what is expected and what is not (new warnings, errors). */
export function classifyEnvoyOutput(output: string): { known: number; unexpected: string[] } {
  const lines = output.split('\n').filter((l) => l.trim() !== '');
  const unexpected = lines.filter((l) => !KNOWN_WARNING.test(l) && !VALIDATE_OK.test(l));
  return { known: lines.length - unexpected.length, unexpected };
}

/** Runs `tasks` with at most `limit` in flight; each result settles independently. */
export function limitConcurrency(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: Array<() => void> = [];
  const next = (): void => {
    if (active >= limit) return;
    const run = queue.shift();
    if (!run) return;
    active += 1;
    run();
  };
  return <T>(task: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      queue.push(() => {
        task()
          .then(resolve, reject)
          .finally(() => {
            active -= 1;
            next();
          });
      });
      next();
    });
}
