/**
 * A node's complete configuration: encoded resources per type. Immutable once built; validated
 * before it is published (every route config a listener names and every cluster a route names
 * exists), so an inconsistent snapshot never reaches a sidecar.
 */
import { sha256, type EncodedResource } from './encoded';
import { PUSH_ORDER, type TypeUrl } from '../xds/type-urls';

export interface Snapshot {
  readonly resources: ReadonlyMap<TypeUrl, ReadonlyMap<string, EncodedResource>>;
}

export function makeSnapshot(byType: Map<TypeUrl, EncodedResource[]>): Snapshot {
  const resources = new Map<TypeUrl, Map<string, EncodedResource>>();
  for (const type of PUSH_ORDER) {
    const list = (byType.get(type) ?? []).slice().sort((a, b) => a.name.localeCompare(b.name));
    resources.set(type, new Map(list.map((r) => [r.name, r])));
  }
  return { resources };
}

/**
 * The resources of one type a subscription receives, and their version: a hash over names and
 * content hashes, so equal content always has the equal version (also across restarts) and a
 * different subset of names has a different version.
 */
/** Selections already made from a snapshot; dropped with the snapshot. */
const selections = new WeakMap<Snapshot, Map<string, { version: string; resources: EncodedResource[] }>>();

export function selectResources(snapshot: Snapshot, type: TypeUrl, names: ReadonlySet<string> | 'wildcard'): { version: string; resources: EncodedResource[] } {
  // Every request of every stream asks this (ACKs included), and the nodes of one agent share one
  // snapshot: select and hash once per snapshot and subscription, not per request.
  const sorted = names === 'wildcard' ? undefined : [...names].sort();
  const key = `${type}\n${sorted ? sorted.join('\n') : '*'}`;
  let cache = selections.get(snapshot);
  if (!cache) selections.set(snapshot, (cache = new Map()));
  const hit = cache.get(key);
  if (hit) return hit;
  const all = snapshot.resources.get(type) ?? new Map<string, EncodedResource>();
  const resources = sorted ? sorted.flatMap((n) => (all.has(n) ? [all.get(n)!] : [])) : [...all.values()];
  const version = sha256(resources.map((r) => `${r.name}=${r.hash}`).join('\n')).slice(0, 16);
  const selection = { version, resources };
  cache.set(key, selection);
  return selection;
}
