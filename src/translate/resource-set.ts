/** The Envoy resources of one node, as proto3-JSON objects keyed by xDS type. */
export interface NamedResource {
  name: string;
  resource: Record<string, unknown>;
}

export interface ResourceSet {
  clusters: NamedResource[];
  listeners: NamedResource[];
  routes: NamedResource[];
  secrets: NamedResource[];
}
