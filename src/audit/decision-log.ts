/**
 * Where decision events are written as JSON lines (SPEC §5): the control plane's own log (stdout)
 * by default, or a file of their own (`serve --decisions-log FILE`, appended to, created with its
 * directory if missing). Each line is `{"level":30,"time":...,"module":"decisions","decision":{...},
 * "msg":"decision"}` or, when a CONNECT tunnel closes, `{..."tunnelClosed":{...},"msg":"tunnel closed"}`.
 */
import * as path from 'node:path';
import pino from 'pino';
import { createLogger, type Logger } from '../util/logger';

export interface DecisionLog {
  log: Logger;
  /** Flushes and closes the file (nothing for the main log). */
  close(): Promise<void>;
}

export async function openDecisionLog(main: Logger, file: string | undefined): Promise<DecisionLog> {
  if (!file) return { log: main.child({ module: 'decisions' }), close: async () => undefined };
  const dest = pino.destination({ dest: path.resolve(file), mkdir: true, append: true, sync: false });
  await new Promise<void>((resolve, reject) => {
    dest.once('ready', () => resolve());
    dest.once('error', (err: Error) => reject(new Error(`--decisions-log ${file}: ${err.message}`)));
  });
  // Decisions are recorded whatever the main log level is.
  const log = createLogger({ level: 'info', destination: dest }).child({ module: 'decisions' });
  dest.on('error', (err: Error) => main.error({ module: 'decisions', err: err.message, file }, 'cannot write the decisions log'));
  return {
    log,
    close: () =>
      new Promise<void>((resolve) => {
        dest.once('close', () => resolve());
        dest.end();
      }),
  };
}
