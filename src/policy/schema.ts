/**
 * The policy documents of SPEC §2 as zod schemas: the border where untrusted YAML becomes
 * typed data. Objects are strict: an unknown key (a typo such as `alow:`) is an error, never
 * silently ignored, because an ignored key could be a rule the author believes is enforced.
 */
import { z } from 'zod';
import { parseHostPattern } from './host-pattern';
import { cidrRuleProblem } from './cidr-rule';

export const API_VERSION = 'exitgate.dev/v1';

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const dnsLabel = z
  .string()
  .regex(DNS_LABEL, { error: (iss) => `${JSON.stringify(iss.input)} is not a DNS label (lowercase letters, digits and "-", at most 63)` });

const hostPattern = z.string().superRefine((value, ctx) => {
  const parsed = parseHostPattern(value);
  if (!parsed.ok) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} ${parsed.reason}` });
});

const port = z
  .number({ error: 'must be a port number' })
  .int({ error: 'must be a whole port number' })
  .min(1, { error: (iss) => `${iss.input} is not a port (1-65535)` })
  .max(65535, { error: (iss) => `${iss.input} is not a port (1-65535)` });

/** An IP destination range (SPEC §2 `cidrs`); what is refused and why lives in cidr-rule.ts. */
const cidrEntry = (use: 'allow' | 'deny') =>
  z.string().superRefine((value, ctx) => {
    const problem = cidrRuleProblem(value, use);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'QUERY'] as const;

/** `/exact/path` or `/prefix/*`; no dot segments, no percent-encoding, no query (matched after normalisation). */
const PATH = /^\/([A-Za-z0-9._~!$&'()+,;=:@-]+\/?)*(\*)?$/;
const httpPath = z.string().superRefine((value, ctx) => {
  const problem =
    !value.startsWith('/')
      ? 'must start with "/"'
      : value.includes('*') && !value.endsWith('/*')
        ? 'may only end in "/*" (a prefix); no other wildcard'
        : /(^|\/)\.\.?(\/|\*?$)/.test(value) || value.includes('//')
          ? 'must be normalised (no "." or ".." segments, no "//")'
          : !PATH.test(value)
            ? 'may contain only unreserved path characters (no "%", "?", "#" or spaces)'
            : null;
  if (problem) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} ${problem}` });
});

const httpRule = z.strictObject({
  methods: z
    .array(z.enum(HTTP_METHODS, { error: (iss) => `${JSON.stringify(iss.input)} is not an HTTP method (${HTTP_METHODS.join(', ')})` }))
    .min(1, { error: 'must list at least one method' })
    .optional(),
  paths: z.array(httpPath).min(1, { error: 'must list at least one path' }).optional(),
});

export const allowRuleSchema = z
  .strictObject({
    name: dnsLabel,
    hosts: z.array(hostPattern).min(1, { error: 'must list at least one host' }).optional(),
    cidrs: z.array(cidrEntry('allow')).min(1, { error: 'must list at least one range' }).optional(),
    ports: z.array(port).min(1, { error: 'must list at least one port' }).default([443]),
    /** The agent speaks plain HTTP to the proxy; Envoy opens TLS upstream and verifies it. */
    tls: z.literal('originate', { error: 'must be "originate"' }).optional(),
    http: httpRule.optional(),
    credential: dnsLabel.optional(),
  })
  .superRefine((rule, ctx) => {
    if (!rule.hosts && !rule.cidrs) ctx.addIssue({ code: 'custom', message: 'a rule needs hosts or cidrs' });
    // L7 rules need Envoy to see HTTP: plain HTTP, or TLS that Envoy itself originates (SPEC §2).
    const seesHttp = rule.tls === 'originate' || rule.ports.every((p) => p !== 443);
    if (!seesHttp && rule.http) ctx.addIssue({ code: 'custom', path: ['http'], message: 'http rules need tls: originate (Envoy cannot see requests inside a TLS tunnel)' });
    if (!seesHttp && rule.credential) ctx.addIssue({ code: 'custom', path: ['credential'], message: 'a credential needs tls: originate (Envoy cannot add a header inside a TLS tunnel)' });
    // Envoy verifies an originated TLS connection against a name; an IP destination has none.
    if (rule.cidrs && (rule.tls || rule.credential)) {
      ctx.addIssue({ code: 'custom', path: ['cidrs'], message: 'cidrs cannot be combined with tls: originate or a credential (they need a host name to verify); put the IP destinations in a rule of their own' });
    }
  });

export const denyRuleSchema = z
  .strictObject({
    name: dnsLabel,
    hosts: z.array(hostPattern).min(1, { error: 'must list at least one host' }).optional(),
    cidrs: z.array(cidrEntry('deny')).min(1, { error: 'must list at least one range' }).optional(),
    /** Omitted: every port. */
    ports: z.array(port).min(1, { error: 'must list at least one port' }).optional(),
  })
  .superRefine((rule, ctx) => {
    if (!rule.hosts && !rule.cidrs) ctx.addIssue({ code: 'custom', message: 'a rule needs hosts or cidrs' });
  });

const agentName = z.union([z.literal('*'), dnsLabel], {
  error: (iss) => `${JSON.stringify(iss.input)} is not an agent name (a DNS label, or "*")`,
});

export const egressPolicySchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('EgressPolicy'),
  metadata: z.strictObject({ name: dnsLabel, tenant: dnsLabel }),
  spec: z.strictObject({
    agents: z.array(agentName).min(1, { error: 'must name at least one agent, or "*"' }),
    /** dry-run: what enforce would deny is allowed and recorded as would-deny (SPEC §2). */
    mode: z.enum(['enforce', 'dry-run'], { error: (iss) => `${JSON.stringify(iss.input)} is not a mode (enforce, dry-run)` }).default('enforce'),
    // `allow:` whose entries are all commented out is YAML null: an empty list, not an error.
    allow: z.array(allowRuleSchema).nullish().transform((v) => v ?? []),
    deny: z.array(denyRuleSchema).nullish().transform((v) => v ?? []),
    /** Per agent instance (each sidecar enforces its own); the strictest across applying policies. */
    limits: z
      .strictObject({
        requestsPerMinute: z.number().int({ error: 'must be a whole number' }).min(1, { error: 'must be at least 1' }).max(1_000_000).optional(),
        maxConnections: z.number().int({ error: 'must be a whole number' }).min(1, { error: 'must be at least 1' }).max(1_000_000).optional(),
      })
      .optional(),
  }),
});

export const credentialSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Credential'),
  metadata: z.strictObject({ name: dnsLabel, tenant: dnsLabel }),
  spec: z.strictObject({
    header: z.string().min(1),
    prefix: z.string().optional(),
    source: z.union([z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })]),
  }),
});

export type EgressPolicy = z.infer<typeof egressPolicySchema>;
export type AllowRule = z.infer<typeof allowRuleSchema>;
export type DenyRule = z.infer<typeof denyRuleSchema>;
export type Credential = z.infer<typeof credentialSchema>;
