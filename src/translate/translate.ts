/** AgentIr + node facts -> Envoy resources. Pure (ARCHITECTURE.md principle 1); golden-tested. */
import type { AgentIr } from '../ir/agent-ir';
import { credentialCluster, dfpCluster, dfpTlsCluster, ipCluster, ipTunnelCluster } from './clusters';
import { egressListener } from './listener';
import { transparentDenyCluster, transparentListener } from './transparent';
import { egressRouteConfig } from './routes';
import { credentialSecret } from './secrets';
import type { CredentialValues, NodeFacts, TranslateOptions } from './options';
import type { NamedResource, ResourceSet } from './resource-set';

const named = (resource: Record<string, unknown>): NamedResource => ({ name: resource.name as string, resource });

/** The credentials this agent's rules use, with how each reaches its destination, sorted. */
function credentialsUsed(ir: AgentIr): Array<{ name: string; upstream: 'tls' | 'plain' }> {
  const used = new Map<string, { name: string; upstream: 'tls' | 'plain' }>();
  for (const row of [...ir.table, ...ir.bare]) {
    for (const r of row.routes ?? []) if (r.credential) used.set(`${r.credential} ${r.upstream}`, { name: r.credential, upstream: r.upstream });
  }
  return [...used.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
}

export function translate(ir: AgentIr, node: NodeFacts, options: TranslateOptions, credentials: CredentialValues = new Map()): ResourceSet {
  const clusters = [named(dfpCluster(options))];
  const secrets: NamedResource[] = [];
  const usesTls = [...ir.table, ...ir.bare].some((row) => row.routes?.some((r) => r.upstream === 'tls' && !r.credential));
  if (usesTls) clusters.push(named(dfpTlsCluster(options)));
  // Allowed IP destinations only (dry-run lets denied ones through the guarded DFP cluster: routes.ts).
  if (ir.ipRules.some((r) => r.verdict === 'allow')) clusters.push(named(ipCluster()));
  const secretNames = new Set<string>();
  for (const { name, upstream } of credentialsUsed(ir)) {
    const value = credentials.get(`${ir.tenant}/${name}`);
    if (!value) continue; // its routes fail closed (routes.ts)
    clusters.push(named(credentialCluster(ir.tenant, name, value, options, node, upstream)));
    if (!secretNames.has(name)) secrets.push(named(credentialSecret(ir.tenant, name, value)));
    secretNames.add(name);
  }
  const transparent = node.mode === 'transparent';
  if (transparent) clusters.push(named(transparentDenyCluster()));
  if (transparent && ir.ipRules.some((r) => r.verdict === 'allow' && r.access?.connect)) clusters.push(named(ipTunnelCluster()));
  return {
    clusters,
    listeners: [named(transparent ? transparentListener(ir, node, options) : egressListener(ir, node, options))],
    routes: [named(egressRouteConfig(ir, credentials))],
    secrets,
  };
}
