/**
 * Fan-out at scale (issue 7 §2): a load client in its own process holds N simulated ADS streams
 * and ACKs like Envoy; the same client runs against exitgate (`exitgate serve`, its own process)
 * and against a go-control-plane peer (bench/gcp-peer, its own process) serving the same
 * resources, which exitgate's translator writes to files. Both are measured back to back in the
 * same run, on the same machine, with the same client code.
 *
 * Per server and N: time for all N to be synced on connect; the server's RSS growth per connected
 * node and CPU; time for a change affecting all N (a tenant-wide policy) to be ACKed by all; time
 * for a change affecting one agent (its instances) to be ACKed. Times run from the write (the
 * admin API PUT to exitgate; the reload request to the peer, after its files were written) to the
 * last ACK the client sent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { SnapshotCache } from '../../src/cache/snapshot-cache';
import type { Snapshot } from '../../src/cache/snapshot';
import { decodeToJson } from '../../src/xds/proto';
import { TYPE } from '../../src/xds/type-urls';
import { silentLogger } from '../../src/util/logger';
import type { PolicySet } from '../../src/policy/documents';
import { freePort } from '../../src/demo/free-port';
import { fleetPolicies, policySet, policyText, tenantWide, withExtraHost, writePolicies, type PolicySpec } from '../lib/policies';
import { cpuSeconds, nowMs, rssBytes, sleep, startChild, type Child } from '../lib/proc';

export type ServerKind = 'exitgate' | 'gcp';

export interface FanoutOptions {
  root: string;
  workDir: string;
  ns: number[];
  instancesPerAgent: number;
  changesAll: number;
  changesOne: number;
  streamsPerConn: number;
  /** At most this many nodes connecting at once (sidecars starting over time, not a herd). */
  connectWindow: number;
  log: (line: string) => void;
}

export interface ChangeRun {
  /** write -> last ACK of the change (ms) */
  ms: number;
  /** write -> the write call returned (exitgate: PUT answered, i.e. applied; peer: reload answered) */
  triggerMs: number;
  /** server CPU seconds during the change */
  cpuS: number;
  /** responses other than each expected node's one route update (by type) */
  extra: number;
  extraTypes: Record<string, number>;
  /** exitgate: the store's "policies applied" time (setPolicies) */
  applyMs?: number;
  timeout?: boolean;
}

export interface ServerRun {
  server: ServerKind;
  n: number;
  agents: number;
  connections: number;
  syncMs: number;
  syncCpuS: number;
  rssBaseMB: number;
  rssConnectedMB: number;
  kbPerNode: number;
  /** Per change: write -> last ACK (ms), server CPU seconds, pushes nobody expected. */
  all: ChangeRun[];
  one: ChangeRun[];
  /** gcp only: time exitgate's translator took to write the peer's files for each change. */
  peerPrepMs?: number[];
  notes: string[];
}

const TENANT = 'acme';
const PORT = 443;
const RULES = 3;
const HOSTS_PER_RULE = 2;
const LISTEN = { address: '127.0.0.1', port: 15001 };

type FromClient =
  | { event: 'ready' }
  | { event: 'connected'; nodes: number; connections: number; startedAt: number; syncedAt: number; ended: number; timeout?: boolean; unsynced?: number }
  | { event: 'armed' }
  | { event: 'done'; expected: number; firstAt: number; lastAt: number; lastAnyAt: number; extra: number; extraTypes: Record<string, number>; timeout?: boolean; remaining?: number }
  | { event: 'error'; message: string };

/** The Go load client (bench/xds-load), driven by JSON lines on its stdin and stdout. */
class LoadClient {
  private waiters: Array<(m: FromClient) => void> = [];
  /** Events that arrived before anyone asked (e.g. a change ACKed before the PUT answered). */
  private backlog: FromClient[] = [];
  private constructor(private readonly proc: ChildProcess) {
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      let m: FromClient;
      try {
        m = JSON.parse(line) as FromClient;
      } catch {
        return;
      }
      if (m.event === 'error') process.stderr.write(`load client error: ${m.message}\n`);
      if (process.env.BENCH_DEBUG) process.stderr.write(`load client: ${line}\n`);
      const w = this.waiters.shift();
      if (w) w(m);
      else this.backlog.push(m);
    });
  }
  static async start(bin: string): Promise<LoadClient> {
    const proc = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    const c = new LoadClient(proc);
    const first = await c.next(20_000);
    if (first.event !== 'ready') throw new Error('load client did not start');
    return c;
  }
  next(timeoutMs: number): Promise<FromClient> {
    const queued = this.backlog.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load client silent for ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  }
  send(m: Record<string, unknown>): void {
    this.proc.stdin!.write(`${JSON.stringify(m)}\n`);
  }
  async close(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.send({ cmd: 'close' });
    this.proc.stdin!.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}

/**
 * Writes the peer's resource files: for each agent, exactly the resources exitgate serves it
 * (exitgate's own SnapshotCache builds them: translation, revocation drain epochs, strict
 * encoding), decoded back to proto3 JSON for go-control-plane's protojson.Unmarshal.
 */
class PeerFiles {
  private readonly cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly dirty = new Set<string>();

  constructor(private readonly dir: string, set: PolicySet, agents: string[]) {
    this.cache.setPolicies(set);
    for (const agent of agents) {
      const w = this.cache.watch({ tenant: TENANT, agent, listen: LISTEN, xdsProtocol: 'delta' }, (snap) => {
        this.snapshots.set(agent, snap);
        this.dirty.add(agent);
      });
      if (!w.current) throw new Error(`no snapshot for ${agent}: ${w.error}`);
      this.snapshots.set(agent, w.current);
      this.dirty.add(agent);
    }
  }

  /** Applies a new policy set; returns the agents whose resources changed. */
  update(set: PolicySet): string[] {
    this.cache.setPolicies(set);
    return [...this.dirty];
  }

  async flush(): Promise<number> {
    await fs.mkdir(path.join(this.dir, TENANT), { recursive: true });
    const written = this.dirty.size;
    for (const agent of this.dirty) {
      const snap = this.snapshots.get(agent)!;
      const json = (type: string) => [...(snap.resources.get(type as never)?.values() ?? [])].map((r) => decodeToJson(type, r.value));
      const body = { clusters: json(TYPE.cluster), listeners: json(TYPE.listener), routes: json(TYPE.route) };
      await fs.writeFile(path.join(this.dir, TENANT, `${agent}.json`), JSON.stringify(body));
    }
    this.dirty.clear();
    return written;
  }
}

async function http(method: string, url: string, body?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method, ...(body !== undefined ? { body, headers: { 'content-type': 'application/yaml' } } : {}), signal: AbortSignal.timeout(120_000) });
  return { status: res.status, text: await res.text() };
}

interface RunningServer {
  child: Child;
  xds: string;
  trigger(kind: 'all' | 'one', spec: PolicySpec): Promise<void>;
  /** For gcp: write the peer's files for a change (timed separately, not part of the change). */
  prepare?(specs: PolicySpec[], agents: string[] | 'all'): Promise<number>;
  applyMs: number[];
}

async function startExitgate(o: FanoutOptions, policiesDir: string): Promise<RunningServer> {
  const xdsPort = await freePort();
  const adminPort = await freePort();
  const applyMs: number[] = [];
  const child = startChild(process.execPath, [path.join(o.root, 'bin', 'exitgate.js'), 'serve', '--policies', policiesDir, '--xds-listen', `127.0.0.1:${xdsPort}`, '--admin-listen', `127.0.0.1:${adminPort}`, '--insecure-xds'], {
    cwd: o.root,
    keepLines: 50,
    onLine: (l) => {
      if (l.includes('"policies applied"')) {
        try {
          applyMs.push((JSON.parse(l) as { ms: number }).ms);
        } catch {
          /* not JSON */
        }
      }
    },
  });
  await child.waitLine(/control plane listening/, 120_000);
  const admin = `http://127.0.0.1:${adminPort}`;
  return {
    child,
    xds: `127.0.0.1:${xdsPort}`,
    applyMs,
    async trigger(_kind, spec) {
      const r = await http('PUT', `${admin}/v1/tenants/${spec.tenant}/policies/${spec.name}`, policyText(spec));
      if (r.status !== 200 && r.status !== 201) throw new Error(`admin PUT ${spec.name}: ${r.status} ${r.text.slice(0, 300)}`);
    },
  };
}

async function startGcp(o: FanoutOptions, resourcesDir: string, files: PeerFiles, getSet: () => PolicySet): Promise<RunningServer> {
  const child = startChild(path.join(o.root, 'dist-bench', 'bin', 'gcp-peer'), ['-dir', resourcesDir], { keepLines: 50 });
  const line = await child.waitLine(/"xds":/, 120_000);
  const addr = JSON.parse(line) as { xds: string; control: string };
  let pendingKeys: string[] = [];
  return {
    child,
    xds: addr.xds,
    applyMs: [],
    async prepare(_specs, agents) {
      const t0 = nowMs();
      const changed = files.update(getSet());
      await files.flush();
      // A change to every agent: reload everything; otherwise only the agents whose files changed.
      pendingKeys = agents === 'all' ? [] : changed.map((a) => `${TENANT}/${a}`);
      return nowMs() - t0;
    },
    async trigger() {
      const q = pendingKeys.map((k) => `key=${encodeURIComponent(k)}`).join('&');
      const r = await http('POST', `http://${addr.control}/reload${q ? `?${q}` : ''}`);
      if (r.status !== 200) throw new Error(`peer reload: ${r.status} ${r.text.slice(0, 300)}`);
    },
  };
}

async function measureServer(o: FanoutOptions, server: ServerKind, n: number): Promise<ServerRun> {
  const agents = Math.max(1, Math.floor(n / o.instancesPerAgent));
  const dir = path.join(o.workDir, `fanout-${n}-${server}`);
  await fs.rm(dir, { recursive: true, force: true });
  const policiesDir = path.join(dir, 'policies');
  const resourcesDir = path.join(dir, 'resources');
  // The live policy specs, mutated by the changes (the peer's files are rewritten from them).
  const specs = fleetPolicies(TENANT, agents, { rulesPerAgent: RULES, hostsPerRule: HOSTS_PER_RULE, port: PORT });
  const byName = new Map(specs.map((s) => [s.name, s]));
  const currentSet = () => policySet([...byName.values()]);
  await writePolicies(policiesDir, specs);
  let files: PeerFiles | undefined;
  if (server === 'gcp') {
    files = new PeerFiles(resourcesDir, currentSet(), specs.filter((s) => s.name !== 'tenant-wide').map((s) => s.agents[0]!));
    await files.flush();
  }

  const srv = server === 'exitgate' ? await startExitgate(o, policiesDir) : await startGcp(o, resourcesDir, files!, currentSet);
  const notes: string[] = [];
  const client = await LoadClient.start(path.join(o.root, 'dist-bench', 'bin', 'xds-load'));
  try {
    await sleep(1500); // let start-up garbage settle before the baseline
    const rssBase = rssBytes(srv.child.pid);
    const cpu0 = cpuSeconds(srv.child.pid);
    // Node i is acme/agent-<i % agents>/i-<i / agents>; even i speak Delta, odd i SotW (see xds-load).
    client.send({ cmd: 'connect', target: srv.xds, n, agents, tenant: TENANT, streamsPerConn: o.streamsPerConn, window: o.connectWindow, timeoutMs: 180_000 });
    const connected = await client.next(200_000);
    if (connected.event !== 'connected') throw new Error(`load client: ${JSON.stringify(connected)}`);
    if (connected.timeout) notes.push(`${connected.unsynced} of ${n} nodes not synced within 180 s`);
    const syncMs = connected.syncedAt - connected.startedAt;
    const syncCpuS = cpuSeconds(srv.child.pid) - cpu0;
    await sleep(3000);
    const rssConnected = rssBytes(srv.child.pid);
    o.log(`  ${server} N=${n}: ${connected.connections} connections, synced in ${syncMs.toFixed(0)} ms, RSS ${(rssBase / 2 ** 20).toFixed(0)} -> ${(rssConnected / 2 ** 20).toFixed(0)} MB`);

    const change = async (kind: 'all' | 'one', k: number): Promise<{ ms: number; triggerMs: number; cpuS: number; extra: number; extraTypes: Record<string, number>; timeout?: boolean; prepMs?: number }> => {
      let spec: PolicySpec;
      let affected: string[] | 'all';
      if (kind === 'all') {
        spec = tenantWide(TENANT, k, PORT);
        affected = 'all';
      } else {
        const agent = `agent-${(k * 7919) % agents}`;
        spec = withExtraHost(byName.get(`p-${agent}`)!, k);
        affected = [agent];
      }
      byName.set(spec.name, spec);
      const prepMs = srv.prepare ? await srv.prepare([spec], affected) : undefined;
      client.send({ cmd: 'arm', ...(affected === 'all' ? {} : { agentList: affected }), timeoutMs: 120_000, quietMs: kind === 'all' ? 500 : 300 });
      const armed = await client.next(10_000);
      if (armed.event !== 'armed') throw new Error(`load client: ${JSON.stringify(armed)}`);
      const c0 = cpuSeconds(srv.child.pid);
      const t0 = nowMs();
      await srv.trigger(kind, spec);
      const triggerMs = nowMs() - t0;
      const done = await client.next(180_000);
      if (done.event !== 'done') throw new Error(`load client: ${JSON.stringify(done)}`);
      const cpuS = cpuSeconds(srv.child.pid) - c0;
      // Done when the last expected node ACKed the change and any further push it caused (e.g. a
      // listener that drains revoked tunnels) was ACKed too.
      return { ms: Math.max(done.lastAt, done.lastAnyAt) - t0, triggerMs, cpuS, extra: done.extra, extraTypes: done.extraTypes, ...(done.timeout ? { timeout: true } : {}), ...(prepMs !== undefined ? { prepMs } : {}) };
    };

    const all: ServerRun['all'] = [];
    const one: ServerRun['one'] = [];
    const prep: number[] = [];
    for (let k = 1; k <= o.changesAll; k++) {
      const applyBefore = srv.applyMs.length;
      const r = await change('all', k);
      if (r.prepMs !== undefined) prep.push(r.prepMs);
      all.push({ ms: r.ms, triggerMs: r.triggerMs, cpuS: r.cpuS, extra: r.extra, extraTypes: r.extraTypes, ...(srv.applyMs.length > applyBefore ? { applyMs: srv.applyMs[srv.applyMs.length - 1]! } : {}), ...(r.timeout ? { timeout: true } : {}) });
      await sleep(300);
    }
    for (let k = 1; k <= o.changesOne; k++) {
      const applyBefore = srv.applyMs.length;
      const r = await change('one', o.changesAll + k);
      one.push({ ms: r.ms, triggerMs: r.triggerMs, cpuS: r.cpuS, extra: r.extra, extraTypes: r.extraTypes, ...(srv.applyMs.length > applyBefore ? { applyMs: srv.applyMs[srv.applyMs.length - 1]! } : {}), ...(r.timeout ? { timeout: true } : {}) });
      await sleep(100);
    }
    const timeouts = [...all, ...one].filter((c) => c.timeout).length;
    if (timeouts > 0) notes.push(`${timeouts} changes were not ACKed by every node within 120 s`);
    return {
      server,
      n,
      agents,
      connections: connected.connections,
      syncMs,
      syncCpuS,
      rssBaseMB: rssBase / 2 ** 20,
      rssConnectedMB: rssConnected / 2 ** 20,
      kbPerNode: (rssConnected - rssBase) / 1024 / n,
      all,
      one,
      ...(prep.length ? { peerPrepMs: prep } : {}),
      notes,
    };
  } finally {
    await client.close().catch(() => undefined);
    await srv.child.stop();
  }
}

/** Runs every N against both servers; the order alternates so neither always goes first. */
export async function runFanout(o: FanoutOptions): Promise<ServerRun[]> {
  const out: ServerRun[] = [];
  let i = 0;
  for (const n of o.ns) {
    const order: ServerKind[] = i % 2 === 0 ? ['exitgate', 'gcp'] : ['gcp', 'exitgate'];
    for (const s of order) out.push(await measureServer(o, s, n));
    i += 1;
  }
  return out;
}
