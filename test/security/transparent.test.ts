/**
 * Bypass catalogue class #8, transparent mode, in a sealed world (test/support/netns-world.ts with
 * `transparent: true`): the agent (a broker running as nobody) and the sidecar Envoy (root) share a
 * "pod" namespace that runs exactly the nftables script `exitgate redirect-rules` prints; every TCP
 * connection the agent makes, to any address, is redirected to the transparent listener. Upstreams,
 * DNS and traps live in the world namespace behind a veth; nothing has a route out.
 *
 * Every attempt asserts that it really reached the sidecar (Envoy's listener counter, a decision)
 * and what became of it: the allowed name reached through Envoy's own resolution, or closed with a
 * deny decision naming the agent and the reason; no trap is ever hit (afterEach).
 *
 * Linux, root and nft only (CI installs nftables); elsewhere skipped with the reason printed.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type * as net from 'node:net';
import { SEALED, startSealedWorld, type SealedWorld } from '../support/netns-world';
import { chooseDecisionsMode, countedVariant, decisionMark, decisionSince, decisionsSince, describeIfSealed, failOnNewTrapHits, noteClass, rawExchange, registerClass, summary } from './harness';
import { reportSummary } from '../support/run-summary';

const NODE = { tenant: 'acme', agent: 'coder', instance: 'pod-1' };

function nftSupport(): string | null {
  const nft = spawnSync('nft', ['--version'], { encoding: 'utf8' });
  if (nft.status !== 0) return 'needs nftables (`nft`) to apply the redirect rules: apt-get install -y nftables (.ci/run does)';
  return null;
}
const describeSealed = describeIfSealed('transparent-mode suite', nftSupport);

const POLICY = (extra = '', withCdn = true): string => `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: coder-egress, tenant: acme }
spec:
  agents: ["coder"]
  allow:
    - name: api
      hosts: ["api.allowed.test"]
      ports: [443]
${withCdn ? `    - name: cdn
      hosts: ["*.cdn.allowed.test"]
      ports: [443]
` : ''}    - name: plain
      hosts: ["plain.allowed.test"]
      ports: [80]
    - name: rebind
      hosts: ["*.rebind.test"]
      ports: [443]
    - name: l7
      hosts: ["l7.allowed.test"]
      ports: [443]
      tls: originate
      http:
        methods: ["GET"]
        paths: ["/v1/*"]
    - name: ip-http
      cidrs: ["${SEALED.httpUpstream}/32"]
      ports: [80]
    - name: ip-tls
      cidrs: ["198.51.100.0/30"]
      ports: [443]
${extra}  deny:
    - name: no-evil-cdn
      hosts: ["evil.cdn.allowed.test"]
    - name: no-ip-tls-upstream
      cidrs: ["${SEALED.tlsUpstream}/32"]
`;

/**
 * A minimal TLS 1.2 ClientHello with the given SNI (or none): what any TLS client sends first, built
 * by hand so that SNIs a real client library refuses to send (IP literals) can be tried too.
 */
export function clientHello(sni: string | null): Buffer {
  const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
  const exts: Buffer[] = [];
  if (sni !== null) {
    const name = Buffer.from(sni, 'ascii');
    const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
    const list = Buffer.concat([u16(entry.length), entry]);
    exts.push(Buffer.concat([u16(0), u16(list.length), list]));
  }
  // supported_groups and ec_point_formats, so that the hello is an ordinary ECDHE hello.
  exts.push(Buffer.concat([u16(10), u16(4), u16(2), u16(29)]));
  exts.push(Buffer.concat([u16(11), u16(2), Buffer.from([1, 0])]));
  const extensions = Buffer.concat(exts);
  const ciphers = Buffer.concat([u16(0xc02f), u16(0xc030), u16(0x009c)]);
  const body = Buffer.concat([
    u16(0x0303),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    u16(ciphers.length),
    ciphers,
    Buffer.from([1, 0]),
    u16(extensions.length),
    extensions,
  ]);
  const hs = Buffer.concat([Buffer.from([1, (body.length >> 16) & 0xff, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([22, 3, 1]), u16(hs.length), hs]);
}

describeSealed('transparent mode (sealed pod namespace, real Envoy, nft redirect)', () => {
  let world: SealedWorld;
  const started = performance.now();

  beforeAll(async () => {
    world = await startSealedWorld({
      node: NODE,
      transparent: true,
      tlsNames: ['api.allowed.test', 'x.cdn.allowed.test', 'new.allowed.test', 'public.rebind.test'],
      policies: { 'acme.yaml': POLICY() },
      ...(process.env.EXITGATE_DEBUG_ENTRIES ? { onAccessLogEntry: (src, e) => console.log(`ENTRY ${src.logName} ${JSON.stringify(e)}`) } : {}),
    });
    const d = world.dns;
    d.setFallback([SEALED.evil]);
    d.setRecord('api.allowed.test', [SEALED.tlsUpstream]);
    d.setRecord('*.cdn.allowed.test', [SEALED.tlsUpstream]);
    d.setRecord('cdn.allowed.test', [SEALED.evil]);
    d.setRecord('evil.cdn.allowed.test', [SEALED.evil]);
    d.setRecord('new.allowed.test', [SEALED.tlsUpstream]);
    d.setRecord('plain.allowed.test', [SEALED.httpUpstream]);
    d.setRecord('l7.allowed.test', [SEALED.tlsUpstream]);
    d.setRecord('public.rebind.test', [SEALED.tlsUpstream]);
    d.setRecord('ten.rebind.test', ['10.0.0.5']);
    d.setRecord('meta.rebind.test', ['169.254.169.254']);
    d.setRecord('loop.rebind.test', ['127.0.0.1']);
    registerClass(8, 'transparent TLS by SNI (and plain HTTP by Host)');
    // This suite reads GET /v1/decisions itself; the mode only labels the summary line.
    await chooseDecisionsMode(world);
    console.log(`transparent world up in ${((performance.now() - started) / 1000).toFixed(1)} s\n${world.describe()}\nredirect rules applied in the pod:\n${world.redirectRules}`);
  }, 120_000);

  afterEach(() => failOnNewTrapHits(world));

  afterAll(async () => {
    reportSummary(summary().replace(/^bypass suite/, 'bypass suite (transparent mode)'));
    console.log(`transparent suite time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await world?.stop();
  }, 60_000);

  // -------------------------------------------------------------------------------------------
  // Evidence

  const stat = async (name: string): Promise<number> => (await world.sidecar.envoy.stats(`^${name.replace(/\./g, '\\.')}$`)).get(name) ?? 0;
  /** Connections the listener took: handed to a filter chain, or closed for want of one. */
  const cxStat = async (): Promise<number> => (await stat(`${world.listenerStatPrefix}.downstream_cx_total`)) + (await stat(`${world.listenerStatPrefix}.no_filter_chain_match`));

  /** The agent dials ip:port (redirected), speaks TLS with `servername`, and GETs `/probe`. */
  async function tlsGet(ip: string, port: number, servername: string): Promise<{ status?: number; body?: string; error?: string; socket?: net.Socket }> {
    const r = await world.agent.connectTcp(ip, port);
    if (!r.socket) return { error: `connect: ${r.error}` };
    const raw = r.socket;
    raw.resume();
    return new Promise((resolve) => {
      const t = tls.connect({ socket: raw, servername, ca: world.ca.caPem });
      const timer = setTimeout(() => {
        t.destroy();
        raw.destroy();
        resolve({ error: 'timeout' });
      }, 5000);
      t.on('error', (e) => {
        clearTimeout(timer);
        t.destroy();
        raw.destroy();
        resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message });
      });
      t.on('secureConnect', () => {
        t.write(`GET /probe HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
        let buf = '';
        t.on('data', (d: Buffer) => (buf += d.toString('utf8')));
        t.on('end', () => {
          clearTimeout(timer);
          const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0);
          resolve({ status, body: buf.slice(buf.indexOf('\r\n\r\n') + 4) });
          t.destroy();
        });
      });
    });
  }

  /** The agent dials ip:port and sends `payload`; what came back and whether the sidecar closed. */
  async function rawAttempt(ip: string, port: number, payload: Buffer | string) {
    const r = await world.agent.connectTcp(ip, port);
    if (!r.socket) throw new Error(`the agent could not connect to ${ip}:${port} (${r.error}): the redirect should have taken it`);
    return rawExchange(r.socket, payload, { timeoutMs: 4000 });
  }

  // -------------------------------------------------------------------------------------------
  // Allowed TLS goes to Envoy's own resolution of the SNI, never to the address the agent chose

  describe('#8 TLS with an allowed SNI to an address the agent chose', () => {
    for (const [label, ip] of [
      ['an attacker address (203.0.113.9)', SEALED.attackerIp],
      ['the evil host', SEALED.evil],
      ['RFC 1918 10.0.0.5', '10.0.0.5'],
      ['the metadata address 169.254.169.254', '169.254.169.254'],
      ['the real upstream itself', SEALED.tlsUpstream],
    ] as const) {
      it(`#8 SNI api.allowed.test to ${label}:443 reaches the real api.allowed.test (Envoy's resolution)`, async () => {
        await countedVariant(8, async () => {
          const mark = await decisionMark(world);
          const cx = await cxStat();
          const before = world.tlsUpstream.requests.length;
          const r = await tlsGet(ip, 443, 'api.allowed.test');
          expect(r.error).toBeUndefined();
          expect(r.status).toBe(200);
          expect(JSON.parse(r.body!)).toMatchObject({ upstream: 'tls-upstream', url: '/probe', host: 'api.allowed.test' });
          expect(world.tlsUpstream.requests.length).toBe(before + 1);
          expect(await cxStat()).toBeGreaterThan(cx);
          const d = await decisionSince(world, mark, (x) => x.verdict === 'allow');
          expect(d).toMatchObject({ tenant: 'acme', agent: 'coder', host: 'api.allowed.test', port: 443, policy: 'coder-egress', rule: 'api' });
          expect(d?.upstreamAddress).toBe(`${SEALED.tlsUpstream}:443`);
        });
      });
    }

    it('#8 a wildcard rule lets a deeper name through (x.cdn.allowed.test)', async () => {
      const mark = await decisionMark(world);
      const r = await tlsGet(SEALED.attackerIp, 443, 'x.cdn.allowed.test');
      expect(r.status).toBe(200);
      const d = await decisionSince(world, mark, (x) => x.verdict === 'allow');
      expect(d).toMatchObject({ host: 'x.cdn.allowed.test', port: 443, rule: 'cdn' });
    });
  });

  // -------------------------------------------------------------------------------------------
  // Closed: no SNI, unknown SNI, denied SNI, unlisted port, IP literal, guarded resolution

  describe('#8 TLS connections that must be closed', () => {
    const cases: Array<{ name: string; sni: string | null; ip?: string; port?: number; reason: RegExp; rule?: string }> = [
      { name: 'no SNI', sni: null, reason: /no TLS server name/ },
      { name: 'unknown SNI evil.test', sni: 'evil.test', reason: /no rule matches|matched no filter chain/ },
      { name: 'SNI of a denied name (evil.cdn.allowed.test, inside an allowed wildcard)', sni: 'evil.cdn.allowed.test', reason: /denied by coder-egress\/no-evil-cdn/, rule: 'no-evil-cdn' },
      { name: 'the apex of a wildcard (cdn.allowed.test)', sni: 'cdn.allowed.test', reason: /no rule matches|matched no filter chain/ },
      { name: 'look-alike api.allowed.test.evil.test', sni: 'api.allowed.test.evil.test', reason: /no rule matches|matched no filter chain/ },
      { name: 'look-alike evilapi.allowed.test', sni: 'evilapi.allowed.test', reason: /no rule matches|matched no filter chain/ },
      { name: 'allowed SNI on an unlisted port (8443)', sni: 'api.allowed.test', port: 8443, reason: /no rule matches|matched no filter chain/ },
      { name: 'SNI allowed on 443 sent to port 80 (only plain.allowed.test is listed there)', sni: 'api.allowed.test', port: 80, reason: /no rule matches|matched no filter chain/ },
      { name: 'SNI naming an IP literal (the upstream)', sni: SEALED.tlsUpstream, reason: /no rule matches|matched no filter chain/ },
      { name: 'SNI naming an IP literal (metadata)', sni: '169.254.169.254', reason: /no rule matches|matched no filter chain/ },
      { name: 'SNI of an allowed name resolving to 10.0.0.5', sni: 'ten.rebind.test', reason: /guard/, rule: 'rebind' },
      { name: 'SNI of an allowed name resolving to 169.254.169.254', sni: 'meta.rebind.test', reason: /guard/, rule: 'rebind' },
      { name: 'SNI of an allowed name resolving to loopback', sni: 'loop.rebind.test', reason: /guard/, rule: 'rebind' },
      { name: 'SNI of a host allowed only with L7 rules (TLS would hide them)', sni: 'l7.allowed.test', reason: /L7|tunnel/, rule: 'l7' },
    ];
    for (const c of cases) {
      it(`#8 closed: ${c.name}`, async () => {
        await countedVariant(8, async () => {
          const mark = await decisionMark(world);
          const cx = await cxStat();
          const upstreamBefore = world.tlsUpstream.connections + world.httpUpstream.connections;
          const ex = await rawAttempt(c.ip ?? SEALED.attackerIp, c.port ?? 443, clientHello(c.sni));
          // Closed by the sidecar, without a byte of TLS back (no ServerHello: nothing upstream answered).
          expect(ex.closedByPeer).toBe(true);
          expect(ex.raw.length).toBe(0);
          expect(await cxStat()).toBeGreaterThan(cx);
          expect(world.tlsUpstream.connections + world.httpUpstream.connections).toBe(upstreamBefore);
          const decisions = await decisionsSince(world, mark, { want: (d) => d.verdict === 'deny' });
          const d = decisions.find((x) => x.verdict === 'deny');
          if (!d) throw new Error(`no deny decision (got ${JSON.stringify(decisions)})`);
          expect(d).toMatchObject({ tenant: 'acme', agent: 'coder', instance: 'pod-1', port: c.port ?? 443 });
          expect(d.host).toBe(c.sni ?? '');
          expect(d.reason).toMatch(c.reason);
          if (c.rule) expect(d.rule).toBe(c.rule);
        });
      });
    }
  });

  // -------------------------------------------------------------------------------------------
  // Plain HTTP by Host

  describe('#8 plain HTTP judged by its Host header', () => {
    const get = (host: string): string => `GET /probe HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    for (const [label, ip] of [
      ['the attacker address', SEALED.attackerIp],
      ['10.0.0.5', '10.0.0.5'],
    ] as const) {
      it(`#8 Host plain.allowed.test sent to ${label}:80 reaches the real plain.allowed.test`, async () => {
        await countedVariant(8, async () => {
          const mark = await decisionMark(world);
          const before = world.httpUpstream.requests.length;
          const ex = await rawAttempt(ip, 80, get('plain.allowed.test'));
          expect(ex.responses[0]?.status).toBe(200);
          expect(world.httpUpstream.requests.slice(before).map((r) => [r.url, r.headers.host])).toEqual([['/probe', 'plain.allowed.test']]);
          const d = await decisionSince(world, mark, (x) => x.verdict === 'allow');
          expect(d).toMatchObject({ host: 'plain.allowed.test', port: 80, rule: 'plain' });
        });
      });
    }
    // An allowed IP destination (a cidrs rule) named in Host while the connection goes elsewhere:
    // the IP cluster must dial the Host's address (or refuse), never the original destination.
    for (const host of [SEALED.httpUpstream, `${SEALED.httpUpstream}:80`]) {
      it(`#8 Host ${host} (a cidrs rule) sent to the trap 10.0.0.5:80 never reaches the trap`, async () => {
        await countedVariant(8, async () => {
          const before = world.httpUpstream.requests.length;
          const ex = await rawAttempt('10.0.0.5', 80, get(host));
          const status = ex.responses[0]?.status;
          // Either the allowed address itself answered, or the sidecar refused (a port-less IP
          // Host matches no cidrs rule, which needs an explicit port).
          if (status === 200) expect(world.httpUpstream.requests.slice(before).map((r) => r.url)).toEqual(['/probe']);
          else expect(status).toBe(403);
          expect(world.trapHits().filter((h) => h.trap.startsWith('rfc1918-10'))).toEqual([]);
          console.log(`transparent: Host ${host} to 10.0.0.5:80 -> ${status}`);
        });
      });
    }
    it('#8 Host of an unlisted name is refused with 403', async () => {
      await countedVariant(8, async () => {
        const mark = await decisionMark(world);
        const ex = await rawAttempt(SEALED.attackerIp, 80, get('evil.test'));
        expect(ex.responses[0]?.status).toBe(403);
        const d = await decisionSince(world, mark, (x) => x.verdict === 'deny');
        expect(d).toMatchObject({ agent: 'coder', host: 'evil.test', verdict: 'deny' });
      });
    });
  });

  // -------------------------------------------------------------------------------------------
  // IP destinations (cidrs): the address the agent dialled is what the rule allows, so only there
  // the sidecar tunnels to it; a denied address inside an allowed range falls to the name chains.

  describe('#8 IP destinations (cidrs rules) in transparent mode', () => {
    it('#8 TLS without SNI to a denied address inside an allowed range is closed; the upstream there sees nothing', async () => {
      await countedVariant(8, async () => {
        const mark = await decisionMark(world);
        const cx = await cxStat();
        const before = world.tlsUpstream.connections;
        const ex = await rawAttempt(SEALED.tlsUpstream, 443, clientHello(null));
        expect(ex.closedByPeer).toBe(true);
        expect(ex.raw.length).toBe(0);
        expect(await cxStat()).toBeGreaterThan(cx);
        expect(world.tlsUpstream.connections).toBe(before);
        const d = await decisionSince(world, mark, (x) => x.verdict === 'deny');
        expect(d).toMatchObject({ agent: 'coder', port: 443, verdict: 'deny', reason: expect.stringMatching(/no TLS server name/) });
      });
    });

    it('#8 ...while the same address with an allowed SNI is judged by the name (Envoy resolves it)', async () => {
      const mark = await decisionMark(world);
      const r = await tlsGet(SEALED.tlsUpstream, 443, 'api.allowed.test');
      expect(r.status).toBe(200);
      const d = await decisionSince(world, mark, (x) => x.verdict === 'allow');
      expect(d).toMatchObject({ host: 'api.allowed.test', rule: 'api' });
    });

    it('plain HTTP to an allowed address is tunnelled to that address whatever its Host says', async () => {
      const mark = await decisionMark(world);
      const before = world.httpUpstream.requests.length;
      const ex = await rawAttempt(SEALED.httpUpstream, 80, `GET /ip-tunnel HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n`);
      expect(ex.responses[0]?.status).toBe(200);
      expect(world.httpUpstream.requests.slice(before).map((r) => [r.url, r.headers.host])).toEqual([['/ip-tunnel', 'evil.test']]);
      const d = await decisionSince(world, mark, (x) => x.verdict === 'allow');
      expect(d).toMatchObject({ agent: 'coder', host: SEALED.httpUpstream, port: 80, policy: 'coder-egress', rule: 'ip-http' });
      expect(d?.upstreamAddress).toBe(`${SEALED.httpUpstream}:80`);
    });

    it('TLS without SNI to an allowed address is tunnelled there (nothing listens on :443 of it: the attempt fails upstream)', async () => {
      const mark = await decisionMark(world);
      const ex = await rawAttempt(SEALED.httpUpstream, 443, clientHello(null));
      expect(ex.raw.length).toBe(0);
      const d = await decisionSince(world, mark, (x) => x.rule === 'ip-tls');
      expect(d).toMatchObject({ agent: 'coder', host: SEALED.httpUpstream, port: 443, verdict: 'allow', policy: 'coder-egress' });
      expect(world.trapHits()).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------------------------
  // The sidecar's and the control plane's ports, UDP

  describe('#8 what the redirect itself must refuse', () => {
    it("#8 the sidecar's own listener port and the control plane's ports, through the redirect, are closed", async () => {
      await countedVariant(8, async () => {
        const targets: Array<[string, number]> = [
          ['127.0.0.1', SEALED.listenPort],
          [SEALED.agent, SEALED.listenPort],
          ['127.0.0.1', world.cp.xdsPort],
          ['127.0.0.1', world.cp.adminPort],
          ['127.0.0.1', 15000],
          ['127.0.0.1', 9901],
          [SEALED.sidecar, world.cp.xdsPort],
        ];
        for (const [ip, port] of targets) {
          for (const payload of [`GET / HTTP/1.1\r\nHost: ${ip}:${port}\r\n\r\n`, clientHello('api.allowed.test')]) {
            const mark = await decisionMark(world);
            const cx = await cxStat();
            const ex = await rawAttempt(ip, port, payload);
            expect(ex.closedByPeer).toBe(true);
            expect(ex.raw.length).toBe(0);
            expect(await cxStat()).toBeGreaterThan(cx);
            const d = await decisionSince(world, mark, (x) => x.verdict === 'deny');
            expect(d).toMatchObject({ agent: 'coder', port, verdict: 'deny' });
          }
        }
      });
    });

    it('#8 UDP from the agent (DNS to the world resolver) is dropped; TCP DNS is redirected and closed', async () => {
      await countedVariant(8, async () => {
        const before = world.dns.queries.length;
        const dropped = world.agent.resolve('exfil-secret.attacker.test', `${SEALED.dns}:53`);
        expect((await dropped).addresses).toBeUndefined();
        expect((await world.agent.udpExchange(SEALED.dns, 53, Buffer.from('hello'), 800)).reply).toBeUndefined();
        expect(world.dns.queries.length).toBe(before);
        // The nft drop counter moved: the datagrams were sent and dropped in the pod.
        const counters = spawnSync('ip', ['netns', 'exec', world.agentNs, 'nft', 'list', 'chain', 'inet', 'exitgate', 'agent_contain'], { encoding: 'utf8' }).stdout;
        expect(Number(/counter packets (\d+)/.exec(counters)?.[1] ?? 0)).toBeGreaterThan(0);
        const ex = await rawAttempt(SEALED.dns, 53, Buffer.from([0, 20, 1, 2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 120, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1]));
        expect(ex.closedByPeer).toBe(true);
        expect(ex.raw.length).toBe(0);
        expect(world.dns.queries.length).toBe(before);
      });
    });
  });

  // -------------------------------------------------------------------------------------------
  // Live policy: a change applies to new connections; a revocation closes an open tunnel

  describe('#8 live policy in transparent mode', () => {
    it('#8 a rule added live applies to new transparent connections, and its removal too', async () => {
      const before = await tlsGet(SEALED.attackerIp, 443, 'new.allowed.test');
      expect(before.status).toBeUndefined();
      await world.applyPolicies({ 'acme.yaml': POLICY(`    - name: added\n      hosts: ["new.allowed.test"]\n      ports: [443]\n`) });
      try {
        const after = await tlsGet(SEALED.attackerIp, 443, 'new.allowed.test');
        expect(after.status).toBe(200);
      } finally {
        await world.applyPolicies({ 'acme.yaml': POLICY() });
      }
      const removed = await tlsGet(SEALED.attackerIp, 443, 'new.allowed.test');
      expect(removed.status).toBeUndefined();
    }, 30_000);

    it('#8 revoking a destination closes an open transparent tunnel within 1 s (SPEC §6.2)', async () => {
      try {
        await countedVariant(8, async () => {
          const r = await world.agent.connectTcp(SEALED.attackerIp, 443);
          const raw = r.socket!;
          raw.resume();
          const t = tls.connect({ socket: raw, servername: 'x.cdn.allowed.test', ca: world.ca.caPem });
          await new Promise<void>((resolve, reject) => {
            t.once('secureConnect', () => resolve());
            t.once('error', reject);
          });
          t.on('error', () => undefined);
          const closed = new Promise<number>((resolve) => t.once('close', () => resolve(performance.now())));
          const t0 = performance.now();
          await world.applyPolicies({ 'acme.yaml': POLICY('', false) });
          const result = await Promise.race([closed, new Promise<null>((res) => setTimeout(() => res(null), 1500))]);
          t.destroy();
          if (result === null) throw new Error('the open transparent tunnel survived the revocation for 1.5 s');
          const ms = result - t0;
          reportSummary(`transparent revocation: open tunnel closed ${ms.toFixed(0)} ms after the policy write`);
          noteClass(8, `revocation closed an open transparent tunnel ${ms.toFixed(0)} ms after the policy write`);
          expect(ms).toBeLessThan(1000);
          const after = await tlsGet(SEALED.attackerIp, 443, 'x.cdn.allowed.test');
          expect(after.status).toBeUndefined();
        });
      } finally {
        await world.applyPolicies({ 'acme.yaml': POLICY() });
      }
    }, 30_000);
  });

  it('the redirect rules applied are exactly what `exitgate redirect-rules` prints', () => {
    const { renderRedirectRules } = require('../../src/cli/redirect-rules') as typeof import('../../src/cli/redirect-rules');
    expect(world.redirectRules).toBe(renderRedirectRules({ listenPort: String(SEALED.listenPort), proxyUid: '0' }));
    expect(fs.existsSync(path.join(world.workDir, 'redirect.nft'))).toBe(true);
  });
});
