/** Inputs of the translation that are not policy: server-wide settings and per-node facts. */
import type { Cidr } from '../util/cidr';

export interface TranslateOptions {
  /** Ranges exempted from the guard (`serve --guard-allow`). */
  guardAllow: Cidr[];
  /** DNS server the sidecars resolve with (`serve --dns-resolver`); the system's when absent. */
  dnsResolver?: { address: string; port: number };
}

/** How a sidecar talks xDS (`exitgate bootstrap --xds-protocol`). */
export type XdsProtocol = 'sotw' | 'delta' | 'sotw-per-type' | 'delta-per-type';
export const XDS_PROTOCOLS: readonly XdsProtocol[] = ['sotw', 'delta', 'sotw-per-type', 'delta-per-type'];

export interface NodeFacts {
  /** Absent: ADS (either variant); the per-type variants need per-type config sources. */
  xdsProtocol?: XdsProtocol;
  /** Where the sidecar's explicit-proxy listener binds: the address its bootstrap names. */
  listen: { address: string; port: number };
}
