/** AgentIr + node facts -> Envoy resources. Pure (ARCHITECTURE.md principle 1); golden-tested. */
import type { AgentIr } from '../ir/agent-ir';
import { dfpCluster } from './clusters';
import { egressListener } from './listener';
import { egressRouteConfig } from './routes';
import type { NodeFacts, TranslateOptions } from './options';
import type { ResourceSet } from './resource-set';

export function translate(ir: AgentIr, node: NodeFacts, options: TranslateOptions): ResourceSet {
  const named = (resource: Record<string, unknown>) => ({ name: resource.name as string, resource });
  return {
    clusters: [named(dfpCluster(options))],
    listeners: [named(egressListener(ir, node, options))],
    routes: [named(egressRouteConfig(ir))],
    secrets: [],
  };
}
