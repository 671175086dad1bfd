/**
 * Policy generators for the benchmark. Documents are written as JSON (valid YAML), one policy per
 * file at the path the admin API manages (`<dir>/<tenant>/<name>.yaml`), so the same policy can be
 * changed by writing its file or by the admin API.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parsePolicyText } from '../../src/policy/parse';
import type { PolicySet } from '../../src/policy/documents';

export interface RuleSpec {
  name: string;
  hosts: string[];
  ports: number[];
}

export interface PolicySpec {
  tenant: string;
  name: string;
  agents: string[];
  allow: RuleSpec[];
}

export function policyText(p: PolicySpec): string {
  return `${JSON.stringify({ apiVersion: 'exitgate.dev/v1', kind: 'EgressPolicy', metadata: { name: p.name, tenant: p.tenant }, spec: { agents: p.agents, allow: p.allow } }, null, 1)}\n`;
}

export const policyPath = (dir: string, p: { tenant: string; name: string }): string => path.join(dir, p.tenant, `${p.name}.yaml`);

/** Writes every policy to its managed file. */
export async function writePolicies(dir: string, policies: PolicySpec[]): Promise<void> {
  const tenants = new Set(policies.map((p) => p.tenant));
  for (const t of tenants) await fs.mkdir(path.join(dir, t), { recursive: true });
  for (const p of policies) await fs.writeFile(policyPath(dir, p), policyText(p));
}

/** Replaces a policy file atomically (write aside, rename over), as an editor or `kubectl cp` would. */
export async function replacePolicyFile(dir: string, asideDir: string, p: PolicySpec): Promise<void> {
  const aside = path.join(asideDir, `${p.tenant}-${p.name}.yaml.tmp`);
  await fs.writeFile(aside, policyText(p));
  await fs.rename(aside, policyPath(dir, p));
}

/** The validated PolicySet of these specs, as the store would load it (throws on an invalid one). */
export function policySet(policies: PolicySpec[]): PolicySet {
  const set: PolicySet = { policies: [], credentials: [] };
  for (const p of policies) {
    const f = parsePolicyText(`policies/${p.tenant}/${p.name}.yaml`, policyText(p));
    if (f.errors.length > 0) throw new Error(`invalid bench policy ${p.tenant}/${p.name}: ${JSON.stringify(f.errors[0])}`);
    set.policies.push(...f.policies);
  }
  return set;
}

/** One EgressPolicy per agent plus a tenant-wide one (agents: ["*"]): the fan-out fleet. */
export function fleetPolicies(tenant: string, agents: number, opts: { rulesPerAgent: number; hostsPerRule: number; port: number }): PolicySpec[] {
  const out: PolicySpec[] = [];
  for (let a = 0; a < agents; a++) {
    const agent = `agent-${a}`;
    const allow: RuleSpec[] = [];
    for (let r = 0; r < opts.rulesPerAgent; r++) {
      const hosts: string[] = [];
      for (let h = 0; h < opts.hostsPerRule; h++) hosts.push(`svc-${r}-${h}.${agent}.example.test`);
      allow.push({ name: `r-${r}`, hosts, ports: [opts.port] });
    }
    out.push({ tenant, name: `p-${agent}`, agents: [agent], allow });
  }
  out.push(tenantWide(tenant, 0, opts.port));
  return out;
}

/** The tenant-wide policy at revision k (k > 0 adds one host, so every revision differs). */
export function tenantWide(tenant: string, k: number, port: number): PolicySpec {
  const hosts = ['shared.example.test', ...(k > 0 ? [`rev-${k}.shared.example.test`] : [])];
  return { tenant, name: 'tenant-wide', agents: ['*'], allow: [{ name: 'shared', hosts, ports: [port] }] };
}

/** An agent's own policy at revision k (k > 0 adds one host). */
export function withExtraHost(p: PolicySpec, k: number): PolicySpec {
  const [first, ...rest] = p.allow;
  return { ...p, allow: [{ ...first!, hosts: [...first!.hosts, `rev-${k}.${p.agents[0]}.example.test`] }, ...rest] };
}
