/**
 * An authoritative-only DNS server on a UDP socket that was created inside a test namespace (the
 * loopback-only TestDnsServer of src/demo binds its own socket in the caller's namespace). Same
 * record model: A and AAAA per name, NXDOMAIN for unknown names, never forwards anything.
 */
import type * as dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';

export interface NetnsDnsQuery {
  name: string;
  type: string;
  from: string;
  at: number;
}

const RCODE_NXDOMAIN = 3;

const normalise = (name: string): string => name.toLowerCase().replace(/\.+$/, '');

export class NetnsDnsServer {
  readonly queries: NetnsDnsQuery[] = [];
  private readonly records = new Map<string, { ipv4s: string[]; ipv6s: string[]; ttl: number }>();
  private fallback: { ipv4s: string[]; ipv6s: string[]; ttl: number } | undefined;

  constructor(
    private readonly socket: dgram.Socket,
    readonly address: { host: string; port: number },
  ) {
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    socket.on('error', () => undefined);
  }

  /** `name` may be `*.suffix`: then it answers for every name below suffix without its own record. */
  setRecord(name: string, ipv4s: string[], ipv6s: string[] = [], ttl = 1): void {
    this.records.set(normalise(name), { ipv4s: [...ipv4s], ipv6s: [...ipv6s], ttl });
  }

  /** What every name without a record resolves to (default: NXDOMAIN). */
  setFallback(ipv4s: string[], ipv6s: string[] = [], ttl = 1): void {
    this.fallback = { ipv4s: [...ipv4s], ipv6s: [...ipv6s], ttl };
  }

  deleteRecord(name: string): void {
    this.records.delete(normalise(name));
  }

  /** Names asked since the last clearQueries(), lowercased, without the trailing dot. */
  queriedNames(): Set<string> {
    return new Set(this.queries.map((q) => normalise(q.name)));
  }

  clearQueries(): void {
    this.queries.length = 0;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  private lookup(name: string): { ipv4s: string[]; ipv6s: string[]; ttl: number } | undefined {
    const exact = this.records.get(name);
    if (exact) return exact;
    // The longest matching wildcard.
    const labels = name.split('.');
    for (let i = 1; i < labels.length; i++) {
      const wild = this.records.get(`*.${labels.slice(i).join('.')}`);
      if (wild) return wild;
    }
    return this.fallback;
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    if (query.type !== 'query') return;
    const questions = query.questions ?? [];
    const answers: dnsPacket.Answer[] = [];
    let nxdomain = false;
    for (const q of questions) {
      this.queries.push({ name: q.name, type: q.type, from: `${rinfo.address}:${rinfo.port}`, at: Date.now() });
      const record = this.lookup(normalise(q.name));
      if (!record) {
        nxdomain = true;
        continue;
      }
      const ips = q.type === 'A' ? record.ipv4s : q.type === 'AAAA' ? record.ipv6s : [];
      for (const ip of ips) answers.push({ type: q.type as 'A' | 'AAAA', name: q.name, ttl: record.ttl, class: 'IN', data: ip });
    }
    let flags = dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE;
    if (query.flag_rd) flags |= dnsPacket.RECURSION_DESIRED;
    if (nxdomain && answers.length === 0) flags |= RCODE_NXDOMAIN;
    const response = dnsPacket.encode({ type: 'response', id: query.id, flags, questions, answers });
    this.socket.send(response, rinfo.port, rinfo.address);
  }
}
