/**
 * Targets as `exitgate check` takes them (SPEC §3): `https://host[:port]/path` (a CONNECT
 * tunnel, port 443 by default), `http://host[:port]/path` (plain HTTP through the proxy, port 80
 * by default) or `host:port` (a CONNECT). The host is kept as written, so `check` sees the same
 * spelling the agent would send.
 */
import type { Target } from './decide';

export interface ParsedTarget extends Target {
  kind: 'connect' | 'http';
}

export function parseTarget(text: string): { ok: true; value: ParsedTarget } | { ok: false; reason: string } {
  // Userinfo (`user:pass@`) is not part of the destination: clients send CONNECT host:port.
  const url = /^(https?):\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^/:?#@]*)(?::(\d+))?([/?#].*)?$/i.exec(text);
  if (url) {
    const scheme = url[1]!.toLowerCase();
    const host = url[2]!;
    if (host === '') return { ok: false, reason: `target ${JSON.stringify(text)} has no host` };
    const port = url[3] !== undefined ? Number(url[3]) : scheme === 'https' ? 443 : 80;
    if (port < 1 || port > 65535) return { ok: false, reason: `target ${JSON.stringify(text)} has an invalid port` };
    const nonCanonical = url[3] !== undefined && String(port) !== url[3];
    return { ok: true, value: { kind: scheme === 'https' ? 'connect' : 'http', host, port, portExplicit: url[3] !== undefined, path: url[4] ?? '/', ...(nonCanonical ? { nonCanonicalPort: true } : {}) } };
  }
  const hp = /^(\[[^\]]*\]|[^/:?#\s]+):(\d+)$/.exec(text);
  if (hp) {
    const port = Number(hp[2]);
    if (port < 1 || port > 65535) return { ok: false, reason: `target ${JSON.stringify(text)} has an invalid port` };
    return { ok: true, value: { kind: 'connect', host: hp[1]!, port, ...(String(port) !== hp[2] ? { nonCanonicalPort: true } : {}) } };
  }
  return { ok: false, reason: `target ${JSON.stringify(text)} is not https://host[:port]/path, http://host[:port]/path or host:port` };
}
