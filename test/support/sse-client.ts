/** A minimal server-sent-events client for the admin API's /v1/decisions/stream. */
import * as http from 'node:http';

export interface SseEvent {
  id?: string;
  event: string;
  data: Record<string, unknown>;
}

export interface SseStream {
  /** Resolves once the response head arrived. */
  ready: Promise<void>;
  /** Resolves when the server or the client ended the stream. */
  closed: Promise<void>;
  events: SseEvent[];
  readonly status: number;
  readonly contentType: string;
  close(): void;
}

export function openSse(target: { host: string; port: number }, path: string, headers: http.OutgoingHttpHeaders = {}): SseStream {
  const events: SseEvent[] = [];
  let raw = '';
  let status = 0;
  let contentType = '';
  let ended!: () => void;
  const closed = new Promise<void>((resolve) => (ended = resolve));
  const req = http.get({ host: target.host, port: target.port, path, headers });
  const ready = new Promise<void>((resolve, reject) => {
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      contentType = String(res.headers['content-type']);
      res.setEncoding('utf8');
      res.on('close', () => ended());
      res.on('data', (chunk: string) => {
        raw += chunk;
        let end: number;
        while ((end = raw.indexOf('\n\n')) >= 0) {
          const block = raw.slice(0, end);
          raw = raw.slice(end + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const i = line.indexOf(':');
            if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1).replace(/^ /, '');
          }
          if (fields.event) events.push({ ...(fields.id ? { id: fields.id } : {}), event: fields.event, data: JSON.parse(fields.data ?? 'null') as Record<string, unknown> });
        }
      });
      resolve();
    });
    req.on('error', (err) => {
      ended();
      reject(err);
    });
  });
  ready.catch(() => undefined);
  return {
    ready,
    closed,
    events,
    get status() {
      return status;
    },
    get contentType() {
      return contentType;
    },
    close: () => req.destroy(),
  };
}
