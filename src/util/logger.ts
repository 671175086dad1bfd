/**
 * pino loggers. Modules get child loggers carrying {module, node, stream}; secret-bearing fields
 * are redacted by path so a value can never be logged by accident (SPEC §2 Credential).
 */
import pino from 'pino';

export type Logger = pino.Logger;

export const REDACT_PATHS = ['*.secret', '*.token', '*.authorization', '*.credentialValue', 'secret', 'token', 'authorization'];

export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  const opts: pino.LoggerOptions = {
    level: options.level ?? process.env.EXITGATE_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: 'exitgate' },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

/** A logger that drops everything (tests, CLI commands that print their own output). */
export const silentLogger = (): Logger => pino({ level: 'silent' });
