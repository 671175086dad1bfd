/**
 * Reference check before publishing (ARCHITECTURE.md principle 4): a listener whose route config
 * is missing never becomes ready, and a route to a missing cluster answers 503. Either would be
 * a broken sidecar, so such a set is refused and the last good one stays.
 */
import type { ResourceSet } from './resource-set';

function collect(value: unknown, key: string, out: Set<string>): void {
  if (Array.isArray(value)) value.forEach((v) => collect(v, key, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === key && typeof v === 'string') out.add(v);
      else collect(v, key, out);
    }
  }
}

export function checkReferences(set: ResourceSet): string[] {
  const errors: string[] = [];
  const routeNames = new Set(set.routes.map((r) => r.name));
  const clusterNames = new Set(set.clusters.map((c) => c.name));
  for (const l of set.listeners) {
    const wanted = new Set<string>();
    collect(l.resource, 'route_config_name', wanted);
    for (const name of wanted) if (!routeNames.has(name)) errors.push(`listener ${l.name} names route config ${name}, which does not exist`);
  }
  for (const r of set.routes) {
    const wanted = new Set<string>();
    collect(r.resource, 'cluster', wanted);
    for (const name of wanted) if (!clusterNames.has(name)) errors.push(`route config ${r.name} names cluster ${name}, which does not exist`);
  }
  return errors;
}
