/**
 * Translation benchmark, one run (issue 7 §3), in its own process started with --expose-gc so
 * that memory is measured after collection. Prints one JSON line.
 *
 * Fleet: T tenants x (A/T) agents; each agent has its own policy with R allow rules (one host
 * each), and each tenant has a tenant-wide policy (agents: ["*"]). Measured:
 * - parse: YAML + schema validation of every policy (what the store does on every reload);
 * - reload: the store's full directory load (one file per policy) from disk;
 * - build: a snapshot for every agent through the SnapshotCache (IR, translation, strict encoding);
 * - memory of the built cache (heap + external after GC);
 * - rebuild after a change to one agent's policy, and to one tenant's tenant-wide policy
 *   (setPolicies: every watched agent's IR is rebuilt and compared; changed ones re-translated).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { SnapshotCache } from '../../src/cache/snapshot-cache';
import { parsePolicyText, crossCheck } from '../../src/policy/parse';
import { loadPolicyDir } from '../../src/policy/load';
import type { LoadedPolicy, PolicySet } from '../../src/policy/documents';
import { silentLogger } from '../../src/util/logger';
import { policyText, writePolicies, type PolicySpec } from '../lib/policies';

interface Opts {
  agents: number;
  tenants: number;
  rules: number;
  changes: number;
  workDir: string;
}

const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('run with --expose-gc');
  g();
  g();
};
const mem = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};
const now = (): number => performance.now();
const progress = (what: string, ms: number): void => void process.stderr.write(`  translation: ${what} ${ms.toFixed(0)} ms\n`);

function agentPolicy(tenant: string, agent: string, rules: number, extra?: string): PolicySpec {
  const allow = [];
  for (let r = 0; r < rules; r++) allow.push({ name: `r-${r}`, hosts: [`h-${r}.${agent}.${tenant}.example.test`], ports: [443] });
  if (extra) allow[0]!.hosts.push(extra);
  return { tenant, name: `p-${agent}`, agents: [agent], allow };
}

function tenantPolicy(tenant: string, rev: number): PolicySpec {
  return {
    tenant,
    name: 'tenant-wide',
    agents: ['*'],
    allow: [
      { name: 'docs', hosts: ['docs.example.test', ...(rev > 0 ? [`rev-${rev}.example.test`] : [])], ports: [443] },
      { name: 'telemetry', hosts: ['*.telemetry.example.test'], ports: [443] },
    ],
  };
}

function parseOne(spec: PolicySpec): LoadedPolicy {
  const f = parsePolicyText(`policies/${spec.tenant}/${spec.name}.yaml`, policyText(spec));
  if (f.errors.length) throw new Error(JSON.stringify(f.errors[0]));
  return f.policies[0]!;
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2]!) as Opts;
  const perTenant = Math.floor(o.agents / o.tenants);
  const specs: PolicySpec[] = [];
  const agents: Array<{ tenant: string; agent: string }> = [];
  for (let t = 0; t < o.tenants; t++) {
    const tenant = `tenant-${t}`;
    specs.push(tenantPolicy(tenant, 0));
    for (let a = 0; a < perTenant; a++) {
      const agent = `agent-${a}`;
      agents.push({ tenant, agent });
      specs.push(agentPolicy(tenant, agent, o.rules));
    }
  }
  const texts = specs.map((s) => ({ file: `policies/${s.tenant}/${s.name}.yaml`, text: policyText(s) }));

  // Parse and validate every policy (YAML + zod), then the cross-document checks.
  let t = now();
  const set: PolicySet = { policies: [], credentials: [] };
  for (const x of texts) {
    const f = parsePolicyText(x.file, x.text);
    if (f.errors.length) throw new Error(JSON.stringify(f.errors[0]));
    set.policies.push(...f.policies);
  }
  const crossErrors = crossCheck(set);
  if (crossErrors.length) throw new Error(JSON.stringify(crossErrors[0]));
  const parseMs = now() - t;
  progress('parse', parseMs);

  // The store's reload: the whole directory from disk.
  const dir = path.join(o.workDir, 'policies');
  await fs.rm(dir, { recursive: true, force: true });
  await writePolicies(dir, specs);
  t = now();
  const loaded = await loadPolicyDir(dir);
  const reloadMs = now() - t;
  progress('reload', reloadMs);
  if (!loaded.ok) throw new Error('reload failed');
  await fs.rm(dir, { recursive: true, force: true });

  gc();
  const mem0 = mem();
  const cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
  cache.setPolicies(set);
  t = now();
  const watches = agents.map(({ tenant, agent }) => cache.watch({ tenant, agent, listen: { address: '127.0.0.1', port: 15001 } }, () => undefined));
  const buildMs = now() - t;
  progress('build', buildMs);
  const failed = watches.filter((w) => !w.current).length;
  if (failed) throw new Error(`${failed} snapshots could not be built`);
  gc();
  const buildBytes = mem() - mem0;

  // A change to one agent's policy; then to one tenant's tenant-wide policy.
  const byKey = new Map(set.policies.map((lp, i) => [`${lp.policy.metadata.tenant}/${lp.policy.metadata.name}`, i]));
  let current = set;
  const replace = (lp: LoadedPolicy): PolicySet => {
    const policies = current.policies.slice();
    policies[byKey.get(`${lp.policy.metadata.tenant}/${lp.policy.metadata.name}`)!] = lp;
    current = { policies, credentials: current.credentials };
    return current;
  };
  const oneAgent: Array<{ ms: number; changed: number }> = [];
  const tenantWide: Array<{ ms: number; changed: number }> = [];
  for (let k = 1; k <= o.changes; k++) {
    const target = agents[(k * 7919) % agents.length]!;
    const next = replace(parseOne(agentPolicy(target.tenant, target.agent, o.rules, `rev-${k}.example.test`)));
    t = now();
    const counts = cache.setPolicies(next);
    oneAgent.push({ ms: now() - t, changed: counts.changed });
    progress('one-agent change', oneAgent[oneAgent.length - 1]!.ms);
  }
  for (let k = 1; k <= o.changes; k++) {
    const next = replace(parseOne(tenantPolicy(`tenant-${k % o.tenants}`, k)));
    t = now();
    const counts = cache.setPolicies(next);
    tenantWide.push({ ms: now() - t, changed: counts.changed });
    progress('tenant-wide change', tenantWide[tenantWide.length - 1]!.ms);
  }
  for (const w of watches) w.cancel();
  process.stdout.write(`${JSON.stringify({ agents: agents.length, tenants: o.tenants, rules: o.rules, parseMs, reloadMs, buildMs, buildBytes, rss: process.memoryUsage().rss, oneAgent, tenantWide })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
