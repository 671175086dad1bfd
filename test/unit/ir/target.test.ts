/**
 * `exitgate check` targets (SPEC §3): `https://host[:port]/path` (a CONNECT, 443 by default),
 * `http://host[:port]/path` (plain HTTP through the proxy, 80 by default) and `host:port`.
 */
import { parseTarget } from '../../../src/ir/target';

function ok(text: string) {
  const r = parseTarget(text);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(text)} to parse: ${r.reason}`);
  return r.value;
}

function bad(text: string): string {
  const r = parseTarget(text);
  if (r.ok) throw new Error(`expected ${JSON.stringify(text)} to be refused, got ${JSON.stringify(r.value)}`);
  return r.reason;
}

describe('parseTarget: https URLs are CONNECT tunnels', () => {
  it('defaults to port 443', () => {
    expect(ok('https://api.example.test/v1/x')).toEqual({ kind: 'connect', host: 'api.example.test', port: 443, portExplicit: false, path: '/v1/x' });
  });
  it('takes an explicit port', () => {
    expect(ok('https://api.example.test:8443/')).toEqual({ kind: 'connect', host: 'api.example.test', port: 8443, portExplicit: true, path: '/' });
  });
  it('a URL without a path gets "/"', () => {
    expect(ok('https://api.example.test')).toMatchObject({ host: 'api.example.test', port: 443, path: '/' });
    expect(ok('https://api.example.test:444')).toMatchObject({ port: 444, path: '/' });
  });
  it('the scheme is case-insensitive', () => {
    expect(ok('HTTPS://api.example.test/')).toMatchObject({ kind: 'connect', port: 443 });
  });
});

describe('parseTarget: http URLs are plain HTTP', () => {
  it('defaults to port 80', () => {
    expect(ok('http://events.pagerduty.test/v2/enqueue')).toEqual({ kind: 'http', host: 'events.pagerduty.test', port: 80, portExplicit: false, path: '/v2/enqueue' });
  });
  it('takes an explicit port', () => {
    expect(ok('http://events.pagerduty.test:443/v2/enqueue')).toMatchObject({ kind: 'http', port: 443 });
  });
  it('keeps the query as part of the path', () => {
    expect(ok('http://a.test/search?q=1').path).toBe('/search?q=1');
  });
});

describe('parseTarget: host:port is a CONNECT', () => {
  it('parses a name and port', () => {
    expect(ok('api.example.test:443')).toEqual({ kind: 'connect', host: 'api.example.test', port: 443 });
  });
  it('parses a bracketed IPv6 literal', () => {
    expect(ok('[::1]:8443')).toEqual({ kind: 'connect', host: '[::1]', port: 8443 });
  });
  it('parses an IPv4 literal', () => {
    expect(ok('10.0.0.1:22')).toEqual({ kind: 'connect', host: '10.0.0.1', port: 22 });
  });
});

describe('parseTarget: the host is kept as the agent wrote it (decide() normalises)', () => {
  it('keeps case and a trailing dot', () => {
    expect(ok('https://API.Example.TEST./').host).toBe('API.Example.TEST.');
    expect(ok('API.example.test.:443').host).toBe('API.example.test.');
  });
  it('keeps IPv6 brackets in URLs', () => {
    expect(ok('https://[2001:db8::1]:8443/x')).toMatchObject({ host: '[2001:db8::1]', port: 8443, path: '/x' });
    expect(ok('http://[::1]/')).toMatchObject({ host: '[::1]', port: 80 });
  });
});

describe('parseTarget: refusals', () => {
  it('a URL without a host', () => {
    expect(bad('https:///path')).toMatch(/has no host/);
    expect(bad('https://:443/')).toMatch(/has no host/);
  });
  it.each(['https://a.test:0/', 'https://a.test:65536/', 'a.test:0', 'a.test:70000', 'http://a.test:99999999999999999999/'])(
    'an out-of-range port: %s',
    (t) => {
      expect(bad(t)).toMatch(/invalid port/);
    },
  );
  it.each(['a.test', 'ftp://a.test/', 'a.test:https', '::1:443', '', 'https://a.test:port/', 'a test:443', 'a.test:443/x'])(
    'something that is not a target: %j',
    (t) => {
      expect(bad(t)).toMatch(/is not https:\/\/host\[:port\]\/path, http:\/\/host\[:port\]\/path or host:port/);
    },
  );
  it('quotes the target in the reason', () => {
    expect(bad('a.test')).toContain('"a.test"');
  });

  // Regression: userinfo once stayed in the host ("user@api.example.test"), so check said deny
  // while a client (curl) connects to api.example.test and Envoy allows it.
  it('a URL with userinfo is refused or resolved to the real host, never to "user@host"', () => {
    const r = parseTarget('https://user@api.example.test/');
    // Refusing is fine; parsing is fine only with the host a client would really connect to.
    if (r.ok) expect(r.value.host).toBe('api.example.test');
  });
});
