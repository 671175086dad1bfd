/**
 * Data plane (issue 7 §4): wrk (Debian's package) sends plain-HTTP absolute-URI requests through
 * each proxy, and connectbench (bench/loadtools) measures CONNECT tunnel set-up, against:
 * direct (no proxy), exitgate's sidecar (Envoy 1.40 configured by exitgate), Squid and
 * Smokescreen, each with a 10-host and a 10,000-host allowlist of the same names. Every round
 * measures every target once (the order rotates per round); ratios are taken within a round and
 * reported as the median over rounds.
 *
 * Per target: requests/s at 64 connections; p99 latency with one connection (no queueing), and
 * the p99 it adds over direct; CONNECT tunnels/s at 16 workers and their set-up p99.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { startWorld, HTTP_UPSTREAM_IP } from '../../src/demo/world';
import { writePolicies } from '../lib/policies';
import { run, sleep } from '../lib/proc';
import { startSmokescreen, startSquid, startUpstream, type Proxy } from './peers';

export interface DataplaneOptions {
  root: string;
  workDir: string;
  rounds: number;
  /** wrk throughput run (s), latency run (s), CONNECT run (s) */
  throughputS: number;
  latencyS: number;
  connectS: number;
  largeHosts: number;
  log: (line: string) => void;
}

export type TargetName = 'direct' | 'exitgate-10' | 'exitgate-10k' | 'squid-10' | 'squid-10k' | 'smokescreen-10' | 'smokescreen-10k';
export const TARGETS: TargetName[] = ['direct', 'exitgate-10', 'exitgate-10k', 'squid-10', 'squid-10k', 'smokescreen-10', 'smokescreen-10k'];

export interface TargetRound {
  rps: number;
  /** non-2xx responses and socket errors in the throughput run */
  errors: number;
  p99Ms: number;
  p50Ms: number;
  connectRate: number;
  connectP99Ms: number;
  connectErrors: number;
}

export interface DataplaneResult {
  rounds: Array<Record<TargetName, TargetRound>>;
  checks: string[];
}

const UPSTREAM_PORT = 80;
const host = (i: number) => `h-${i}.allow.test`;

function wrkScript(hosts: string[], absolute: boolean): string {
  const list = hosts.map((h) => `"${h}"`).join(', ');
  return [
    `local hosts = { ${list} }`,
    'local reqs = {}',
    `for i, h in ipairs(hosts) do reqs[i] = wrk.format("GET", ${absolute ? '"http://" .. h .. "/"' : '"/"'}, { Host = h }) end`,
    'local n = 0',
    'request = function() n = n + 1; return reqs[(n % #reqs) + 1] end',
  ].join('\n');
}

function parseDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

interface WrkOut {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function wrk(url: string, script: string, connections: number, seconds: number): Promise<WrkOut> {
  const r = await run('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '5s', '-s', script, url], { timeoutMs: (seconds + 30) * 1000 });
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p50 = parseDuration(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const p99 = parseDuration(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0);
  if (!Number.isFinite(rps)) throw new Error(`wrk ${url}: ${out}\n${r.stderr}`);
  return { rps, p50, p99, errors };
}

async function connectbench(bin: string, args: string[], seconds: number): Promise<{ rate: number; p99: number; errors: number }> {
  const r = await run(bin, [...args, '-c', '16', '-d', `${seconds}s`], { timeoutMs: (seconds + 30) * 1000 });
  if (r.code !== 0) throw new Error(`connectbench: ${r.stderr}`);
  const j = JSON.parse(r.stdout.trim()) as { rate: number; p99: number; errors: number };
  return j;
}

/** One request through a proxy: its status (the allowlist check before measuring). */
async function statusVia(port: number, target: string): Promise<number> {
  const http = await import('node:http');
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, setHost: false, headers: { host: new URL(target).host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(-1));
    req.setTimeout(5000, () => req.destroy());
    req.end();
  });
}

export async function runDataplane(o: DataplaneOptions): Promise<DataplaneResult> {
  await fs.rm(o.workDir, { recursive: true, force: true });
  await fs.mkdir(o.workDir, { recursive: true });
  const bin = (name: string) => path.join(o.root, 'dist-bench', 'bin', name);
  const smallHosts = Array.from({ length: 10 }, (_, i) => host(i));
  const largeHosts = Array.from({ length: o.largeHosts }, (_, i) => host(i));
  // wrk rotates over four names spread over the list (first, middle, last...), the same four
  // positions in both lists, so a proxy whose ACL is a linear scan is not flattered.
  const pick = (list: string[]) => [0, Math.floor(list.length / 3), Math.floor((2 * list.length) / 3), list.length - 1].map((i) => list[i]!);
  const denied = 'http://not-allowed.allow.test/';

  const upstream = await startUpstream(bin('upstream'), `${HTTP_UPSTREAM_IP}:${UPSTREAM_PORT}`, path.join(o.workDir, 'upstream.log'));
  const world = await startWorld({ workDir: path.join(o.workDir, 'world'), tlsNames: ['tls.bench.test'] });
  const proxies: Proxy[] = [];
  const checks: string[] = [];
  try {
    for (const h of [...largeHosts, 'not-allowed.allow.test']) world.dns.setRecord(h, [HTTP_UPSTREAM_IP], [], 300);
    await writePolicies(world.policiesDir, [
      { tenant: 'acme', name: 'small', agents: ['small'], allow: [{ name: 'hosts', hosts: smallHosts, ports: [UPSTREAM_PORT] }] },
      { tenant: 'acme', name: 'large', agents: ['large'], allow: [{ name: 'hosts', hosts: largeHosts, ports: [UPSTREAM_PORT] }] },
    ]);
    const applied = await world.cp.store.applyNow();
    if (!applied.ok) throw new Error(`data-plane policies refused: ${JSON.stringify(applied.errors[0])}`);
    const small = await world.addSidecar({ tenant: 'acme', agent: 'small', instance: '0' });
    const large = await world.addSidecar({ tenant: 'acme', agent: 'large', instance: '0' });
    const squid10 = await startSquid({ dir: path.join(o.workDir, 'squid-10'), name: 'squid-10', hosts: smallHosts, upstreamIp: HTTP_UPSTREAM_IP });
    const squid10k = await startSquid({ dir: path.join(o.workDir, 'squid-10k'), name: 'squid-10k', hosts: largeHosts, upstreamIp: HTTP_UPSTREAM_IP });
    proxies.push(squid10, squid10k);
    const smokeArgs = { bin: bin('smokescreen'), upstreamIp: HTTP_UPSTREAM_IP, dns: world.dns.address };
    const smoke10 = await startSmokescreen({ ...smokeArgs, dir: path.join(o.workDir, 'smoke-10'), name: 'smokescreen-10', hosts: smallHosts });
    const smoke10k = await startSmokescreen({ ...smokeArgs, dir: path.join(o.workDir, 'smoke-10k'), name: 'smokescreen-10k', hosts: largeHosts });
    proxies.push(smoke10, smoke10k);

    const ports: Record<Exclude<TargetName, 'direct'>, number> = {
      'exitgate-10': small.proxy.port,
      'exitgate-10k': large.proxy.port,
      'squid-10': squid10.port,
      'squid-10k': squid10k.port,
      'smokescreen-10': smoke10.port,
      'smokescreen-10k': smoke10k.port,
    };
    // Every proxy allows its hosts and denies the rest before anything is measured.
    for (const [name, port] of Object.entries(ports)) {
      const list = name.endsWith('10k') ? largeHosts : smallHosts;
      const allowed = await statusVia(port, `http://${list[list.length - 1]}/`);
      const refused = await statusVia(port, denied);
      checks.push(`${name}: allowed host -> ${allowed}, host not on the list -> ${refused}`);
      if (allowed !== 200 || refused === 200) throw new Error(`${name} does not enforce the allowlist: ${checks[checks.length - 1]}`);
    }
    const scripts = path.join(o.workDir, 'scripts');
    await fs.mkdir(scripts, { recursive: true });
    const scriptFor = async (name: string, hosts: string[], absolute: boolean) => {
      const file = path.join(scripts, `${name}.lua`);
      await fs.writeFile(file, wrkScript(hosts, absolute));
      return file;
    };
    const directScript = await scriptFor('direct', pick(smallHosts), false);
    const smallScript = await scriptFor('small', pick(smallHosts), true);
    const largeScript = await scriptFor('large', pick(largeHosts), true);

    const rounds: DataplaneResult['rounds'] = [];
    for (let r = 0; r < o.rounds; r++) {
      const order = TARGETS.map((_, i) => TARGETS[(i + r) % TARGETS.length]!);
      const round = {} as Record<TargetName, TargetRound>;
      for (const t of order) {
        const isLarge = t.endsWith('10k');
        const url = t === 'direct' ? `http://${HTTP_UPSTREAM_IP}:${UPSTREAM_PORT}` : `http://127.0.0.1:${ports[t]}`;
        const script = t === 'direct' ? directScript : isLarge ? largeScript : smallScript;
        const thr = await wrk(url, script, 64, o.throughputS);
        const lat = await wrk(url, script, 1, o.latencyS);
        const target = `${isLarge ? largeHosts[largeHosts.length - 1] : smallHosts[smallHosts.length - 1]}:${UPSTREAM_PORT}`;
        const con = await connectbench(bin('connectbench'), t === 'direct' ? ['-direct', `${HTTP_UPSTREAM_IP}:${UPSTREAM_PORT}`] : ['-proxy', `127.0.0.1:${ports[t]}`, '-target', target], o.connectS);
        round[t] = { rps: thr.rps, errors: thr.errors + lat.errors, p50Ms: lat.p50, p99Ms: lat.p99, connectRate: con.rate, connectP99Ms: con.p99, connectErrors: con.errors };
        o.log(`  round ${r + 1} ${t}: ${thr.rps.toFixed(0)} req/s, p99 ${lat.p99.toFixed(3)} ms (1 conn), CONNECT ${con.rate.toFixed(0)}/s p99 ${con.p99.toFixed(2)} ms${thr.errors + con.errors ? `, errors ${thr.errors}/${con.errors}` : ''}`);
        await sleep(500);
      }
      rounds.push(round);
    }
    return { rounds, checks };
  } finally {
    for (const p of proxies) await p.stop().catch(() => undefined);
    await world.stop();
    await upstream.stop();
  }
}
