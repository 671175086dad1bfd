/**
 * Convergence with a real Envoy (issue 7 §1): one sidecar (Envoy 1.40, Delta ADS) driven by an
 * in-process control plane (startWorld: test DNS, loopback upstreams). Each change flips the
 * verdict of one host for the sidecar's agent, alternately by replacing the policy file and by
 * the admin API (PUT). Per change: time from the start of the write to the control plane
 * recording Envoy's ACK of the new route configuration, and to the first request through the
 * sidecar that gets the new verdict (a probe thread sends requests back to back meanwhile).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { startWorld, HTTP_UPSTREAM_IP, type World } from '../../src/demo/world';
import { TYPE } from '../../src/xds/type-urls';
import { policyText, writePolicies, type PolicySpec } from '../lib/policies';
import { nowMs, sleep, until } from '../lib/proc';
import type { ProbeCommand, ProbeEvent } from './probe-worker';

export interface ConvergenceOptions {
  workDir: string;
  /** Changes per write path (file, admin API). */
  changesPerMode: number;
  log: (line: string) => void;
}

export interface ChangeSample {
  mode: 'file' | 'api';
  ackMs: number;
  verdictMs: number;
  /** admin API only: when the PUT returned (it returns once the change is applied). */
  apiMs?: number;
  timeout?: boolean;
}

export interface ConvergenceResult {
  samples: ChangeSample[];
  notes: string[];
}

const TENANT = 'acme';
const AGENT = 'bench';
const FLIP_HOSTS = 10;
const flipHost = (k: number) => `flip-${k}.bench.test`;

export async function runConvergence(o: ConvergenceOptions): Promise<ConvergenceResult> {
  await fs.rm(o.workDir, { recursive: true, force: true });
  await fs.mkdir(o.workDir, { recursive: true });
  const world: World = await startWorld({ workDir: o.workDir, tlsNames: ['tls.bench.test'] });
  const worker = new Worker(path.join(__dirname, 'probe-worker.js'));
  const events: ProbeEvent[] = [];
  let wake: (() => void) | undefined;
  worker.on('message', (e: ProbeEvent) => {
    events.push(e);
    wake?.();
  });
  const nextEvent = async (timeoutMs: number): Promise<ProbeEvent> => {
    const deadline = Date.now() + timeoutMs;
    while (events.length === 0) {
      if (Date.now() > deadline) throw new Error('probe thread silent');
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50);
      });
    }
    return events.shift()!;
  };
  const notes: string[] = [];
  const samples: ChangeSample[] = [];
  try {
    const port = world.httpUpstream.port;
    for (let k = 0; k < FLIP_HOSTS; k++) world.dns.setRecord(flipHost(k), [HTTP_UPSTREAM_IP]);
    world.dns.setRecord('always.bench.test', [HTTP_UPSTREAM_IP]);
    // Two policies for the agent: one in a hand-written file at the top of the policy directory
    // (flips hosts 0-4 by replacing the file), one owned by the admin API (flips hosts 5-9 by PUT).
    const allowed = { file: new Set<number>(), api: new Set<number>() };
    const spec = (mode: 'file' | 'api'): PolicySpec => ({
      tenant: TENANT,
      name: `flip-${mode}`,
      agents: [AGENT],
      allow: [{ name: 'flip', hosts: ['always.bench.test', ...[...allowed[mode]].sort((a, b) => a - b).map(flipHost)], ports: [port] }],
    });
    const filePath = path.join(world.policiesDir, 'flip-file.yaml');
    const aside = path.join(o.workDir, 'aside');
    await fs.mkdir(aside, { recursive: true });
    const writeFileSpec = async () => {
      const tmp = path.join(aside, 'flip-file.yaml.tmp');
      await fs.writeFile(tmp, policyText(spec('file')));
      await fs.rename(tmp, filePath); // atomic replace, as an editor or a config sync tool does
    };
    for (let k = 0; k < FLIP_HOSTS; k++) allowed[k < FLIP_HOSTS / 2 ? 'file' : 'api'].add(k);
    await writeFileSpec();
    await writePolicies(world.policiesDir, [spec('api')]);
    await world.cp.store.applyNow();
    const sidecar = await world.addSidecar({ tenant: TENANT, agent: AGENT, instance: '0' });
    const nodeName = `${TENANT}/${AGENT}/0`;

    // Envoy's ACKs of route configurations, as the control plane records them.
    const registry = world.cp.registry;
    const original = registry.acked.bind(registry);
    let lastRouteAck = { version: '', at: 0 };
    registry.acked = (node: string, type: string, version: string) => {
      if (node === nodeName && type === TYPE.route && version !== lastRouteAck.version) lastRouteAck = { version, at: nowMs() };
      original(node, type, version);
    };
    // The sidecar is ready, so it has ACKed its first route configuration already.
    await until(() => {
      const v = registry.list().find((n) => n.node === nodeName)?.resources[TYPE.route]?.ackedVersion;
      if (v && lastRouteAck.version === '') lastRouteAck = { version: v, at: nowMs() };
      return lastRouteAck.version !== '';
    }, 10_000, 'the sidecar to ACK its first route configuration');

    const adminBase = `http://127.0.0.1:${world.cp.adminPort}`;
    const total = o.changesPerMode * 2;
    // Warm-up: every flip host is allowed at first; resolve each once, so the first samples do
    // not carry Envoy's cold DNS cache.
    await sleep(300);
    for (let k = 0; k < FLIP_HOSTS; k++) await fetchViaProxy(sidecar.proxy, `http://${flipHost(k)}:${port}/`);
    for (let i = 0; i < total; i++) {
      const mode: 'file' | 'api' = i % 2 === 0 ? 'file' : 'api';
      const half = FLIP_HOSTS / 2;
      const host = (mode === 'file' ? 0 : half) + ((Math.floor(i / 2) * 3) % half);
      const set = allowed[mode];
      const nowAllowed = !set.has(host);
      if (nowAllowed) set.add(host);
      else set.delete(host);
      const want = nowAllowed ? 200 : 403;
      const url = `http://${flipHost(host)}:${port}/`;
      const ackBefore = lastRouteAck.version;
      worker.postMessage({ cmd: 'probe', proxy: sidecar.proxy, url, want, timeoutMs: 10_000 } satisfies ProbeCommand);
      const probing = await nextEvent(10_000);
      if (probing.event !== 'probing') throw new Error(`probe: ${JSON.stringify(probing)}`);
      if (probing.status === want) throw new Error(`${url} already answers ${want} before the change`);
      const t0 = nowMs();
      let apiMs: number | undefined;
      if (mode === 'file') {
        await writeFileSpec();
      } else {
        const res = await fetch(`${adminBase}/v1/tenants/${TENANT}/policies/flip-api`, { method: 'PUT', body: policyText(spec('api')), headers: { 'content-type': 'application/yaml' }, signal: AbortSignal.timeout(10_000) });
        await res.text();
        if (res.status !== 200 && res.status !== 201) throw new Error(`admin PUT: ${res.status}`);
        apiMs = nowMs() - t0;
      }
      const verdict = await nextEvent(15_000);
      let timeout = verdict.event !== 'verdict';
      await until(() => lastRouteAck.version !== ackBefore, 10_000, 'the ACK').catch(() => {
        timeout = true;
      });
      samples.push({
        mode,
        ackMs: lastRouteAck.at - t0,
        verdictMs: verdict.event === 'verdict' ? verdict.at - t0 : NaN,
        ...(apiMs !== undefined ? { apiMs } : {}),
        ...(timeout ? { timeout: true } : {}),
      });
      await sleep(40);
    }
    const timeouts = samples.filter((s) => s.timeout).length;
    if (timeouts) notes.push(`${timeouts} changes timed out`);
    const early = samples.filter((s) => s.verdictMs < s.ackMs).length;
    notes.push(`${early} of ${samples.length} changes served the new verdict before the control plane had recorded the ACK (Envoy applies, then ACKs)`);
    return { samples, notes };
  } finally {
    await worker.terminate();
    await world.stop();
  }
}

async function fetchViaProxy(proxy: { host: string; port: number }, url: string): Promise<number> {
  const http = await import('node:http');
  return new Promise((resolve) => {
    const req = http.request({ host: proxy.host, port: proxy.port, path: url, setHost: false, headers: { host: new URL(url).host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(-1));
    req.setTimeout(5000, () => req.destroy());
    req.end();
  });
}
