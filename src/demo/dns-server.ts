import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';

/**
 * A tiny authoritative-only UDP DNS server for tests and the demo. Envoy's
 * DNS resolution is pointed at it so that tests control exactly which names
 * resolve where, and can assert which names were (or were not) looked up.
 * It never forwards a query anywhere.
 */

interface DnsRecord {
  ipv4s: string[];
  ipv6s: string[];
  ttl: number;
}

export interface DnsQuery {
  /** The name exactly as asked (case preserved). */
  name: string;
  /** Record type, e.g. "A", "AAAA". */
  type: string;
  /** Date.now() when the query arrived. */
  at: number;
  /** Who asked (address:port). */
  from: string;
}

const RCODE_NXDOMAIN = 3;
const DEFAULT_TTL_S = 1;

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.+$/, '');
}

function isLoopback(host: string): boolean {
  return host === '::1' || (net.isIPv4(host) && host.startsWith('127.'));
}

export class TestDnsServer {
  readonly queries: DnsQuery[] = [];
  private readonly records = new Map<string, DnsRecord>();
  private fallback: DnsRecord | undefined;

  private constructor(
    private readonly socket: dgram.Socket,
    readonly address: { host: string; port: number },
  ) {
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
  }

  /**
   * Serves on a socket bound elsewhere: the sealed test world creates it inside a network
   * namespace (where this process cannot bind), so the loopback check of start() does not apply.
   */
  static onSocket(socket: dgram.Socket, address: { host: string; port: number }): TestDnsServer {
    socket.on('error', () => undefined); // a late socket error must not crash the test process
    return new TestDnsServer(socket, address);
  }

  /** Binds to host (default 127.0.0.1) and port (default ephemeral). Loopback only. */
  static async start(opts: { host?: string; port?: number } = {}): Promise<TestDnsServer> {
    const host = opts.host ?? '127.0.0.1';
    if (!isLoopback(host)) throw new Error(`TestDnsServer binds to loopback only, got ${host}`);
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(opts.port ?? 0, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    // A late socket error must not crash the test process.
    socket.on('error', () => undefined);
    return new TestDnsServer(socket, { host, port: socket.address().port });
  }

  /** `name` may be `*.suffix`: it then answers every name below suffix that has no record of its own. */
  setRecord(name: string, ipv4s: string[], ipv6s: string[] = [], ttl: number = DEFAULT_TTL_S): void {
    this.records.set(normalizeName(name), { ipv4s: [...ipv4s], ipv6s: [...ipv6s], ttl });
  }

  /** What every name without a record resolves to (default: NXDOMAIN). */
  setFallback(ipv4s: string[], ipv6s: string[] = [], ttl: number = DEFAULT_TTL_S): void {
    this.fallback = { ipv4s: [...ipv4s], ipv6s: [...ipv6s], ttl };
  }

  deleteRecord(name: string): void {
    this.records.delete(normalizeName(name));
  }

  /** Every name asked so far, lowercased and without the trailing dot. */
  queriedNames(): Set<string> {
    return new Set(this.queries.map((q) => normalizeName(q.name)));
  }

  clearQueries(): void {
    this.queries.length = 0;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }

  /** The record for a name: its own, else the longest matching wildcard, else the fallback. */
  private lookup(name: string): DnsRecord | undefined {
    const exact = this.records.get(name);
    if (exact) return exact;
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
      return; // Not DNS; nothing sensible to answer.
    }
    if (query.type !== 'query') return;
    const response = this.answer(query, `${rinfo.address}:${rinfo.port}`);
    this.socket.send(dnsPacket.encode(response), rinfo.port, rinfo.address);
  }

  private answer(query: dnsPacket.DecodedPacket, from: string): dnsPacket.Packet {
    const questions = query.questions ?? [];
    const answers: dnsPacket.Answer[] = [];
    let nxdomain = false;
    for (const q of questions) {
      this.queries.push({ name: q.name, type: q.type, at: Date.now(), from });
      const record = this.lookup(normalizeName(q.name));
      if (!record) {
        nxdomain = true;
        continue;
      }
      // Known name but no data of this type: empty NOERROR ("NODATA").
      const ips = q.type === 'A' ? record.ipv4s : q.type === 'AAAA' ? record.ipv6s : [];
      for (const ip of ips) {
        answers.push({ type: q.type as 'A' | 'AAAA', name: q.name, ttl: record.ttl, class: 'IN', data: ip });
      }
    }
    let flags = dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE;
    if (query.flag_rd) flags |= dnsPacket.RECURSION_DESIRED;
    // dns-packet carries the rcode in the low 4 bits of flags.
    if (nxdomain && answers.length === 0) flags |= RCODE_NXDOMAIN;
    return { type: 'response', id: query.id, flags, questions, answers };
  }
}
