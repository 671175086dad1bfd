import * as dgram from 'node:dgram';
import { promises as dns } from 'node:dns';
import * as dnsPacket from 'dns-packet';
import { TestDnsServer } from '../../support/dns-server';

// Node's resolver lowercases names before sending, so mixed-case queries need
// a raw packet to reach the server as written.
async function rawQuery(server: TestDnsServer, name: string, type: 'A' | 'AAAA'): Promise<dnsPacket.DecodedPacket> {
  const socket = dgram.createSocket('udp4');
  try {
    const reply = new Promise<Buffer>((resolve) => socket.once('message', resolve));
    const query = dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
    socket.send(query, server.address.port, server.address.host);
    return dnsPacket.decode(await reply);
  } finally {
    socket.close();
  }
}

describe('TestDnsServer', () => {
  let server: TestDnsServer;
  let resolver: dns.Resolver;

  beforeEach(async () => {
    server = await TestDnsServer.start();
    // One try with a short timeout: a wrong answer must fail fast, not retry.
    resolver = new dns.Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`${server.address.host}:${server.address.port}`]);
  });

  afterEach(async () => {
    await server.stop();
  });

  it('binds to loopback on an ephemeral port', () => {
    expect(server.address.host).toBe('127.0.0.1');
    expect(server.address.port).toBeGreaterThan(0);
  });

  it('answers A and AAAA with the configured TTL', async () => {
    server.setRecord('api.example.test', ['127.0.0.2', '127.0.0.3'], ['::1'], 7);
    const a = await resolver.resolve4('api.example.test', { ttl: true });
    expect(a.map((r) => r.address).sort()).toEqual(['127.0.0.2', '127.0.0.3']);
    expect(a.every((r) => r.ttl === 7)).toBe(true);
    expect(await resolver.resolve6('api.example.test')).toEqual(['::1']);
  });

  it('defaults the TTL to 1 second', async () => {
    server.setRecord('short.example.test', ['127.0.0.9']);
    expect(await resolver.resolve4('short.example.test', { ttl: true })).toEqual([{ address: '127.0.0.9', ttl: 1 }]);
  });

  it('returns NXDOMAIN for unknown names', async () => {
    await expect(resolver.resolve4('nope.example.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('returns empty NOERROR for a known name without that record type', async () => {
    server.setRecord('v4only.example.test', ['127.0.0.2']);
    await expect(resolver.resolve6('v4only.example.test')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  it('matches names case-insensitively and tolerates a trailing dot', async () => {
    server.setRecord('Mixed.Example.Test.', ['127.0.0.4']);
    expect(await resolver.resolve4('mixed.example.test')).toEqual(['127.0.0.4']);
    const reply = await rawQuery(server, 'MIXED.example.TEST', 'A');
    expect(reply.id).toBe(4242);
    expect(reply.flag_aa).toBe(true);
    expect(reply.flag_rd).toBe(true);
    expect(reply.answers).toEqual([expect.objectContaining({ name: 'MIXED.example.TEST', type: 'A', data: '127.0.0.4', ttl: 1 })]);
  });

  it('forgets deleted records', async () => {
    server.setRecord('gone.example.test', ['127.0.0.5']);
    server.deleteRecord('GONE.example.test.');
    await expect(resolver.resolve4('gone.example.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('records every query, including unknown names', async () => {
    server.setRecord('seen.example.test', ['127.0.0.6']);
    await rawQuery(server, 'Seen.Example.Test', 'A');
    await resolver.resolve6('unknown.example.test').catch(() => undefined);
    expect(server.queries.map((q) => [q.name, q.type])).toEqual([
      ['Seen.Example.Test', 'A'],
      ['unknown.example.test', 'AAAA'],
    ]);
    expect(server.queries.every((q) => typeof q.at === 'number')).toBe(true);
    expect(server.queriedNames()).toEqual(new Set(['seen.example.test', 'unknown.example.test']));
    server.clearQueries();
    expect(server.queries).toHaveLength(0);
    expect(server.queriedNames().size).toBe(0);
  });

  it('refuses to bind outside loopback', async () => {
    await expect(TestDnsServer.start({ host: '0.0.0.0' })).rejects.toThrow(/loopback only/);
  });
});
