/**
 * BoundLog: a stream's log lines carry its bindings like a pino child's, without a child per
 * stream; calls below the level build nothing.
 */
import pino from 'pino';
import { Writable } from 'node:stream';
import { BoundLog, REDACT_PATHS } from '../../../src/util/logger';

function capture(level: string): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk.toString());
      cb();
    },
  });
  const logger = pino({ level, base: { service: 'exitgate' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, dest);
  return { logger, lines: () => out.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const strip = (l: Record<string, unknown>) => {
  const { time: _t, ...rest } = l;
  return rest;
};

describe('BoundLog', () => {
  it('writes the same fields as a pino child with the same bindings', () => {
    const bindings = { stream: 7, protocol: 'delta', peer: '127.0.0.1:5555' };
    const a = capture('debug');
    const b = capture('debug');
    const bound = new BoundLog(a.logger, bindings);
    const child = b.logger.child(bindings);
    for (const log of [bound, child]) {
      log.info({ node: 'acme/bot/1', listen: { address: '127.0.0.1', port: 15001 } }, 'node connected');
      log.warn({ node: 'acme/bot/1', type: 'Listener', error: 'bad' }, 'NACK');
      log.debug({ type: 'Cluster' }, 'pushed');
      log.error({ token: 'secret-value' }, 'redacted');
    }
    expect(a.lines().map(strip)).toEqual(b.lines().map(strip));
    expect(a.lines()).toHaveLength(4);
    expect(a.lines()[0]).toMatchObject({ service: 'exitgate', stream: 7, protocol: 'delta', peer: '127.0.0.1:5555', node: 'acme/bot/1', msg: 'node connected' });
    expect(a.lines()[3]).toMatchObject({ token: '[redacted]' });
  });

  it('a call below the level writes nothing and does not read its fields', () => {
    const c = capture('info');
    const bound = new BoundLog(c.logger, { stream: 1 });
    const fields = {
      get type(): string {
        throw new Error('read');
      },
    };
    expect(() => bound.debug(fields, 'pushed')).not.toThrow();
    expect(c.lines()).toEqual([]);
    bound.info({ a: 1 }, 'kept');
    expect(c.lines()).toMatchObject([{ stream: 1, a: 1, msg: 'kept' }]);
  });
});
