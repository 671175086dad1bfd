/** xDS type URLs (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol#resource-types). */
export const TYPE = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;

export type TypeUrl = (typeof TYPE)[keyof typeof TYPE];

/**
 * Push order for make-before-break (xds_protocol "Eventual consistency considerations"):
 * clusters (then their endpoints) and secrets before the listeners that use them, listeners
 * before their routes.
 */
export const PUSH_ORDER: readonly TypeUrl[] = [TYPE.cluster, TYPE.endpoint, TYPE.secret, TYPE.listener, TYPE.route];

/** Types whose SotW responses carry the full state; for the others a client names what it wants. */
export const FULL_STATE_TYPES: ReadonlySet<string> = new Set([TYPE.cluster, TYPE.listener]);

export const isKnownType = (t: string): t is TypeUrl => (PUSH_ORDER as readonly string[]).includes(t);

export const shortType = (t: string): string => t.slice(t.lastIndexOf('.') + 1);
