/** Small HTTP helpers of the admin API: JSON replies, bounded request bodies, entity-tag headers. */
import type * as http from 'node:http';

/** Sends a JSON body (pretty, newline-terminated). Errors are `{error}` or `{errors: [...]}`, never a stack. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

export function sendText(res: http.ServerResponse, status: number, contentType: string, body: string, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', ...headers });
  res.end(body);
}

export const sendError = (res: http.ServerResponse, status: number, error: string, extra: Record<string, unknown> = {}, headers: http.OutgoingHttpHeaders = {}): void =>
  sendJson(res, status, { error, ...extra }, headers);

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Reads a request body as UTF-8, refusing more than `limit` bytes (413) and invalid UTF-8 (400). */
export async function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new HttpError(413, `the body is larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `the body is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new HttpError(400, 'the body is not valid UTF-8');
  }
}

/**
 * Parses `If-Match` / `If-None-Match` (RFC 9110 §13.1): `*` or a comma-separated list of entity
 * tags, each `"..."` or `W/"..."`. Undefined when the header is absent; an error when malformed.
 */
export function parseEntityTags(header: string | string[] | undefined, name: string): '*' | string[] | undefined {
  if (header === undefined) return undefined;
  const text = (Array.isArray(header) ? header.join(',') : header).trim();
  if (text === '*') return '*';
  const tags: string[] = [];
  const re = /\s*((?:W\/)?"[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < text.length && (m = re.exec(text)) !== null) tags.push(m[1]!);
  if (tags.length === 0 || re.lastIndex !== text.length) throw new HttpError(400, `${name} must be * or a list of quoted entity tags such as "sha256-..."`);
  return tags;
}

/** The media type of a request body, lowercased without parameters; undefined when absent. */
export function mediaType(req: http.IncomingMessage): string | undefined {
  const ct = req.headers['content-type'];
  if (ct === undefined || ct.trim() === '') return undefined;
  return ct.split(';')[0]!.trim().toLowerCase();
}

/** Whether the client prefers YAML (`Accept: application/yaml` or `text/yaml`) to JSON. */
export function wantsYaml(req: http.IncomingMessage): boolean {
  const accept = (req.headers.accept ?? '').toLowerCase();
  return /(application|text)\/(x-)?yaml/.test(accept) && !/application\/json/.test(accept);
}
