/** Reads what a sidecar's bootstrap tells about itself: node.metadata.exitgate (see envoy/bootstrap.ts). */
import { isIP } from 'node:net';
import { SIDECAR_MODES, XDS_PROTOCOLS, type NodeFacts, type SidecarMode, type XdsProtocol } from '../translate/options';

export function nodeFactsFromMetadata(metadata: Record<string, unknown> | undefined): { ok: true; value: NodeFacts } | { ok: false; reason: string } {
  const exitgate = metadata?.exitgate as Record<string, unknown> | undefined;
  const listen = exitgate?.listen;
  if (typeof listen !== 'string') return { ok: false, reason: 'node.metadata.exitgate.listen is missing; generate the bootstrap with `exitgate bootstrap`' };
  const parsed = parseHostPort(listen);
  if (!parsed || isIP(parsed.host) === 0) return { ok: false, reason: `node.metadata.exitgate.listen ${JSON.stringify(listen)} must be IP:PORT` };
  const xds = exitgate?.xds;
  if (xds !== undefined && !XDS_PROTOCOLS.includes(xds as XdsProtocol)) {
    return { ok: false, reason: `node.metadata.exitgate.xds ${JSON.stringify(xds)} must be one of ${XDS_PROTOCOLS.join(', ')}` };
  }
  // Absent (bootstraps older than transparent mode): the explicit proxy, as before.
  const mode = exitgate?.mode;
  if (mode !== undefined && !SIDECAR_MODES.includes(mode as SidecarMode)) {
    return { ok: false, reason: `node.metadata.exitgate.mode ${JSON.stringify(mode)} must be one of ${SIDECAR_MODES.join(', ')}` };
  }
  return {
    ok: true,
    value: {
      listen: { address: parsed.host, port: parsed.port },
      ...(xds !== undefined ? { xdsProtocol: xds as XdsProtocol } : {}),
      ...(mode === 'transparent' ? { mode: 'transparent' as const } : {}),
    },
  };
}

/** Parses `host:port` or `[v6]:port`. */
export function parseHostPort(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}
