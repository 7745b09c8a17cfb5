// Structured logs (pino): JSON lines with the level names registry:2 uses.
import { pino, type Logger } from 'pino';
import type { Config } from './config/load.js';

export function createLogger(config: Pick<Config, 'log'>, destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino({
    level: config.log.level,
    base: { service: 'berth', ...config.log.fields },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: ['secret', '*.secret', 'http.secret'],
  }, destination as pino.DestinationStream);
}
