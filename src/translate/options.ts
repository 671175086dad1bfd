/** Inputs of the translation that are not policy: server-wide settings and per-node facts. */
import type { Cidr } from '../util/cidr';

export interface TranslateOptions {
  /** Ranges exempted from the guard (`serve --guard-allow`). */
  guardAllow: Cidr[];
  /** DNS server the sidecars resolve with (`serve --dns-resolver`); the system's when absent. */
  dnsResolver?: { address: string; port: number };
  /** Trust bundle (PEM) for TLS the sidecars originate (`serve --upstream-ca`); the system's when absent. */
  upstreamCaPem?: string;
}

/** Loaded credentials by `tenant/name`; a rule naming one that is missing fails closed. */
export type CredentialValues = ReadonlyMap<string, CredentialValue>;

/** A loaded credential: what Envoy injects. The value travels only in the SDS secret. */
export interface CredentialValue {
  header: string;
  prefix?: string;
  value: string;
}

/** How a sidecar talks xDS (`exitgate bootstrap --xds-protocol`). */
export type XdsProtocol = 'sotw' | 'delta' | 'sotw-per-type' | 'delta-per-type';
export const XDS_PROTOCOLS: readonly XdsProtocol[] = ['sotw', 'delta', 'sotw-per-type', 'delta-per-type'];

/**
 * How the agent reaches its sidecar (`exitgate bootstrap --mode`): `proxy`, as an explicit HTTP
 * proxy (CONNECT, absolute URIs); `transparent`, by connections the pod's nat rules redirect to the
 * listener (`exitgate redirect-rules`), judged by TLS SNI and plain-HTTP Host.
 */
export type SidecarMode = 'proxy' | 'transparent';
export const SIDECAR_MODES: readonly SidecarMode[] = ['proxy', 'transparent'];

export interface NodeFacts {
  /** Absent: proxy. */
  mode?: SidecarMode;
  /** Absent: ADS (either variant); the per-type variants need per-type config sources. */
  xdsProtocol?: XdsProtocol;
  /**
   * Bumped by the cache each time a policy change revokes access for this node's agent; a new
   * value changes the listener's filter chain, so Envoy drains the connections (open CONNECT
   * tunnels included) that the old configuration accepted. Absent or 0: none so far.
   */
  drainEpoch?: number;
  /** Where the sidecar's explicit-proxy listener binds: the address its bootstrap names. */
  listen: { address: string; port: number };
}
