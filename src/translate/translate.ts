/** AgentIr + node facts -> Envoy resources. Pure (ARCHITECTURE.md principle 1); golden-tested. */
import type { AgentIr } from '../ir/agent-ir';
import { credentialCluster, dfpCluster, dfpTlsCluster } from './clusters';
import { egressListener } from './listener';
import { egressRouteConfig } from './routes';
import { credentialSecret } from './secrets';
import type { CredentialValues, NodeFacts, TranslateOptions } from './options';
import type { NamedResource, ResourceSet } from './resource-set';

const named = (resource: Record<string, unknown>): NamedResource => ({ name: resource.name as string, resource });

/** The credentials this agent's rules use, by name, sorted (only these secrets reach its sidecar). */
function credentialsUsed(ir: AgentIr): string[] {
  const names = new Set<string>();
  for (const row of [...ir.table, ...ir.bare]) for (const r of row.routes ?? []) if (r.credential) names.add(r.credential);
  return [...names].sort();
}

export function translate(ir: AgentIr, node: NodeFacts, options: TranslateOptions, credentials: CredentialValues = new Map()): ResourceSet {
  const clusters = [named(dfpCluster(options))];
  const secrets: NamedResource[] = [];
  const usesTls = [...ir.table, ...ir.bare].some((row) => row.routes?.some((r) => r.upstream === 'tls' && !r.credential));
  if (usesTls) clusters.push(named(dfpTlsCluster(options)));
  for (const name of credentialsUsed(ir)) {
    const value = credentials.get(`${ir.tenant}/${name}`);
    if (!value) continue; // its routes fail closed (routes.ts)
    clusters.push(named(credentialCluster(ir.tenant, name, value, options, node)));
    secrets.push(named(credentialSecret(ir.tenant, name, value)));
  }
  return {
    clusters,
    listeners: [named(egressListener(ir, node, options))],
    routes: [named(egressRouteConfig(ir, credentials))],
    secrets,
  };
}
