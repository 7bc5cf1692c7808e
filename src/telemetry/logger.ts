import { pino, type Logger } from 'pino';

/**
 * Logs are structured JSON. Anything that could carry a credential is redacted centrally here, so a
 * careless `log.info({ headers })` can never write a token.
 */
export const REDACT_PATHS = [
  'authorization',
  'token',
  'headers.authorization',
  'headers.cookie',
  '*.authorization',
  '*.token',
  'body',
  '*.body',
];

export function createLogger(level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service: 'mesh-pep' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  });
}

export type { Logger };
