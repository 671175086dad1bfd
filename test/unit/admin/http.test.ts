/** The admin API's body and header parsing. */
import { parseEntityTags, HttpError } from '../../../src/admin/http';
import { bodyFormat, parsePolicyBody } from '../../../src/admin/policy-body';
import { formatPolicyError } from '../../../src/policy/errors';

describe('entity tags (If-Match / If-None-Match)', () => {
  it.each<[string | undefined, '*' | string[] | undefined]>([
    [undefined, undefined],
    ['*', '*'],
    ['"sha256-abc"', ['"sha256-abc"']],
    [' "a" , W/"b","c" ', ['"a"', 'W/"b"', '"c"']],
  ])('%s', (header, expected) => {
    expect(parseEntityTags(header, 'If-Match')).toEqual(expected);
  });

  it.each(['sha256-abc', '"a" "b"', '"a",,"b"', '', '"a', 'W/a'])('refuses %j with a 400', (header) => {
    expect(() => parseEntityTags(header, 'If-Match')).toThrow(HttpError);
    try {
      parseEntityTags(header, 'If-Match');
    } catch (err) {
      expect((err as HttpError).status).toBe(400);
    }
  });
});

describe('body format', () => {
  it.each<[string | undefined, string | undefined]>([
    [undefined, 'yaml'],
    ['application/json', 'json'],
    ['application/merge-patch+json', 'json'],
    ['application/yaml', 'yaml'],
    ['text/yaml', 'yaml'],
    ['application/x-yaml', 'yaml'],
    ['text/plain', 'yaml'],
    ['application/xml', undefined],
    ['multipart/form-data', undefined],
  ])('%s', (media, expected) => expect(bodyFormat(media)).toBe(expected));
});

describe('policy body', () => {
  const FILE = 'policies/acme/web.yaml';
  const yaml = (tenant = 'acme', name = 'web', host = 'a.example.test') =>
    `apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: { name: ${name}, tenant: ${tenant} }\nspec:\n  agents: ["*"]\n  allow: [{ name: r, hosts: ["${host}"] }]\n`;
  const errors = (text: string, format: 'json' | 'yaml' = 'yaml') => {
    const r = parsePolicyBody(FILE, text, format, 'acme', 'web');
    return r.ok ? [] : r.errors.map(formatPolicyError);
  };

  it('accepts one EgressPolicy of the URL\'s tenant and name, as YAML or JSON', () => {
    const r = parsePolicyBody(FILE, yaml(), 'yaml', 'acme', 'web');
    expect(r.ok && r.value.spec.allow[0]!.ports).toEqual([443]);
    const json = JSON.stringify({ apiVersion: 'exitgate.dev/v1', kind: 'EgressPolicy', metadata: { name: 'web', tenant: 'acme' }, spec: { agents: ['*'] } });
    expect(parsePolicyBody(FILE, json, 'json', 'acme', 'web').ok).toBe(true);
    expect(errors(`---\n${yaml()}---\n`)).toEqual([]);
  });

  it('names what is wrong as the CLI would, in the file it would be stored in', () => {
    expect(errors(yaml('acme', 'web', '*.*.x.test'))).toEqual([`${FILE}: doc 1: spec.allow[0].hosts[0]: "*.*.x.test" is not a valid host pattern`]);
    expect(errors(yaml('globex', 'api'))).toEqual([
      `${FILE}: doc 1: metadata.tenant: "globex" does not match the tenant in the URL ("acme")`,
      `${FILE}: doc 1: metadata.name: "api" does not match the policy name in the URL ("web")`,
    ]);
    expect(errors(`${yaml()}---\n${yaml()}`)).toEqual([`${FILE}: doc 2: the body must hold exactly one EgressPolicy document`]);
    expect(errors('apiVersion: exitgate.dev/v1\nkind: Credential\nmetadata: { name: k, tenant: acme }\nspec: { header: X, source: { env: K } }\n')).toEqual([
      `${FILE}: doc 1: kind: this route stores EgressPolicy documents; a Credential is not accepted here`,
    ]);
    expect(errors('')).toEqual([`${FILE}: the body holds no EgressPolicy document`]);
    expect(errors('{"kind": ', 'json')[0]).toMatch(/^policies\/acme\/web\.yaml: doc 1: invalid JSON: /);
    expect(errors('{"kind": "EgressPolicy", "kind": "EgressPolicy"}', 'json')[0]).toMatch(/^policies\/acme\/web\.yaml: doc 1: invalid YAML: /);
  });
});
