/**
 * `cidrs` rules (SPEC §2: IP destinations) against a real Envoy 1.40 sidecar in the sealed world
 * (test/support/netns-world.ts): the agent in a namespace that can reach only the sidecar, the
 * sidecar in a namespace with no route out, every forbidden address a trap.
 *
 * 1. End to end: allowed addresses (the HTTP upstream, the TLS upstream, an explicitly allowed
 *    private range with upstreams in it: explicit ranges are not guarded, an IPv6 range) are reached
 *    by CONNECT and absolute-URI HTTP, and only the right upstream sees the request; every other
 *    spelling of an allowed address, other ports, port-less and leading-zero ports, Host header
 *    tricks, a denied address inside an allowed range and the guarded neighbours are refused and no
 *    trap is hit; an L7-narrowed range allows only its methods and paths. Every verdict equals
 *    `decide()` (what `exitgate check` prints) and each attempt yields a decision naming the agent
 *    and the rule or reason.
 * 2. An IP differential: fast-check draws random `cidrs` policies and requests (canonical and
 *    non-canonical spellings, CONNECT and plain HTTP, ports, methods, paths), and `decide()` and
 *    Envoy must agree on allow vs deny for every request. Nothing listens at most drawn addresses
 *    and the world has no route out, so an allowed request ends in 503 (or 200 at an upstream);
 *    a denied one is the sidecar's 403.
 *    EXITGATE_IPDIFF_SEED=<n> replays a seed, EXITGATE_IPDIFF_RUNS=<n> sets the number of policies.
 *
 * Linux and root only (CI has both); elsewhere skipped with the reason printed.
 */
import type * as net from 'node:net';
import fc from 'fast-check';
import { addLoopbackAddresses } from '../support/netns';
import { NetnsBroker } from '../support/netns-broker';
import { SEALED, serveEcho, startSealedWorld, type SealedUpstream, type SealedWorld } from '../support/netns-world';
import { policyDocsYaml } from '../support/policy-text';
import { attempt, checkDecision, chooseDecisionsMode, decisionFor, decisionsMode, decisionsModeWhy, describeEvidence, describeIfSealed, failOnNewTrapHits, rawExchange, tlsExchange, type Evidence, type Exchange } from './harness';
import { loadPolicyDir } from '../../src/policy/load';
import { formatPolicyError } from '../../src/policy/errors';
import { buildAgentIr } from '../../src/ir/build-ir';
import { decide, formatDecision, type Decision } from '../../src/ir/decide';
import { parseTarget } from '../../src/ir/target';
import { DENY_BODY } from '../../src/translate/routes';
import { canonicalIpv6 } from '../../src/ir/ip-literal';
import { formatIp, parseIp } from '../../src/util/cidr';
import { reportSummary } from '../support/run-summary';

const NODE = { tenant: 'acme', agent: 'coder', instance: 'cidrs-1' };
const describeSealed = describeIfSealed('cidrs suite');

/** Servers this suite adds to the world namespace, in an explicitly allowed private range. */
const PRIVATE = {
  upstream: '10.99.0.7',
  /** In the L7-narrowed range. */
  readOnly: '10.99.1.9',
  /** Inside the allowed 10.99.0.0/24 but in its denied upper half: a trap. */
  deniedTrap: '10.99.0.200',
  v6: '2001:db8:99::7',
} as const;

const POLICY = `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: ips, tenant: acme }
spec:
  agents: ["coder"]
  allow:
    - name: http-upstream
      cidrs: ["${SEALED.httpUpstream}/32"]
      ports: [80]
    - name: tls-upstream
      cidrs: ["${SEALED.tlsUpstream}/32"]
      ports: [443]
    # A private range: allowed only because this rule names it (explicit ranges are not guarded).
    - name: internal
      cidrs: ["10.99.0.0/24"]
      ports: [80]
    - name: internal-ro
      cidrs: ["10.99.1.0/24"]
      ports: [80]
      http:
        methods: ["GET"]
        paths: ["/v1/*"]
    - name: v6
      cidrs: ["2001:db8:99::/120"]
      ports: [80]
    # Nothing listens here: allowed, and unreachable (503).
    - name: nowhere
      cidrs: ["203.0.113.0/24"]
      ports: [9090]
  deny:
    - name: no-internal-upper
      cidrs: ["10.99.0.128/25"]
---
apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: other-agent, tenant: acme }
spec:
  agents: ["someone-else"]
  allow:
    - name: guarded
      cidrs: ["10.0.0.0/8", "169.254.0.0/16", "198.51.100.0/24"]
      ports: [80, 443, 8080]
`;

// ---------------------------------------------------------------------------------------------
// How the sidecar answered: allow (forwarded, whatever the destination did) or deny (refused)

type EnvoyVerdict = { verdict: 'allow' | 'deny' | 'unknown'; status: number; detail: string };

function envoyVerdictOf(ex: Exchange, head = false): EnvoyVerdict {
  if (ex.tunnel) return { verdict: 'allow', status: 200, detail: 'tunnel' };
  const f = ex.responses.find((r) => r.status >= 200);
  if (!f) return { verdict: 'unknown', status: 0, detail: ex.closedByPeer ? 'closed without a response' : 'no response' };
  const body = f.body.toString('utf8');
  if (f.status >= 200 && f.status < 300) return { verdict: 'allow', status: f.status, detail: '' };
  // A HEAD reply carries no body: the deny route's says its length.
  const denyBody = head ? f.headers.some(([k, v]) => k.toLowerCase() === 'content-length' && Number(v) === Buffer.byteLength(DENY_BODY)) : body === DENY_BODY;
  if (f.status === 403) return denyBody ? { verdict: 'deny', status: 403, detail: 'deny route' } : { verdict: 'unknown', status: 403, detail: body.slice(0, 80) };
  // The codec refused the request before any route: a refusal.
  if (f.status === 400) return { verdict: 'deny', status: 400, detail: body.slice(0, 80) };
  // An allowed route whose destination could not be reached (nothing listens, no route out).
  if (f.status === 503 && !body.startsWith('exitgate:')) return { verdict: 'allow', status: 503, detail: body.slice(0, 80) };
  return { verdict: 'unknown', status: f.status, detail: body.slice(0, 80) };
}

// ---------------------------------------------------------------------------------------------
// Spellings

const v4int = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const v4text = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/** Other spellings of one IPv4 address that inet_aton, URL parsers or careless code accept. */
function v4Variants(ip: string): Array<[string, string]> {
  const o = ip.split('.').map(Number);
  const n = v4int(ip);
  return [
    ['decimal', String(n)],
    ['hex', `0x${n.toString(16)}`],
    ['octal', o.map((x) => `0${x.toString(8)}`).join('.')],
    ['hex octets', o.map((x) => `0x${x.toString(16)}`).join('.')],
    ['a.b.c', `${o[0]}.${o[1]}.${o[2]! * 256 + o[3]!}`],
    ['a.b', `${o[0]}.${o[1]! * 65536 + o[2]! * 256 + o[3]!}`],
    ['zero-padded', o.map((x) => String(x).padStart(3, '0')).join('.')],
    ['one leading zero', `${o[0]}.${o[1]}.${o[2]}.0${o[3]}`],
    ['mapped dotted', `[::ffff:${ip}]`],
    ['mapped hex', `[::ffff:${(o[0]! * 256 + o[1]!).toString(16)}:${(o[2]! * 256 + o[3]!).toString(16)}]`],
    ['NAT64', `[64:ff9b::${ip}]`],
    ['compat', `[::${ip}]`],
  ];
}

/** Non-canonical spellings of an IPv6 address (RFC 5952 says lowercase, shortest, `::` for the longest zero run). */
function v6Variants(ip: string): Array<[string, string]> {
  const value = parseIp(ip)!.value;
  const full = formatIp(6, value);
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  const canon = canonicalIpv6(value);
  const low32 = Number(value & 0xffffffffn);
  return [
    ['uncompressed', `[${groups.join(':')}]`],
    ['zero-padded groups', `[${groups.map((g) => g.padStart(4, '0')).join(':')}]`],
    ['leading zero in one group', `[${canon.replace(/^([0-9a-f]+)/, (g) => `0${g}`)}]`],
    ['embedded IPv4 tail', `[${groups.slice(0, 6).join(':')}:${v4text(low32)}]`],
    ['formatIp spelling', full === canon ? `[${groups.join(':')}]` : `[${full}]`],
  ];
}

// ---------------------------------------------------------------------------------------------

describeSealed('cidrs rules (sealed namespaces, real Envoy)', () => {
  let world: SealedWorld;
  let broker: NetnsBroker;
  const closers: Array<() => void> = [];
  /** Echo servers of our own in the world namespace, at the private addresses (sockets made there by a broker). */
  const echoes: Record<'upstream' | 'readOnly' | 'v6', SealedUpstream> = {} as never;
  const privateTrapHits: string[] = [];
  /** Our trap at 10.99.0.200:80 counts only in the end-to-end part (the differential never dials it). */
  let privateTrapArmed = true;
  const started = performance.now();
  const tally = { attempts: 0, allowed: 0, refused: 0, statuses: new Map<string, number>() };

  beforeAll(async () => {
    world = await startSealedWorld({ node: NODE, tlsNames: ['tls.cidrs.test'], policies: { 'ips.yaml': POLICY } });
    world.dns.setFallback([SEALED.evil]);
    addLoopbackAddresses(world.worldNs, [PRIVATE.upstream, PRIVATE.readOnly, PRIVATE.deniedTrap, PRIVATE.v6]);
    broker = await NetnsBroker.start(world.worldNs);
    for (const [key, host] of [['upstream', PRIVATE.upstream], ['readOnly', PRIVATE.readOnly], ['v6', PRIVATE.v6]] as const) {
      const handle = await broker.listenTcp(host, 80, host.includes(':') ? { ipv6Only: true } : {});
      closers.push(() => handle.close());
      echoes[key] = serveEcho(handle, `private-${key}`, host, 80);
    }
    const trap = await broker.listenTcp(PRIVATE.deniedTrap, 80);
    closers.push(() => trap.close());
    trap.on('connection', (s: net.Socket) => {
      if (privateTrapArmed) {
        privateTrapHits.push(`${PRIVATE.deniedTrap}:80 during "${expect.getState().currentTestName ?? '?'}"`);
        console.error(`FORBIDDEN SERVER HIT: denied-inside-allowed ${PRIVATE.deniedTrap}:80`);
      }
      s.on('error', () => undefined);
      s.destroy();
    });
    const mode = await chooseDecisionsMode(world);
    console.log(`cidrs: sealed world up in ${((performance.now() - started) / 1000).toFixed(1)} s; decisions from ${mode} (${decisionsModeWhy})`);
  }, 120_000);

  afterEach(() => failOnNewTrapHits(world, privateTrapHits.splice(0)));

  afterAll(async () => {
    reportSummary(`cidrs end to end: ${tally.attempts} attempts, ${tally.allowed} allowed, ${tally.refused} refused, all as exitgate check says; statuses ${JSON.stringify(Object.fromEntries(tally.statuses))}; decisions from ${decisionsMode}`);
    console.log(`cidrs suite time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    closers.forEach((c) => c());
    await broker?.stop();
    await world?.stop();
  }, 60_000);

  /** What `exitgate check` says for a target under the policies now in the directory. */
  async function checkSays(target: string | null, method?: string): Promise<{ decision?: Decision; verdict: 'allow' | 'deny'; text: string }> {
    if (target === null) return { verdict: 'deny', text: 'no parsable destination' };
    const c = await checkDecision(world, target, method);
    if (!c.ok) return { verdict: 'deny', text: `unparsable: ${c.reason}` };
    return { decision: c.decision, verdict: c.decision.verdict === 'deny' ? 'deny' : 'allow', text: formatDecision(c.decision) };
  }

  // -------------------------------------------------------------------------------------------
  // 1. End to end

  describe('end to end', () => {
    type Where = 'http' | 'tls' | 'private' | 'readOnly' | 'v6';
    interface Case {
      name: string;
      payload: string;
      /** The `exitgate check` target for what the request names (null: it names nothing parsable). */
      intended: string | null;
      method?: string;
      want: 'allow' | 'deny';
      /** Allowed: which upstream must see it, and the request it must see (for CONNECT: sent through the tunnel). */
      reaches?: { where: Where; url: string; host?: string };
      /** Allowed, unreachable (nothing listens): a 503 from the sidecar. */
      unreachable?: boolean;
      /** The rule the decision must name. */
      rule?: string;
      /** Also acceptable: the codec refuses it (400) where `check`, which sees only the target, allows. */
      codecMayRefuse?: boolean;
    }

    const WHERE: Where[] = ['http', 'tls', 'private', 'readOnly', 'v6'];
    const upstreamAt = (w: Where): SealedUpstream => (w === 'http' ? world.httpUpstream : w === 'tls' ? world.tlsUpstream : echoes[w === 'private' ? 'upstream' : w]);
    const seenBy = (w: Where): Array<{ method: string; url: string; host: string }> =>
      upstreamAt(w).requests.map((r) => ({ method: r.method, url: r.url, host: String(r.headers.host ?? '') }));
    const snapshot = (): Record<Where, number> => Object.fromEntries(WHERE.map((w) => [w, seenBy(w).length])) as Record<Where, number>;

    const connect = (authority: string, host: string | null = authority, extra = ''): string =>
      `CONNECT ${authority} HTTP/1.1\r\n${host === null ? '' : `Host: ${host}\r\n`}${extra}\r\n`;
    const get = (uri: string, host: string | null, extra = '', method = 'GET'): string =>
      `${method} ${uri} HTTP/1.1\r\n${host === null ? '' : `Host: ${host}\r\n`}Connection: close\r\n${method === 'POST' ? 'Content-Length: 0\r\n' : ''}${extra}\r\n`;

    const H = SEALED.httpUpstream;
    const cases: Case[] = [];
    const add = (c: Case): void => void cases.push(c);
    const denyConnect = (what: string, authority: string, rule?: string): void =>
      add({ name: `CONNECT ${what} (${authority})`, payload: connect(authority), intended: authority, want: 'deny', ...(rule ? { rule } : {}) });
    const denyGet = (what: string, authority: string, path = '/', rule?: string): void =>
      add({ name: `GET ${what} (http://${authority}${path})`, payload: get(`http://${authority}${path}`, authority), intended: `http://${authority}${path}`, want: 'deny', ...(rule ? { rule } : {}) });

    // -- allowed
    add({ name: `CONNECT ${H}:80 (the HTTP upstream)`, payload: connect(`${H}:80`), intended: `${H}:80`, want: 'allow', reaches: { where: 'http', url: '/through-tunnel' }, rule: 'ips/http-upstream' });
    add({ name: `GET http://${H}:80/plain`, payload: get(`http://${H}:80/plain`, `${H}:80`), intended: `http://${H}:80/plain`, want: 'allow', reaches: { where: 'http', url: '/plain', host: `${H}:80` }, rule: 'ips/http-upstream' });
    add({ name: `CONNECT ${SEALED.tlsUpstream}:443 (TLS through the tunnel)`, payload: connect(`${SEALED.tlsUpstream}:443`), intended: `${SEALED.tlsUpstream}:443`, want: 'allow', reaches: { where: 'tls', url: '/over-tls' }, rule: 'ips/tls-upstream' });
    add({ name: `CONNECT ${PRIVATE.upstream}:80 (explicit private range, not guarded)`, payload: connect(`${PRIVATE.upstream}:80`), intended: `${PRIVATE.upstream}:80`, want: 'allow', reaches: { where: 'private', url: '/through-tunnel' }, rule: 'ips/internal' });
    add({ name: `GET http://${PRIVATE.upstream}:80/private`, payload: get(`http://${PRIVATE.upstream}:80/private`, `${PRIVATE.upstream}:80`), intended: `http://${PRIVATE.upstream}:80/private`, want: 'allow', reaches: { where: 'private', url: '/private', host: `${PRIVATE.upstream}:80` }, rule: 'ips/internal' });
    add({ name: `GET http://${PRIVATE.readOnly}:80/v1/items (L7 rule: GET /v1/*)`, payload: get(`http://${PRIVATE.readOnly}:80/v1/items`, `${PRIVATE.readOnly}:80`), intended: `http://${PRIVATE.readOnly}:80/v1/items`, method: 'GET', want: 'allow', reaches: { where: 'readOnly', url: '/v1/items' }, rule: 'ips/internal-ro' });
    add({ name: `CONNECT [${PRIVATE.v6}]:80 (IPv6 range)`, payload: connect(`[${PRIVATE.v6}]:80`), intended: `[${PRIVATE.v6}]:80`, want: 'allow', reaches: { where: 'v6', url: '/through-tunnel' }, rule: 'ips/v6' });
    add({ name: `GET http://[${PRIVATE.v6}]:80/v6`, payload: get(`http://[${PRIVATE.v6}]:80/v6`, `[${PRIVATE.v6}]:80`), intended: `http://[${PRIVATE.v6}]:80/v6`, want: 'allow', reaches: { where: 'v6', url: '/v6' }, rule: 'ips/v6' });
    const upperV6 = `[${PRIVATE.v6.toUpperCase()}]:80`;
    add({ name: `GET http://${upperV6}/upper (canonical, upper case)`, payload: get(`http://${upperV6}/upper`, upperV6), intended: `http://${upperV6}/upper`, want: 'allow', reaches: { where: 'v6', url: '/upper' }, rule: 'ips/v6' });
    add({ name: 'GET http://203.0.113.9:9090/ (allowed, nothing listens)', payload: get('http://203.0.113.9:9090/', '203.0.113.9:9090'), intended: 'http://203.0.113.9:9090/', want: 'allow', unreachable: true, rule: 'ips/nowhere' });
    add({ name: 'CONNECT 203.0.113.250:9090 (allowed, nothing listens)', payload: connect('203.0.113.250:9090'), intended: '203.0.113.250:9090', want: 'allow', unreachable: true, rule: 'ips/nowhere' });
    // The trailing dot is stripped by both (SPEC §2 normalisation): the same address, the same upstream.
    add({ name: `GET http://${H}.:80/dot (trailing dot)`, payload: get(`http://${H}.:80/dot`, `${H}.:80`), intended: `http://${H}.:80/dot`, want: 'allow', reaches: { where: 'http', url: '/dot', host: `${H}:80` }, rule: 'ips/http-upstream' });
    // Host header tricks that name the allowed address in the URI: the URI decides, the Host is replaced.
    add({ name: `GET http://${H}:80/mismatch with Host: 10.0.0.5:80`, payload: get(`http://${H}:80/mismatch`, '10.0.0.5:80'), intended: `http://${H}:80/mismatch`, want: 'allow', reaches: { where: 'http', url: '/mismatch', host: `${H}:80` }, rule: 'ips/http-upstream' });
    add({ name: `CONNECT ${H}:80 with Host: 169.254.169.254:80`, payload: connect(`${H}:80`, '169.254.169.254:80'), intended: `${H}:80`, want: 'allow', reaches: { where: 'http', url: '/through-tunnel' }, rule: 'ips/http-upstream' });
    add({
      name: `GET http://${H}:80/dup with two Host headers (allowed, then 10.0.0.5)`,
      payload: get(`http://${H}:80/dup`, `${H}:80`, 'Host: 10.0.0.5:80\r\n'),
      intended: `http://${H}:80/dup`,
      want: 'allow',
      reaches: { where: 'http', url: '/dup', host: `${H}:80` },
      rule: 'ips/http-upstream',
      codecMayRefuse: true,
    });
    add({
      name: `GET http://${H}:80/dup2 with two Host headers (10.0.0.5, then allowed)`,
      payload: get(`http://${H}:80/dup2`, '10.0.0.5:80', `Host: ${H}:80\r\n`),
      intended: `http://${H}:80/dup2`,
      want: 'allow',
      reaches: { where: 'http', url: '/dup2', host: `${H}:80` },
      rule: 'ips/http-upstream',
      codecMayRefuse: true,
    });

    // The ORIGINAL_DST cluster's default override header: the cluster reads :authority only, so an
    // agent-sent x-envoy-original-dst-host must not move the connection (to the 10.0.0.5 trap).
    add({ name: `GET http://${H}:80/override with x-envoy-original-dst-host: 10.0.0.5:80`, payload: get(`http://${H}:80/override`, `${H}:80`, 'x-envoy-original-dst-host: 10.0.0.5:80\r\n'), intended: `http://${H}:80/override`, want: 'allow', reaches: { where: 'http', url: '/override', host: `${H}:80` }, rule: 'ips/http-upstream' });
    add({ name: `CONNECT ${H}:80 with x-envoy-original-dst-host: 169.254.169.254:80`, payload: connect(`${H}:80`, `${H}:80`, 'x-envoy-original-dst-host: 169.254.169.254:80\r\n'), intended: `${H}:80`, want: 'allow', reaches: { where: 'http', url: '/through-tunnel' }, rule: 'ips/http-upstream' });

    // -- denied: other spellings of allowed addresses
    for (const [how, spelled] of v4Variants(H)) {
      denyConnect(`${how} spelling of ${H}`, `${spelled}:80`);
      denyGet(`${how} spelling of ${H}`, `${spelled}:80`);
    }
    for (const [how, spelled] of v4Variants(PRIVATE.upstream).filter(([h]) => ['decimal', 'octal', 'zero-padded', 'mapped dotted', 'hex'].includes(h))) {
      denyGet(`${how} spelling of ${PRIVATE.upstream}`, `${spelled}:80`);
    }
    for (const [how, spelled] of v6Variants(PRIVATE.v6)) {
      denyConnect(`${how} spelling of ${PRIVATE.v6}`, `${spelled}:80`);
      denyGet(`${how} spelling of ${PRIVATE.v6}`, `${spelled}:80`);
    }
    // -- denied: ports
    denyConnect('another port (a trap)', `${H}:8080`);
    denyGet('another port (a trap)', `${H}:8080`);
    denyGet('another port', `${H}:81`);
    denyConnect('a leading-zero port', `${H}:080`);
    denyGet('a leading-zero port', `${H}:080`);
    denyGet('a leading-zero port', `${H}:0080`);
    add({ name: `GET http://${H}/ (no port)`, payload: get(`http://${H}/`, H), intended: `http://${H}/`, want: 'deny' });
    add({ name: `GET http://${PRIVATE.upstream}/ (no port)`, payload: get(`http://${PRIVATE.upstream}/`, PRIVATE.upstream), intended: `http://${PRIVATE.upstream}/`, want: 'deny' });
    add({ name: `CONNECT ${H} (no port)`, payload: connect(H), intended: null, want: 'deny' });
    denyConnect('the TLS upstream on the HTTP port (a trap)', `${SEALED.tlsUpstream}:80`);
    denyConnect('the v6 upstream on another port', `[${PRIVATE.v6}]:81`);
    // -- denied: the URI names a forbidden address, the Host header an allowed one
    add({ name: `GET http://10.0.0.5:80/ with Host: ${H}:80`, payload: get('http://10.0.0.5:80/', `${H}:80`), intended: 'http://10.0.0.5:80/', want: 'deny' });
    add({ name: `CONNECT 169.254.169.254:80 with Host: ${H}:80`, payload: connect('169.254.169.254:80', `${H}:80`), intended: '169.254.169.254:80', want: 'deny' });
    // -- denied: inside an allowed range, by a deny rule
    denyConnect('an address the deny rule covers (a trap)', `${PRIVATE.deniedTrap}:80`, 'ips/no-internal-upper');
    denyGet('an address the deny rule covers (a trap)', `${PRIVATE.deniedTrap}:80`, '/', 'ips/no-internal-upper');
    denyGet('the first address the deny rule covers', '10.99.0.128:80', '/', 'ips/no-internal-upper');
    denyGet('the deny rule on another port too', `${PRIVATE.deniedTrap}:8080`, '/', 'ips/no-internal-upper');
    // -- denied: outside the allowed ranges, including the guarded neighbours (traps)
    denyGet('just outside the private range', '10.99.2.1:80');
    denyGet('the neighbour of the HTTP upstream', '198.51.100.4:80');
    for (const target of ['10.0.0.5:80', '10.0.0.5:443', '169.254.169.254:80', '172.16.0.5:80', '192.168.0.5:80', '100.64.0.5:80', '127.0.0.1:80', '0.0.0.0:80', `${SEALED.evil}:80`]) {
      denyConnect('a guarded or forbidden address', target);
      denyGet('a guarded or forbidden address', target);
    }
    for (const target of ['[fd00:ec2::254]:80', '[64:ff9b::a9fe:a9fe]:80', '[::1]:80', '[::ffff:a9fe:a9fe]:80', `[::ffff:${PRIVATE.upstream}]:80`]) {
      denyConnect('a guarded IPv6 address', target);
      denyGet('a guarded IPv6 address', target);
    }
    // -- the L7-narrowed range: only GET /v1/*
    const RO = `${PRIVATE.readOnly}:80`;
    add({ name: `POST http://${RO}/v1/items (method not allowed)`, payload: get(`http://${RO}/v1/items`, RO, '', 'POST'), intended: `http://${RO}/v1/items`, method: 'POST', want: 'deny' });
    add({ name: `DELETE http://${RO}/v1/items (method not allowed)`, payload: get(`http://${RO}/v1/items`, RO, '', 'DELETE'), intended: `http://${RO}/v1/items`, method: 'DELETE', want: 'deny' });
    add({ name: `GET http://${RO}/admin (path not allowed)`, payload: get(`http://${RO}/admin`, RO), intended: `http://${RO}/admin`, method: 'GET', want: 'deny' });
    add({ name: `GET http://${RO}/v1 (the prefix itself)`, payload: get(`http://${RO}/v1`, RO), intended: `http://${RO}/v1`, method: 'GET', want: 'deny' });
    add({ name: `GET http://${RO}/v1/../admin (dot segments)`, payload: get(`http://${RO}/v1/../admin`, RO), intended: `http://${RO}/v1/../admin`, method: 'GET', want: 'deny' });
    add({ name: `GET http://${RO}/v1/%2e%2e/admin (encoded dot segments)`, payload: get(`http://${RO}/v1/%2e%2e/admin`, RO), intended: `http://${RO}/v1/%2e%2e/admin`, method: 'GET', want: 'deny' });
    add({ name: `GET http://${RO}/admin/../v1/ok (dot segments into the allowed path)`, payload: get(`http://${RO}/admin/../v1/ok`, RO), intended: `http://${RO}/admin/../v1/ok`, method: 'GET', want: 'allow', reaches: { where: 'readOnly', url: '/v1/ok' }, rule: 'ips/internal-ro' });
    add({ name: `CONNECT ${RO} (an L7 rule cannot be enforced in a tunnel)`, payload: connect(RO), intended: RO, want: 'deny' });

    it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
      const isConnect = c.payload.startsWith('CONNECT ');
      const before = { seen: snapshot(), privateCx: echoes.upstream.connections + echoes.readOnly.connections + echoes.v6.connections };
      const ev = await attempt(world, c.payload, { connect: isConnect, keepTunnel: isConnect, timeoutMs: 6000 });
      const info = (): string => `${c.name}: ${describeEvidence(ev)}`;
      try {
        expect({ reachedSidecar: ev.reachedSidecar, info: info() }).toEqual({ reachedSidecar: true, info: info() });
        const check = await checkSays(c.intended, c.method);
        const envoy = envoyVerdictOf(ev.exchange);
        const codecRefused = c.codecMayRefuse && envoy.verdict === 'deny' && envoy.status === 400;
        tally.attempts += 1;
        tally[envoy.verdict === 'allow' ? 'allowed' : 'refused'] += 1;
        const key = `${isConnect ? 'CONNECT' : 'HTTP'} ${envoy.status}`;
        tally.statuses.set(key, (tally.statuses.get(key) ?? 0) + 1);
        if (c.codecMayRefuse) console.log(`cidrs: ${c.name}: the sidecar answered ${envoy.status} (${envoy.verdict})`);
        // exitgate check says what this case expects, and the sidecar does the same.
        expect({ check: check.verdict, text: check.text }).toEqual({ check: c.want, text: check.text });
        if (!codecRefused) expect({ envoy: envoy.verdict, status: envoy.status, detail: envoy.detail, info: info() }).toEqual({ envoy: c.want, status: envoy.status, detail: envoy.detail, info: info() });
        if (c.want === 'deny' || codecRefused) {
          expect({ upstreamConnections: ev.upstreamConnections, info: info() }).toEqual({ upstreamConnections: 0, info: info() });
          expect(ev.httpUpstream.connections + ev.tlsUpstream.connections).toBe(0);
          expect(echoes.upstream.connections + echoes.readOnly.connections + echoes.v6.connections).toBe(before.privateCx);
        } else if (c.reaches) {
          const seen = await reachedUpstream(ev, c.reaches, before.seen);
          expect({ seen, info: info() }).toEqual({ seen: [c.reaches.url], info: info() });
        } else if (c.unreachable) {
          expect(envoy.status).toBe(503);
        }
        // The decision event names the agent, the verdict and the rule or the reason.
        const d = await decisionFor(world, ev, c.intended, c.method ? { method: c.method } : {});
        const dInfo = `decision ${JSON.stringify({ ...d, all: undefined })}. ${info()}`;
        expect({ tenant: d.tenant, agent: d.agent, dInfo }).toEqual({ tenant: NODE.tenant, agent: NODE.agent, dInfo });
        expect({ verdict: d.verdict, dInfo }).toEqual({ verdict: codecRefused ? 'deny' : c.want, dInfo });
        expect(d.reason.trim()).not.toBe('');
        const rule = check.decision?.ref ? `${check.decision.ref.policy}/${check.decision.ref.rule}` : undefined;
        if (c.rule) expect(rule).toBe(c.rule);
        if (!codecRefused && rule) expect({ rule: d.rule, dInfo }).toEqual({ rule, dInfo });
        if (decisionsMode === 'api' && c.want === 'deny' && !rule) expect({ reason: d.reason, dInfo }).toEqual({ reason: expect.stringMatching(/matches no rule|no rule matches|not allowed|refused/) as unknown as string, dInfo });
      } finally {
        ev.exchange.tunnel?.destroy();
      }
    });

    /** What the upstream the case names saw since the attempt began (for a tunnel: after one request sent through it). */
    async function reachedUpstream(ev: Evidence, to: NonNullable<Case['reaches']>, before: Record<Where, number>): Promise<string[]> {
      if (ev.exchange.tunnel) {
        const request = `GET ${to.url} HTTP/1.1\r\nHost: tunnelled.test\r\nConnection: close\r\n\r\n`;
        if (to.where === 'tls') {
          const reply = await tlsExchange(world, ev.exchange.tunnel, 'tls.cidrs.test', request);
          expect(reply).toMatch(/^HTTP\/1\.1 200/);
        } else {
          const ex = await rawExchange(ev.exchange.tunnel, request, { timeoutMs: 4000 });
          expect(ex.responses[0]?.status).toBe(200);
        }
      }
      const fresh = seenBy(to.where).slice(before[to.where]);
      if (to.host) for (const r of fresh) expect(r.host).toBe(to.host);
      // No other upstream saw anything.
      for (const w of WHERE) if (w !== to.where) expect({ where: w, seen: seenBy(w).slice(before[w]) }).toEqual({ where: w, seen: [] });
      return fresh.map((r) => r.url);
    }
  });
  // -------------------------------------------------------------------------------------------
  // 2. The IP differential: random cidrs policies and requests, decide() vs the real sidecar

  describe('IP differential', () => {
    const RUNS = Number(process.env.EXITGATE_IPDIFF_RUNS ?? 60);
    const PER_POLICY = 28;
    const MIN_CASES = 300;
    const PORTS = [80, 443, 9090, 8000];
    const BLOCKS4 = [
      { base: v4int('198.51.100.0'), prefix: 24 },
      { base: v4int('203.0.113.0'), prefix: 24 },
      { base: v4int('10.99.0.0'), prefix: 16 },
    ];
    /** IPv6 ranges are drawn inside 2001:db8:99::/118 (four /120s; the v6 upstream is ::7). */
    const V6_BASE = parseIp('2001:db8:99::')!.value;
    /** World addresses with traps on ports we draw (the TLS upstream's :80, the evil host, DNS): never requested. */
    const NEVER_REQUESTED = new Set([SEALED.tlsUpstream, SEALED.dns, SEALED.evil]);
    /** Addresses no drawn rule covers, guarded neighbours (traps on 80/443) among them. */
    const OUTSIDE = ['10.0.0.5', '169.254.169.254', '192.0.2.1', '198.51.101.3', '10.98.255.255', '127.0.0.1', '0.0.0.0', '172.16.0.5', 'fd00:ec2::254', '::1', '2001:db8:98::7', '64:ff9b::a9fe:a9fe'];
    const METHODS = ['GET', 'POST', 'DELETE', 'HEAD', 'PUT'];
    const RULE_PATHS = ['/v1/*', '/a', '/v1/x'];
    const PATHS = ['/', '/v1/x', '/v1/', '/v1', '/a', '/a/b', '/v1/../a', '/a/../v1/x', '/v1/%2e%2e/a', '//v1/x', '/v1/./x', '/v1/x?q=1'];

    interface CidrSpec {
      family: 4 | 6;
      base: bigint;
      prefix: number;
    }
    interface IpRuleSpec {
      cidrs: CidrSpec[];
      ports?: number[];
      http?: { methods?: string[]; paths?: string[] };
    }
    interface IpPolicySpec {
      agents: string[];
      allow: IpRuleSpec[];
      deny: IpRuleSpec[];
    }
    interface IpRequest {
      kind: 'connect' | 'http';
      /** As written in the authority (IPv6 in brackets unless the spelling drops them). */
      host: string;
      /** How it was spelled, for reports. */
      spelling: string;
      port: number | 'implied';
      portPrefix?: string;
      method: string;
      path: string;
    }

    /** One address, as family + value. */
    type Address = { family: 4 | 6; value: bigint };
    const cidrText = (c: CidrSpec): string => `${c.family === 4 ? v4text(Number(c.base)) : canonicalIpv6(c.base)}/${c.prefix}`;
    const sizeOf = (c: CidrSpec): bigint => 1n << BigInt((c.family === 4 ? 32 : 128) - c.prefix);

    const cidr4: fc.Arbitrary<CidrSpec> = fc
      .tuple(fc.constantFrom(...BLOCKS4), fc.nat(), fc.constantFrom(16, 20, 23, 24, 24, 25, 26, 28, 29, 30, 31, 32, 32))
      .map(([b, r, p]) => {
        const prefix = Math.max(b.prefix, p);
        const addr = b.base + (r % 2 ** (32 - b.prefix));
        return { family: 4 as const, base: BigInt(addr - (addr % 2 ** (32 - prefix))), prefix };
      });
    const cidr6: fc.Arbitrary<CidrSpec> = fc.tuple(fc.nat(1023), fc.constantFrom(120, 121, 124, 126, 127, 128)).map(([off, prefix]) => {
      const addr = V6_BASE + BigInt(off);
      const span = 1n << BigInt(128 - prefix);
      return { family: 6 as const, base: addr - (addr % span), prefix };
    });
    /** Ranges around the servers that answer (the HTTP upstream, the private upstreams, the v6 upstream). */
    const HOT = ['198.51.100.3/32', '198.51.100.0/28', '10.99.0.0/24', '10.99.1.0/24', '10.99.0.0/20', '2001:db8:99::/120', '2001:db8:99::7/128'].map((t): CidrSpec => {
      const [ip, prefix] = t.split('/') as [string, string];
      const parsed = parseIp(ip)!;
      return { family: parsed.family, base: parsed.value, prefix: Number(prefix) };
    });
    const hotAddress: fc.Arbitrary<Address> = fc.constantFrom(SEALED.httpUpstream, PRIVATE.upstream, PRIVATE.readOnly, PRIVATE.v6).map((ip) => parseIp(ip)!);
    const cidr = fc.oneof({ weight: 5, arbitrary: cidr4 }, { weight: 2, arbitrary: fc.constantFrom(...HOT) }, { weight: 1, arbitrary: cidr6 });
    const portSet = fc.subarray(PORTS, { minLength: 1, maxLength: 2 });
    const httpRule = fc.record({ methods: fc.subarray(['GET', 'POST', 'DELETE'], { minLength: 1, maxLength: 2 }), paths: fc.subarray(RULE_PATHS, { minLength: 1, maxLength: 2 }) }, { requiredKeys: [] });
    const allowRule: fc.Arbitrary<IpRuleSpec> = fc
      .record({ cidrs: fc.array(cidr, { minLength: 1, maxLength: 2 }), ports: portSet, http: fc.option(httpRule, { freq: 3, nil: undefined }) })
      // L7 rules need plain HTTP (no 443 among the ports).
      .map((r) => (r.http && (r.ports.includes(443) || Object.keys(r.http).length === 0) ? { cidrs: r.cidrs, ports: r.ports } : r.http ? r : { cidrs: r.cidrs, ports: r.ports }));
    const denyRule: fc.Arbitrary<IpRuleSpec> = fc
      .record({ cidrs: fc.array(cidr, { minLength: 1, maxLength: 2 }), ports: fc.option(portSet, { freq: 2, nil: undefined }) })
      .map((r) => (r.ports ? r : { cidrs: r.cidrs }));
    const policy: fc.Arbitrary<IpPolicySpec> = fc.record({
      agents: fc.constantFrom(['coder'], ['coder'], ['coder'], ['*'], ['*'], ['other']),
      allow: fc.array(allowRule, { minLength: 0, maxLength: 3 }),
      deny: fc.array(denyRule, { minLength: 0, maxLength: 2 }),
    });

    const inside = (c: CidrSpec): fc.Arbitrary<Address> => {
      const size = sizeOf(c);
      const last = c.base + size - 1n;
      const max = c.family === 4 ? 0xffffffffn : (1n << 128n) - 1n;
      return fc.oneof(
        { weight: 4, arbitrary: fc.bigInt(c.base, last).map((value) => ({ family: c.family, value })) },
        { weight: 1, arbitrary: fc.constantFrom(c.base, last).map((value) => ({ family: c.family, value })) },
        { weight: 1, arbitrary: fc.constantFrom(c.base > 0n ? c.base - 1n : c.base, last < max ? last + 1n : last).map((value) => ({ family: c.family, value })) },
      );
    };
    const inBlock: fc.Arbitrary<Address> = fc.oneof(
      { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...BLOCKS4), fc.nat()).map(([b, r]) => ({ family: 4 as const, value: BigInt(b.base + (r % 2 ** (32 - b.prefix))) })) },
      { weight: 1, arbitrary: fc.nat(1023).map((off) => ({ family: 6 as const, value: V6_BASE + BigInt(off) })) },
    );
    const outside: fc.Arbitrary<Address> = fc.constantFrom(...OUTSIDE).map((ip) => parseIp(ip)!);

    const spelled = (a: Address): fc.Arbitrary<[string, string]> => {
      let value = a.value;
      if (a.family === 4 && NEVER_REQUESTED.has(v4text(Number(value)) as never)) value += 1n;
      if (a.family === 4) {
        const ip = v4text(Number(value));
        return fc.oneof(
          { weight: 8, arbitrary: fc.constant<[string, string]>(['canonical', ip]) },
          { weight: 1, arbitrary: fc.constant<[string, string]>(['trailing dot', `${ip}.`]) },
          { weight: 3, arbitrary: fc.constantFrom(...v4Variants(ip)) },
        );
      }
      const canon = canonicalIpv6(value);
      return fc.oneof(
        { weight: 8, arbitrary: fc.constant<[string, string]>(['canonical', `[${canon}]`]) },
        { weight: 1, arbitrary: fc.constant<[string, string]>(['upper case', `[${canon.toUpperCase()}]`]) },
        { weight: 3, arbitrary: fc.constantFrom(...v6Variants(canon)) },
      );
    };

    function arbitraries(): fc.Arbitrary<[IpPolicySpec[], IpRequest[]]> {
      return fc.array(policy, { minLength: 1, maxLength: 2 }).chain((ps) => {
        const rules = ps.flatMap((p) => [...p.allow, ...p.deny]);
        const anyAddress = fc.oneof({ weight: 3, arbitrary: inBlock }, { weight: 1, arbitrary: hotAddress }, { weight: 1, arbitrary: outside });
        const anyPort = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...PORTS) }, { weight: 1, arbitrary: fc.constant('implied' as const) });
        /** Aimed at one rule: an address of its ranges (or just outside), one of its ports, its methods and paths. */
        const aimed = rules.length
          ? fc.constantFrom(...rules).chain((rule) =>
              fc.record({
                address: fc.constantFrom(...rule.cidrs).chain(inside),
                port: fc.oneof({ weight: 6, arbitrary: rule.ports ? fc.constantFrom(...rule.ports) : fc.constantFrom(...PORTS) }, { weight: 1, arbitrary: anyPort }),
                method: rule.http?.methods ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...rule.http.methods) }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }) : fc.constantFrom(...METHODS),
                path: rule.http?.paths
                  ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...rule.http.paths).map((x) => x.replace(/\*$/, 'y')) }, { weight: 2, arbitrary: fc.constantFrom(...PATHS) })
                  : fc.constantFrom(...PATHS),
              }),
            )
          : undefined;
        const random = fc.record({ address: anyAddress, port: anyPort, method: fc.constantFrom(...METHODS), path: fc.constantFrom(...PATHS) });
        const request: fc.Arbitrary<IpRequest> = fc
          .record({
            kind: fc.constantFrom('connect', 'http', 'http') as fc.Arbitrary<'connect' | 'http'>,
            what: aimed ? fc.oneof({ weight: 3, arbitrary: aimed }, { weight: 1, arbitrary: random }) : random,
            zero: fc.constantFrom(false, false, false, false, false, false, false, false, false, false, false, true),
          })
          .chain(({ kind, what, zero }) =>
            spelled(what.address).map(([spelling, host]): IpRequest => {
              const port = kind === 'connect' && what.port === 'implied' ? PORTS[0]! : what.port;
              return { kind, host, spelling, port, ...(zero && port !== 'implied' ? { portPrefix: '0' } : {}), method: what.method, path: what.path };
            }),
          );
        return fc.tuple(fc.constant(ps), fc.array(request, { minLength: PER_POLICY, maxLength: PER_POLICY }));
      });
    }

    let gen = 0;
    function policyYaml(specs: IpPolicySpec[]): string {
      gen += 1;
      return policyDocsYaml(
        specs.map((p, i) => ({
          name: `ipd${gen}-p${i}`,
          tenant: 'acme',
          agents: p.agents,
          allow: p.allow.map((r, j) => ({ name: `a${j}`, cidrs: r.cidrs.map(cidrText), ports: r.ports, ...(r.http ? { http: r.http } : {}) })),
          deny: p.deny.map((r, j) => ({ name: `d${j}`, cidrs: r.cidrs.map(cidrText), ...(r.ports ? { ports: r.ports } : {}) })),
        })),
      );
    }

    const portText = (r: IpRequest): string => (r.port === 'implied' ? '' : `:${r.portPrefix ?? ''}${r.port}`);
    const targetOf = (r: IpRequest): string => (r.kind === 'connect' ? `${r.host}${portText(r)}` : `http://${r.host}${portText(r)}${r.path}`);
    function requestBytes(r: IpRequest): string {
      const authority = `${r.host}${portText(r)}`;
      if (r.kind === 'connect') return `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
      const body = ['POST', 'PUT'].includes(r.method) ? 'Content-Length: 0\r\n' : '';
      return `${r.method} http://${authority}${r.path} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n${body}\r\n`;
    }

    let cases = 0;
    let lateSettled = 0;
    let allowed = 0;
    let applyMs = 0;
    let requestMs = 0;
    const statuses = new Map<string, number>();
    const disagreementsSeen: string[] = [];

    async function envoySays(r: IpRequest): Promise<EnvoyVerdict> {
      const socket = await world.agentConnect();
      const ex = await rawExchange(socket, requestBytes(r), { connect: r.kind === 'connect', head: r.kind === 'http' && r.method === 'HEAD', timeoutMs: 6000, idleMs: 20 });
      return envoyVerdictOf(ex, r.kind === 'http' && r.method === 'HEAD');
    }

    async function compare([specs, requests]: [IpPolicySpec[], IpRequest[]]): Promise<void> {
      const t0 = performance.now();
      const yaml = policyYaml(specs);
      await world.applyPolicies({ 'ips.yaml': yaml });
      // The ACK is sent once the main thread applied the routes; give the workers a moment.
      await new Promise((res) => setTimeout(res, 20));
      const set = await loadPolicyDir(world.policiesDir);
      if (!set.ok) throw new Error(set.errors.map(formatPolicyError).join('\n'));
      const ir = buildAgentIr(set.value, NODE.tenant, NODE.agent);
      const t1 = performance.now();
      applyMs += t1 - t0;
      const disagreements: string[] = [];
      for (let i = 0; i < requests.length; i += 6) {
        await Promise.all(
          requests.slice(i, i + 6).map(async (r) => {
            const t = parseTarget(targetOf(r));
            const d = t.ok ? decide(ir, { ...t.value, ...(r.kind === 'http' ? { method: r.method } : {}) }) : undefined;
            const expected = d && d.verdict !== 'deny' ? 'allow' : 'deny';
            let seen = await envoySays(r);
            if (seen.verdict !== expected) {
              // Rule out route propagation to a worker thread before calling it a disagreement.
              await new Promise((res) => setTimeout(res, 300));
              seen = await envoySays(r);
              if (seen.verdict === expected) lateSettled += 1;
            }
            cases += 1;
            if (seen.verdict === 'allow') allowed += 1;
            const key = `${r.kind === 'connect' ? 'CONNECT' : 'HTTP'} ${seen.status}`;
            statuses.set(key, (statuses.get(key) ?? 0) + 1);
            if (seen.verdict !== expected) {
              disagreements.push(`${r.kind === 'http' ? `${r.method} ` : 'CONNECT '}${targetOf(r)} [${r.spelling}]: check says ${d ? formatDecision(d) : `deny (${t.ok ? '?' : t.reason})`}, Envoy answered ${seen.status} ${seen.detail}`);
            }
          }),
        );
      }
      requestMs += performance.now() - t1;
      if (disagreements.length > 0) {
        disagreementsSeen.push(...disagreements);
        throw new Error(`${disagreements.length} disagreement(s) under policy:\n${yaml}\n${disagreements.join('\n')}`);
      }
    }

    it(`agrees on ${RUNS} random cidrs policies x ${PER_POLICY} requests`, async () => {
      privateTrapArmed = false;
      const seed = Number(process.env.EXITGATE_IPDIFF_SEED ?? Date.now() % 2 ** 31);
      const t0 = performance.now();
      try {
        await fc.assert(
          fc.asyncProperty(arbitraries(), (x) => compare(x)),
          { numRuns: RUNS, seed, endOnFailure: true },
        );
      } finally {
        privateTrapArmed = true;
        reportSummary(
          `ip differential: ${cases} cases, ${disagreementsSeen.length} disagreements (seed ${seed}, rerun with EXITGATE_IPDIFF_SEED=${seed}); ${gen} policies, ${allowed} allowed, ${lateSettled} settled only on retry, statuses ${JSON.stringify(Object.fromEntries(statuses))}, ${((performance.now() - t0) / 1000).toFixed(1)} s (applying ${(applyMs / 1000).toFixed(1)} s, requests ${(requestMs / 1000).toFixed(1)} s)`,
        );
      }
      expect(cases).toBeGreaterThanOrEqual(Math.min(MIN_CASES, RUNS * PER_POLICY));
    }, 150_000);
  });
  // -------------------------------------------------------------------------------------------
  // 3. Dry-run: a deny rule's range is let through (would-deny), but never past the guard

  describe('dry-run deny rules', () => {
    const DRY = `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: dry, tenant: acme }
spec:
  agents: ["coder"]
  mode: dry-run
  allow:
    - name: up
      cidrs: ["${SEALED.httpUpstream}/32"]
      ports: [80]
  deny:
    # Deny rules may name any range (only allow rules are limited): in dry-run they must not
    # become a way past the guard to the metadata service or the sidecar's own loopback.
    - name: no-internal
      cidrs: ["10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8", "::1/128", "fd00:ec2::200/120", "0.0.0.0/8"]
`;
    const targets: Array<[string, string]> = [
      ['CONNECT', '10.0.0.5:80'],
      ['GET', 'http://10.0.0.5:80/'],
      ['CONNECT', '169.254.169.254:80'],
      ['GET', 'http://169.254.169.254:80/latest/meta-data/'],
      ['CONNECT', '127.0.0.1:80'],
      ['GET', 'http://127.0.0.1:80/'],
      ['GET', 'http://0.0.0.0:80/'],
      ['CONNECT', '[::1]:80'],
      ['GET', 'http://[fd00:ec2::254]:80/'],
      // No deny rule: the dry-run default route (for comparison).
      ['GET', 'http://172.16.0.5:80/'],
      ['CONNECT', '192.168.0.5:80'],
    ];

    beforeAll(async () => {
      await world.applyPolicies({ 'ips.yaml': DRY });
      await new Promise((res) => setTimeout(res, 50));
    });

    it.each(targets)('%s %s reaches no guarded address', async (method, target) => {
      const isConnect = method === 'CONNECT';
      const authority = isConnect ? target : target.replace(/^http:\/\/([^/]+).*$/, '$1');
      const payload = isConnect ? `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n` : `GET ${target} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`;
      const ev = await attempt(world, payload, { connect: isConnect, timeoutMs: 6000 });
      const info = `${method} ${target}: ${describeEvidence(ev)}`;
      expect({ reachedSidecar: ev.reachedSidecar, info }).toEqual({ reachedSidecar: true, info });
      const check = await checkSays(target);
      // exitgate check: enforce mode would deny it; dry-run lets it through, recorded.
      expect(check.decision?.verdict).toBe('would-deny');
      // The sidecar refuses it all the same (the guard), and no trap is reached (afterEach).
      expect({ tunnel: !!ev.exchange.tunnel, status: ev.final?.status, info }).toEqual({ tunnel: false, status: expect.any(Number) as unknown as number, info });
      expect({ status: ev.final?.status === 200, info }).toEqual({ status: false, info });
      const d = await decisionFor(world, ev, target);
      expect({ tenant: d.tenant, agent: d.agent }).toEqual({ tenant: NODE.tenant, agent: NODE.agent });
      // Refused by the guard (Envoy: 503 dns_resolution_failure{address_denied}), and recorded so.
      const dInfo = `decision ${JSON.stringify({ ...d, all: undefined })}. ${info}`;
      expect({ status: ev.final?.status, verdict: d.verdict, reason: d.reason, dInfo }).toEqual({ status: 503, verdict: 'deny', reason: expect.stringMatching(/guard/) as unknown as string, dInfo });
      if (decisionsMode === 'api' && check.decision?.ref) expect(d.rule).toBe(`${check.decision.ref.policy}/${check.decision.ref.rule}`);
    });
  });
});
