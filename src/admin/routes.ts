/**
 * The admin API's routes and what each needs (SPEC §4). One table serves the server's dispatch
 * and the authorization tests, so a new route cannot be added without deciding its scope.
 */
import type { Scope } from './auth';

export type RouteName = 'healthz' | 'readyz' | 'metrics' | 'nodes' | 'policies' | 'policy' | 'effective' | 'decisions' | 'decisions-stream';

export interface RouteDef {
  name: RouteName;
  pattern: RegExp;
  methods: readonly string[];
  scope: (params: string[]) => Scope;
}

const LABEL = '([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)';

export const ROUTES: readonly RouteDef[] = [
  { name: 'healthz', pattern: /^\/healthz$/, methods: ['GET'], scope: () => ({ kind: 'public' }) },
  { name: 'readyz', pattern: /^\/readyz$/, methods: ['GET'], scope: () => ({ kind: 'public' }) },
  { name: 'metrics', pattern: /^\/metrics$/, methods: ['GET'], scope: () => ({ kind: 'admin' }) },
  // Any valid token; a tenant token sees its tenant's nodes only.
  { name: 'nodes', pattern: /^\/v1\/nodes$/, methods: ['GET'], scope: () => ({ kind: 'any' }) },
  { name: 'policies', pattern: new RegExp(`^/v1/tenants/${LABEL}/policies$`), methods: ['GET'], scope: ([t]) => ({ kind: 'tenant', tenant: t! }) },
  { name: 'policy', pattern: new RegExp(`^/v1/tenants/${LABEL}/policies/${LABEL}$`), methods: ['GET', 'PUT', 'DELETE'], scope: ([t]) => ({ kind: 'tenant', tenant: t! }) },
  // Any valid token; a tenant token sees its tenant's decisions only (admin/decisions.ts).
  { name: 'decisions', pattern: /^\/v1\/decisions$/, methods: ['GET'], scope: () => ({ kind: 'any' }) },
  { name: 'decisions-stream', pattern: /^\/v1\/decisions\/stream$/, methods: ['GET'], scope: () => ({ kind: 'any' }) },
  { name: 'effective', pattern: new RegExp(`^/v1/tenants/${LABEL}/agents/${LABEL}/effective$`), methods: ['GET'], scope: ([t]) => ({ kind: 'tenant', tenant: t! }) },
];

export interface RouteMatch {
  route: RouteDef;
  params: string[];
  scope: Scope;
}

export function matchRoute(pathname: string): RouteMatch | undefined {
  for (const route of ROUTES) {
    const m = route.pattern.exec(pathname);
    if (m) {
      const params = m.slice(1) as string[];
      return { route, params, scope: route.scope(params) };
    }
  }
  return undefined;
}
