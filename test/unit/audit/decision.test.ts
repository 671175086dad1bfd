/**
 * Access log entry -> decision (SPEC §5), on entries a real Envoy 1.40 sidecar streamed to the
 * control plane (fixtures/envoy-1.40-access-log-entries.json, captured end to end), and on
 * variations of them for what the fixture run could not produce.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { classify, guardDenied, GUARD_REASON, mapHttpEntry, mapTcpEntry, parseAuthority, parseRouteName, type MappedEntry } from '../../../src/audit/decision';
import { decodeAccessLogsMessage, durationMs, encodeAccessLogsMessage, type HttpEntryJson, type TcpEntryJson } from '../../../src/audit/log-entry';

interface Captured {
  label: string;
  logName: string;
  node: string;
  http?: HttpEntryJson;
  tcp?: TcpEntryJson;
}

const FIXTURE = path.join(__dirname, 'fixtures', 'envoy-1.40-access-log-entries.json');
const captured = (JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as { entries: Captured[] }).entries;
const NODE = { tenant: 'acme', agent: 'coder', instance: 'e2e-1' };

function entries(label: string): Captured[] {
  const found = captured.filter((c) => c.label === label);
  if (found.length === 0) throw new Error(`fixture has no entry labelled ${label}`);
  return found;
}
const mapped = (label: string): MappedEntry[] => entries(label).map((c) => (c.http ? mapHttpEntry(NODE, c.http) : mapTcpEntry(NODE, c.tcp!)));
function onlyDecision(label: string) {
  const m = mapped(label);
  expect(m).toHaveLength(1);
  expect(m[0]!.kind).toBe('decision');
  return (m[0] as Extract<MappedEntry, { kind: 'decision' }>).decision;
}

describe('decision mapping on entries captured from Envoy 1.40', () => {
  it('the fixture round-trips through the wire format, as the service decodes it', () => {
    for (const c of captured) {
      const message = c.http ? { httpLogs: { logEntry: [c.http] } } : { tcpLogs: { logEntry: [c.tcp!] } };
      expect(decodeAccessLogsMessage(encodeAccessLogsMessage(message))).toEqual(message);
    }
  });

  it('an allowed CONNECT: the decision when established, a close record when it ends', () => {
    const [open, end] = mapped('connect-tls-get');
    expect(open).toMatchObject({ kind: 'decision', tunnelKey: expect.stringMatching(/^acme\/coder\/e2e-1#[0-9a-f-]{36}$/) });
    const d = (open as Extract<MappedEntry, { kind: 'decision' }>).decision;
    expect(d).toMatchObject({
      ...NODE,
      host: 'api.allowed.test',
      method: 'CONNECT',
      verdict: 'allow',
      policy: 'coding',
      rule: 'api',
      reason: 'allowed by coding/api',
      responseCode: 200,
      tunnel: 'open',
      upstreamAddress: expect.stringMatching(/^127\.0\.0\.2:\d+$/),
    });
    expect(d.path).toBeUndefined();
    expect(d.port).toBe(Number(entries('connect-tls-get')[0]!.http!.request!.authority!.split(':')[1]));
    expect(d.durationMs).toBeGreaterThan(0); // time to establish: the entry has no duration yet
    expect(end).toMatchObject({ kind: 'tunnel-end', tunnelKey: (open as { tunnelKey: string }).tunnelKey, decision: { verdict: 'allow', tunnel: 'closed' } });
    const closed = (end as Extract<MappedEntry, { kind: 'tunnel-end' }>).decision;
    // The TLS conversation went through: more bytes each way than the CONNECT exchange itself.
    expect(closed.bytesSent).toBeGreaterThan(500);
    expect(closed.bytesReceived).toBeGreaterThan(1000);
    expect(closed.durationMs).toBeGreaterThan(d.durationMs);
  });

  it('allowed plain HTTP: method and path, never the query string', () => {
    const d = onlyDecision('http-get-with-query');
    expect(d).toMatchObject({ host: 'plain.allowed.test', method: 'GET', path: '/ping', verdict: 'allow', policy: 'coding', rule: 'plain', responseCode: 200, details: 'via_upstream' });
    expect(JSON.stringify(d)).not.toMatch(/s3cr3t|token=|authorization/i);
    expect(d.bytesSent).toBeGreaterThan(0);
    expect(d.bytesReceived).toBeGreaterThan(0);
    expect(d.durationMs).toBeCloseTo(durationMs(entries('http-get-with-query')[0]!.http!.commonProperties!.duration)!, 6);
  });

  it.each([
    ['deny-rule-connect', 'evil.allowed.test', { policy: 'coding', rule: 'no-evil', reason: 'denied by coding/no-evil' }],
    ['deny-unlisted-connect', 'exfil.test', { reason: 'no rule matches' }],
    ['deny-port-connect', 'api.allowed.test', { reason: 'no rule matches' }],
    ['deny-unlisted-http', 'exfil.test', { reason: 'no rule matches', path: '/steal' }],
    ['ip-literal-v4-connect', '127.0.0.2', { reason: 'IP literal matches no rule' }],
    ['ip-literal-v6-connect', '::1', { reason: 'IP literal matches no rule' }],
  ])('%s -> deny', (label, host, expected) => {
    const d = onlyDecision(label);
    expect(d).toMatchObject({ host, verdict: 'deny', responseCode: 403, details: 'direct_response', ...expected });
    if (!('policy' in expected)) expect([d.policy, d.rule]).toEqual([undefined, undefined]);
    expect(d.upstreamAddress).toBeUndefined();
    expect(d.tunnel).toBeUndefined();
  });

  it('the denied port is the one the agent asked for', () => {
    expect(onlyDecision('deny-port-connect').port).toBe(8443);
  });

  it.each(['guard-rebind-connect', 'guard-rebind-http'])('%s: the guard removed every address -> deny, attributed to the rule that allowed the name', (label) => {
    const d = onlyDecision(label);
    expect(d).toMatchObject({ host: 'rebind.allowed.test', verdict: 'deny', policy: 'coding', rule: 'rebind', reason: GUARD_REASON, responseCode: 503, details: 'dns_resolution_failure{address_denied}' });
  });

  it('a name that does not resolve was allowed; the reason says it could not be reached', () => {
    const d = onlyDecision('nxdomain-connect');
    expect(d).toMatchObject({ verdict: 'allow', policy: 'coding', rule: 'rebind', responseCode: 503 });
    expect(d.reason).toBe('allowed by coding/rebind; the destination could not be reached (dns_resolution_failure{cares_norecords:Domain_name_not_found})');
  });

  it('an allowed CONNECT whose destination refuses the connection: allowed, never established, one decision', () => {
    const d = onlyDecision('upstream-refused-connect');
    expect(d).toMatchObject({ host: 'down.allowed.test', verdict: 'allow', rule: 'api', responseCode: 503 });
    expect(d.reason).toMatch(/^allowed by coding\/api; the destination could not be reached \(upstream_reset_before_response_started\{remote_connection_failure/);
    expect(d.tunnel).toBeUndefined();
  });

  it('a request the HTTP codec rejects: denied by the sidecar, naming no host', () => {
    const d = onlyDecision('garbage');
    expect(d).toMatchObject({ host: '', port: 0, verdict: 'deny', reason: 'request refused by the sidecar (http1.codec_error)', responseCode: 400 });
    expect(d.method).toBeUndefined();
  });

  it('a connection no filter chain took (listener log, flag NR): one deny', () => {
    const d = onlyDecision('no-filter-chain');
    expect(d).toMatchObject({ host: 'other.test', verdict: 'deny', reason: 'connection matched no filter chain', details: 'filter_chain_not_found' });
  });

  it('a listener entry for a connection the HCM handled is not a second decision', () => {
    const tcp = structuredClone(entries('no-filter-chain')[0]!.tcp!);
    delete tcp.commonProperties!.responseFlags;
    expect(mapTcpEntry(NODE, tcp).kind).toBe('ignored');
  });

  it('every captured request yields exactly one decision (establishment + close count once)', () => {
    const labels = [...new Set(captured.map((c) => c.label))];
    for (const label of labels) {
      const m = mapped(label);
      expect({ label, decisions: m.filter((x) => x.kind === 'decision').length }).toEqual({ label, decisions: 1 });
    }
  });
});

describe('decision mapping: what the fixture run could not produce', () => {
  const base = entries('deny-unlisted-http')[0]!.http!;
  const withResponse = (routeName: string | undefined, code: number, details: string, extra: Partial<HttpEntryJson['commonProperties']> = {}): HttpEntryJson => ({
    ...base,
    commonProperties: { ...base.commonProperties, ...(routeName === undefined ? { routeName: undefined } : { routeName }), ...extra },
    response: { ...base.response, responseCode: code, responseCodeDetails: details },
  });

  it('periodic and upstream entries are not decisions', () => {
    for (const type of ['DownstreamPeriodic', 'UpstreamPoolReady', 'UpstreamEnd', 'DownstreamStart']) {
      expect(mapHttpEntry(NODE, withResponse('coding/plain', 200, 'via_upstream', { accessLogType: type })).kind).toBe('ignored');
    }
  });

  it('the close of a tunnel whose establishment was not seen is still a decision (tunnel-end carries it)', () => {
    const end = entries('tunnel-bytes')[1]!.http!;
    const m = mapHttpEntry(NODE, end);
    expect(m).toMatchObject({ kind: 'tunnel-end', decision: { verdict: 'allow', tunnel: 'closed', bytesSent: 78, bytesReceived: 71 } });
  });

  it('dry-run routes (would-deny/ prefix) record would-deny', () => {
    expect(mapHttpEntry(NODE, withResponse('would-deny/default-deny', 200, 'via_upstream'))).toMatchObject({ decision: { verdict: 'would-deny', reason: 'no rule matches' } });
    expect(mapHttpEntry(NODE, withResponse('would-deny/coding/no-evil', 200, 'via_upstream'))).toMatchObject({
      decision: { verdict: 'would-deny', policy: 'coding', rule: 'no-evil', reason: 'would be denied by coding/no-evil' },
    });
    // The guard is enforced in dry-run too.
    expect(mapHttpEntry(NODE, withResponse('would-deny/default-deny', 503, 'dns_resolution_failure{address_denied}'))).toMatchObject({ decision: { verdict: 'deny', reason: GUARD_REASON } });
  });

  it('RBAC denials name the policy id that matched', () => {
    expect(classify(parseRouteName('coding/plain'), 403, 'rbac_access_denied_matched_policy[coding/no-post]', 'x.test')).toEqual({ verdict: 'deny', policy: 'coding', rule: 'no-post', reason: 'denied by coding/no-post' });
    expect(classify(parseRouteName('coding/plain'), 403, 'rbac_access_denied_matched_policy[none]', 'x.test')).toEqual({
      verdict: 'deny',
      policy: 'coding',
      rule: 'plain',
      reason: 'not allowed by coding/plain (method or path)',
    });
  });

  it('rate limiting is a denial', () => {
    expect(classify(parseRouteName('coding/plain'), 429, 'local_rate_limited', 'x.test')).toMatchObject({ verdict: 'deny', reason: 'rate limit exceeded (limits)' });
  });

  it('an upstream error response is still an allowed request', () => {
    expect(classify(parseRouteName('coding/plain'), 502, 'via_upstream', 'x.test')).toEqual({ verdict: 'allow', policy: 'coding', rule: 'plain', reason: 'allowed by coding/plain' });
  });

  it('guardDenied needs address_denied, not any DNS failure', () => {
    expect(guardDenied('dns_resolution_failure{address_denied}')).toBe(true);
    expect(guardDenied('dns_resolution_failure{cares_norecords:Domain_name_not_found}')).toBe(false);
    expect(guardDenied('dns_resolution_failure')).toBe(false);
    expect(guardDenied(undefined)).toBe(false);
  });

  it('parses route names', () => {
    expect(parseRouteName('default-deny')).toEqual({ kind: 'default-deny', dryRun: false });
    expect(parseRouteName('p/r')).toEqual({ kind: 'rule', policy: 'p', rule: 'r', dryRun: false });
    expect(parseRouteName('would-deny/p/r')).toEqual({ kind: 'rule', policy: 'p', rule: 'r', dryRun: true });
    for (const bad of [undefined, '', 'p', '/r', 'p/', 'a/b/c']) expect(parseRouteName(bad)).toEqual({ kind: 'none' });
  });

  it('parses authorities the way the agent wrote them, normalised', () => {
    expect(parseAuthority('API.Allowed.Test.:443', undefined)).toEqual({ host: 'api.allowed.test', port: 443 });
    expect(parseAuthority('[::1]:8443', undefined)).toEqual({ host: '::1', port: 8443 });
    expect(parseAuthority('[::1]', 'http')).toEqual({ host: '::1', port: 80 });
    expect(parseAuthority('plain.test', 'http')).toEqual({ host: 'plain.test', port: 80 });
    expect(parseAuthority('plain.test', 'https')).toEqual({ host: 'plain.test', port: 443 });
    expect(parseAuthority('plain.test:99999', 'http')).toEqual({ host: 'plain.test', port: 80 });
    expect(parseAuthority(undefined, 'http')).toEqual({ host: '', port: 0 });
  });

  it('a port-less request allowed by a tls: originate rule records the port Envoy dialled, not 80', () => {
    const base = (authority: string, upstreamPort: number | undefined, route = 'p/api', code = 200): HttpEntryJson => ({
      commonProperties: {
        routeName: route,
        accessLogType: 'DownstreamEnd',
        ...(upstreamPort ? { upstreamRemoteAddress: { socketAddress: { address: '198.51.100.2', portValue: upstreamPort } } } : {}),
      },
      request: { requestMethod: 'GET', scheme: 'http', authority, path: '/v1/x' },
      response: { responseCode: code },
    });
    const port = (e: HttpEntryJson) => (mapHttpEntry(NODE, e) as Extract<MappedEntry, { kind: 'decision' }>).decision.port;
    expect(port(base('api.allowed.test', 443))).toBe(443);
    expect(port(base('api.allowed.test:8443', 443))).toBe(8443);
    expect(port(base('[2001:db8::1]', 8080))).toBe(8080);
    expect(port(base('api.allowed.test', undefined))).toBe(80);
    expect(port(base('evil.test', undefined, 'default-deny', 403))).toBe(80);
  });

  it('durations', () => {
    expect(durationMs('0.012345678s')).toBe(12.346);
    expect(durationMs('3s')).toBe(3000);
    expect(durationMs(undefined)).toBeUndefined();
    expect(durationMs('bogus')).toBeUndefined();
  });
});
