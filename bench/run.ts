/**
 * `npm run bench [-- --quick] [-- --only convergence,fanout,translation,dataplane]`: issue 7's
 * benchmarks in one run. Prints every figure with its spread and its ratio to the peers, and
 * writes dist-bench/results-<full|quick>.{json,md}. Loopback only; every loop bounded.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runConvergence, type ConvergenceResult } from './convergence/convergence';
import { runFanout, type ServerRun } from './fanout/fanout';
import { runTranslation, type TranslationRun } from './translation/translation';
import { runDataplane, TARGETS, type DataplaneResult, type TargetName } from './dataplane/dataplane';
import { figure, fmt, median, percentile, ratio, type Figure } from './lib/stats';
import { locateEnvoy } from '../src/envoy/locate';

const ROOT = path.resolve(__dirname, '..', '..');
const SECTIONS = ['convergence', 'fanout', 'translation', 'dataplane'] as const;
type Section = (typeof SECTIONS)[number];

interface Plan {
  mode: 'quick' | 'full';
  convergencePerMode: number;
  fanoutNs: number[];
  fanoutAll: number;
  fanoutOne: number;
  translationAgents: number;
  translationRuns: number;
  translationChanges: number;
  dpRounds: number;
  dpThroughputS: number;
  dpLatencyS: number;
  dpConnectS: number;
}

const QUICK: Plan = { mode: 'quick', convergencePerMode: 25, fanoutNs: [1000, 10000], fanoutAll: 2, fanoutOne: 3, translationAgents: 1000, translationRuns: 1, translationChanges: 2, dpRounds: 2, dpThroughputS: 2, dpLatencyS: 1, dpConnectS: 1 };
const FULL: Plan = { mode: 'full', convergencePerMode: 200, fanoutNs: [1000, 5000, 10000], fanoutAll: 4, fanoutOne: 6, translationAgents: 10000, translationRuns: 1, translationChanges: 2, dpRounds: 3, dpThroughputS: 6, dpLatencyS: 3, dpConnectS: 3 };

const out: string[] = [];
const say = (line = '') => {
  out.push(line);
  process.stdout.write(`${line}\n`);
};
const log = (line: string) => process.stderr.write(`${line}\n`);

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? '').trim() || 'n/a';
  }
}

async function machine(): Promise<string[]> {
  const cpu = (await fs.readFile('/proc/cpuinfo', 'utf8')).match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown';
  const envoy = await locateEnvoy().then((b) => sh(b, ['--version']).match(/version: \S+/)?.[0] ?? 'n/a').catch(() => 'n/a');
  return [
    `date: ${new Date().toISOString()}`,
    `machine: ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    `exitgate: ${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}${sh('git', ['-C', ROOT, 'status', '--porcelain', 'src']) ? ' (with uncommitted changes in src/)' : ''}; node ${process.version}`,
    `envoy ${envoy}; ${sh('go', ['version'])}; ${sh('squid', ['-v']).split('\n')[0]}; ${sh('wrk', ['--version']).split('\n')[0]?.split(' Copyright')[0]}; smokescreen ${sh(path.join(ROOT, 'dist-bench/bin/smokescreen'), ['--version']).replace(/.*version /, '')}; go-control-plane v0.14.0 (envoy v1.40.0)`,
  ];
}

function table(header: string[], rows: string[][]): void {
  say(`| ${header.join(' | ')} |`);
  say(`|${header.map(() => '---').join('|')}|`);
  for (const r of rows) say(`| ${r.join(' | ')} |`);
}

/** Splits samples into consecutive blocks: the spread of a percentile across them. */
function blocks<T>(xs: T[], n: number): T[][] {
  const size = Math.max(1, Math.ceil(xs.length / n));
  const outB: T[][] = [];
  for (let i = 0; i < xs.length; i += size) outB.push(xs.slice(i, i + size));
  return outB;
}

function reportConvergence(r: ConvergenceResult): void {
  say('## 1. Convergence with a real Envoy');
  say();
  say('One Envoy 1.40 sidecar (Delta ADS), one change at a time flipping one host\'s verdict for its agent. ms from the start of the write; p50/p99/max over all changes of that path; in brackets the spread of that percentile over 4 consecutive blocks of changes. Goal: p99 < 25 ms.');
  say();
  const rows: string[][] = [];
  for (const mode of ['file', 'api'] as const) {
    const s = r.samples.filter((x) => x.mode === mode && !x.timeout);
    for (const [what, get] of [['write -> Envoy ACK', (x: (typeof s)[number]) => x.ackMs], ['write -> first request with the new verdict', (x: (typeof s)[number]) => x.verdictMs]] as const) {
      const v = s.map(get);
      const bl = blocks(v, 4);
      const p = (q: number) => `${fmt(percentile(v, q))} (${fmt(figure(bl.map((b) => percentile(b, q))).min)}-${fmt(figure(bl.map((b) => percentile(b, q))).max)})`;
      const p99 = percentile(v, 0.99);
      rows.push([mode === 'file' ? 'policy file replaced' : 'admin API PUT', what, String(v.length), p(0.5), p(0.99), fmt(Math.max(...v)), p99 < 25 ? 'yes' : `no (${(p99 / 25).toFixed(1)}x the goal)`]);
    }
    const api = s.flatMap((x) => x.apiMs ?? []);
    if (api.length) rows.push(['admin API PUT', 'write -> PUT answered (applied)', String(api.length), fmt(percentile(api, 0.5)), fmt(percentile(api, 0.99)), fmt(Math.max(...api)), '']);
  }
  table(['write', 'measured', 'changes', 'p50 ms', 'p99 ms', 'max ms', 'p99 < 25 ms'], rows);
  for (const n of r.notes) say(`- ${n}`);
  say('- Published reference points (not measured here): agentgateway 10-30 ms, Istio 120-300 ms, Envoy Gateway ~600 ms route propagation (gateway-api-bench v2); Istio debounces 100 ms.');
  say();
}

function reportFanout(runs: ServerRun[]): void {
  say('## 2. Fan-out at scale (same load client, exitgate vs go-control-plane peer)');
  say();
  say('Load client: bench/xds-load (Go, own process), one HTTP/2 connection per simulated node, half SotW half Delta ADS, ACKing at once; at most 100 nodes connecting at a time. 10 instances per agent. "all": a tenant-wide policy change (every node gets a new route configuration; a revoking change also a new listener); "one": one agent\'s policy (its 10 nodes). exitgate: write = admin API PUT; peer: write = reload request, after exitgate\'s translator wrote its files (that translation time is shown apart and not counted). Times: median over changes (min-max). Ratio = exitgate / peer (below 1: exitgate better).');
  say();
  const rows: string[][] = [];
  for (const n of [...new Set(runs.map((r) => r.n))]) {
    const eg = runs.find((r) => r.n === n && r.server === 'exitgate');
    const gc = runs.find((r) => r.n === n && r.server === 'gcp');
    if (!eg || !gc) continue;
    const f = (xs: number[]) => figure(xs);
    const add = (what: string, a: Figure | number, b: Figure | number, goal = '') => {
      const am = typeof a === 'number' ? a : a.median;
      const bm = typeof b === 'number' ? b : b.median;
      rows.push([String(n), what, fmt(a), fmt(b), ratio(am, bm), goal]);
    };
    add('connect: all N synced, ms', eg.syncMs, gc.syncMs);
    add('connect: server CPU, s', eg.syncCpuS, gc.syncCpuS);
    add('server RSS growth per connected node, KB', eg.kbPerNode, gc.kbPerNode, n === 10000 ? `< 50 KB: ${eg.kbPerNode < 50 ? 'met' : 'not met'}` : '');
    const egAll = f(eg.all.map((c) => c.ms));
    const gcAll = f(gc.all.map((c) => c.ms));
    add('change affecting all N: write -> all ACKed, ms', egAll, gcAll, n === 10000 ? `< 2000 ms: ${egAll.median < 2000 ? 'met' : 'not met'}; vs peer: ${egAll.median <= gcAll.median ? 'met' : 'not met'}` : '');
    add('  of which: write call returned (exitgate: PUT applied), ms', f(eg.all.map((c) => c.triggerMs)), f(gc.all.map((c) => c.triggerMs)));
    if (eg.all.some((c) => c.applyMs !== undefined)) rows.push([String(n), '  of which: exitgate setPolicies (translate all), ms', fmt(f(eg.all.flatMap((c) => c.applyMs ?? []))), '', '', '']);
    add('change affecting all N: server CPU, s', f(eg.all.map((c) => c.cpuS)), f(gc.all.map((c) => c.cpuS)));
    if (gc.peerPrepMs) {
      const prep = f(gc.peerPrepMs);
      rows.push([String(n), '  peer: translator writes its files first (not counted above), ms', '', fmt(prep), '', '']);
      add('change affecting all N incl. the peer\'s translation, ms', egAll, f(gc.all.map((c, i) => c.ms + (gc.peerPrepMs![i] ?? 0))));
    }
    add('change affecting one agent: write -> ACKed, ms', f(eg.one.map((c) => c.ms)), f(gc.one.map((c) => c.ms)), `vs peer: ${median(eg.one.map((c) => c.ms)) <= median(gc.one.map((c) => c.ms)) ? 'met' : 'not met'}`);
    add('  of which: write call returned, ms', f(eg.one.map((c) => c.triggerMs)), f(gc.one.map((c) => c.triggerMs)));
    const extra = (r: ServerRun) => [...r.all, ...r.one].reduce((s, c) => s + c.extra, 0);
    const types = (r: ServerRun) => {
      const m: Record<string, number> = {};
      for (const c of [...r.all, ...r.one]) for (const [k, v] of Object.entries(c.extraTypes ?? {})) m[k] = (m[k] ?? 0) + v;
      return Object.entries(m).map(([k, v]) => `${v} ${k}`).join(', ') || '0';
    };
    rows.push([String(n), 'responses besides the expected route updates (all changes)', `${extra(eg) ? types(eg) : '0'}`, `${extra(gc) ? types(gc) : '0'}`, '', '']);
    for (const r of [eg, gc]) for (const note of r.notes) rows.push([String(n), `note (${r.server})`, note, '', '', '']);
  }
  table(['N', 'figure', 'exitgate', 'go-control-plane', 'ratio', 'goal'], rows);
  say();
}

function reportTranslation(runs: TranslationRun[]): void {
  const r0 = runs[0]!;
  say('## 3. Translation');
  say();
  say(`${r0.agents} agents (${r0.tenants} tenants), ${r0.rules} allow rules each, plus a tenant-wide policy per tenant; ${runs.length} fresh process(es) (--expose-gc), median (min-max) over runs; a change's figure is the median over its repetitions in each run. No peer: there is nothing comparable to translate.`);
  say();
  const f = (get: (r: TranslationRun) => number) => figure(runs.map(get));
  table(
    ['figure', 'value'],
    [
      ['parse + validate every policy (YAML, zod), ms', fmt(f((r) => r.parseMs))],
      ['store reload: the whole policy directory from disk, ms', fmt(f((r) => r.reloadMs))],
      ['full build: every agent\'s snapshot (IR, translation, strict encoding), ms', fmt(f((r) => r.buildMs))],
      ['memory of the built cache (heap + external after GC), MB', fmt(f((r) => r.buildBytes / 2 ** 20))],
      ['  per agent, KB', fmt(f((r) => r.buildBytes / 1024 / r.agents))],
      ['rebuild after one agent\'s policy changed (setPolicies), ms', fmt(f((r) => median(r.oneAgent.map((c) => c.ms))))],
      [`rebuild after a tenant-wide policy changed (${Math.round(r0.agents / r0.tenants)} agents affected), ms`, fmt(f((r) => median(r.tenantWide.map((c) => c.ms))))],
    ],
  );
  say();
}

function reportDataplane(r: DataplaneResult): void {
  say('## 4. Data plane');
  say();
  say('wrk (1 thread) through each proxy with plain-HTTP absolute-URI requests rotating over 4 allowed names; Go origin on 127.0.0.3:80. req/s at 64 connections; p99 with 1 connection (no queueing) and what it adds over direct; CONNECT tunnels/s with 16 workers (connect, CONNECT, 200, close) and set-up p99. Median over rounds (min-max); ratios taken within each round, median over rounds.');
  say();
  const fig = (t: TargetName, get: (x: DataplaneResult['rounds'][number][TargetName]) => number) => figure(r.rounds.map((x) => get(x[t])));
  const rows = TARGETS.map((t) => [
    t,
    fmt(fig(t, (x) => x.rps), 0),
    fmt(fig(t, (x) => x.p99Ms), 3),
    t === 'direct' ? '' : fmt(figure(r.rounds.map((x) => x[t].p99Ms - x.direct.p99Ms)), 3),
    fmt(fig(t, (x) => x.connectRate), 0),
    fmt(fig(t, (x) => x.connectP99Ms), 2),
    String(r.rounds.reduce((s, x) => s + x[t].errors + x[t].connectErrors, 0)),
  ]);
  table(['target', 'req/s (64 conns)', 'p99 ms (1 conn)', 'added p99 ms', 'CONNECT/s', 'CONNECT p99 ms', 'errors'], rows);
  say();
  const rr = (a: TargetName, b: TargetName, get: (x: DataplaneResult['rounds'][number][TargetName]) => number) => {
    const v = figure(r.rounds.map((x) => get(x[a]) / get(x[b])));
    return `${v.median.toFixed(2)}x${v.runs.length > 1 ? ` (${v.min.toFixed(2)}-${v.max.toFixed(2)})` : ''}`;
  };
  const rows2: string[][] = [];
  for (const [a, b, goal] of [
    ['exitgate-10', 'squid-10', 'ahead (> 1)'],
    ['exitgate-10', 'smokescreen-10', 'ahead (> 1)'],
    ['exitgate-10k', 'squid-10k', 'ahead (> 1)'],
    ['exitgate-10k', 'smokescreen-10k', 'ahead (> 1)'],
    ['exitgate-10k', 'exitgate-10', 'within 10% (>= 0.90)'],
    ['squid-10k', 'squid-10', ''],
    ['smokescreen-10k', 'smokescreen-10', ''],
    ['exitgate-10', 'direct', ''],
  ] as Array<[TargetName, TargetName, string]>) {
    rows2.push([`${a} / ${b}`, rr(a, b, (x) => x.rps), rr(a, b, (x) => x.connectRate), b === 'direct' ? '' : rr(b, a, (x) => x.p99Ms), goal]);
  }
  table(['ratio', 'req/s', 'CONNECT/s', 'p99 latency (inverse: > 1 = first is faster)', 'goal'], rows2);
  for (const c of r.checks) say(`- allowlist check: ${c}`);
  say();
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const plan = args.includes('--quick') ? QUICK : FULL;
  const onlyArg = args.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? (args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined);
  const only = new Set<Section>((onlyArg ? onlyArg.split(',') : SECTIONS) as Section[]);
  const workDir = path.join(os.tmpdir(), `exitgate-bench-${process.pid}`);
  const started = Date.now();
  say(`# exitgate benchmark (${plan.mode} run)`);
  say();
  for (const l of await machine()) say(`- ${l}`);
  say(`- command: npm run bench${plan.mode === 'quick' ? ' -- --quick' : ''}${onlyArg ? ` -- --only ${onlyArg}` : ''}`);
  say();
  const results: Record<string, unknown> = { plan };
  const failed: string[] = [];
  // A section that fails is reported and the others still run.
  const section = async (name: Section, fn: () => Promise<void>) => {
    if (!only.has(name)) return;
    try {
      await fn();
    } catch (err) {
      failed.push(name);
      say(`## ${name}: FAILED`);
      say();
      say('```');
      say(err instanceof Error ? (err.stack ?? err.message) : String(err));
      say('```');
      say();
    }
  };
  try {
    await section('convergence', async () => {
      log('[bench] 1. convergence with a real Envoy');
      const r = await runConvergence({ workDir: path.join(workDir, 'conv'), changesPerMode: plan.convergencePerMode, log });
      results.convergence = r;
      reportConvergence(r);
    });
    await section('fanout', async () => {
      log('[bench] 2. fan-out');
      const r = await runFanout({ root: ROOT, workDir: path.join(workDir, 'fanout'), ns: plan.fanoutNs, instancesPerAgent: 10, changesAll: plan.fanoutAll, changesOne: plan.fanoutOne, streamsPerConn: 1, connectWindow: 100, log });
      results.fanout = r;
      reportFanout(r);
    });
    await section('translation', async () => {
      log('[bench] 3. translation');
      const r = await runTranslation({ agents: plan.translationAgents, tenants: 10, rules: 20, changes: plan.translationChanges, runs: plan.translationRuns, workDir: path.join(workDir, 'translation'), log });
      results.translation = r;
      reportTranslation(r);
    });
    await section('dataplane', async () => {
      log('[bench] 4. data plane');
      const r = await runDataplane({ root: ROOT, workDir: path.join(workDir, 'dataplane'), rounds: plan.dpRounds, throughputS: plan.dpThroughputS, latencyS: plan.dpLatencyS, connectS: plan.dpConnectS, largeHosts: 10000, log });
      results.dataplane = r;
      reportDataplane(r);
    });
  } finally {
    const secs = (Date.now() - started) / 1000;
    say(`Total time: ${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s.${failed.length ? ` Failed sections: ${failed.join(', ')}.` : ''}`);
    const base = path.join(ROOT, 'dist-bench', `results-${plan.mode}`);
    await fs.writeFile(`${base}.json`, JSON.stringify(results, null, 1));
    await fs.writeFile(`${base}.md`, `${out.join('\n')}\n`);
    log(`[bench] wrote ${base}.md and .json`);
    if (failed.length) process.exitCode = 1;
    await fs.rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
