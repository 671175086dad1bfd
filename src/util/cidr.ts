/** IPv4/IPv6 CIDR ranges as numbers, with the set subtraction the guard needs for --guard-allow. */
import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  family: 4 | 6;
  /** The network address, host bits zero. */
  base: bigint;
  prefix: number;
}

const bits = (family: 4 | 6): number => (family === 4 ? 32 : 128);

function ipv4ToBig(ip: string): bigint {
  return ip.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
}

function ipv6ToBig(ip: string): bigint {
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = ipv4ToBig(v4[1]!);
    text = text.slice(0, -v4[1]!.length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail !== undefined ? 8 - headGroups.length - tailGroups.length : 0;
  const groups = [...headGroups, ...Array<string>(fill).fill('0'), ...tailGroups];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function parseIp(ip: string): { family: 4 | 6; value: bigint } | null {
  if (isIPv4(ip)) return { family: 4, value: ipv4ToBig(ip) };
  if (isIPv6(ip)) return { family: 6, value: ipv6ToBig(ip) };
  return null;
}

export function formatIp(family: 4 | 6, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  return groups.join(':');
}

/** Parses `a.b.c.d/n` or `x::y/n` (a bare address is a /32 or /128). Host bits must be zero. */
export function parseCidr(text: string): { ok: true; value: Cidr } | { ok: false; reason: string } {
  const [addr, len, extra] = text.split('/');
  if (extra !== undefined || !addr) return { ok: false, reason: `"${text}" is not a CIDR range` };
  const ip = parseIp(addr);
  if (!ip) return { ok: false, reason: `"${text}" is not a CIDR range: "${addr}" is not an IP address` };
  const max = bits(ip.family);
  const prefix = len === undefined ? max : Number(len);
  if (!/^\d+$/.test(len ?? String(max)) || prefix > max) return { ok: false, reason: `"${text}" has an invalid prefix length` };
  const mask = prefixMask(ip.family, prefix);
  if ((ip.value & ~mask & ((1n << BigInt(max)) - 1n)) !== 0n) {
    return { ok: false, reason: `"${text}" has host bits set; did you mean ${formatIp(ip.family, ip.value & mask)}/${prefix}?` };
  }
  return { ok: true, value: { family: ip.family, base: ip.value, prefix } };
}

/** Parses a range written in the source (a constant): a bad one is a programming error. */
export function mustParseCidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(`internal: bad CIDR constant ${text}: ${parsed.reason}`);
  return parsed.value;
}

function prefixMask(family: 4 | 6, prefix: number): bigint {
  const total = BigInt(bits(family));
  const all = (1n << total) - 1n;
  return prefix === 0 ? 0n : (all << (total - BigInt(prefix))) & all;
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.prefix <= inner.prefix && (inner.base & prefixMask(outer.family, outer.prefix)) === outer.base;
}

export function cidrContainsIp(c: Cidr, family: 4 | 6, value: bigint): boolean {
  return c.family === family && (value & prefixMask(family, c.prefix)) === c.base;
}

/** `range` minus `hole`: the smallest list of CIDRs covering what remains, in address order. */
export function subtractCidr(range: Cidr, hole: Cidr): Cidr[] {
  if (cidrContains(hole, range)) return [];
  if (!cidrContains(range, hole)) return [range];
  const childPrefix = range.prefix + 1;
  const high = range.base | (1n << BigInt(bits(range.family) - childPrefix));
  const halves: Cidr[] = [
    { family: range.family, base: range.base, prefix: childPrefix },
    { family: range.family, base: high, prefix: childPrefix },
  ];
  return halves.flatMap((h) => subtractCidr(h, hole));
}

export function subtractAll(ranges: Cidr[], holes: Cidr[]): Cidr[] {
  return holes.reduce((acc, hole) => acc.flatMap((r) => subtractCidr(r, hole)), ranges);
}

export const formatCidr = (c: Cidr): string => `${formatIp(c.family, c.base)}/${c.prefix}`;
