// Structured logs (pino): JSON lines with the level names registry:2 uses; readable,
// coloured lines when standard output is a terminal (or log.formatter is text).
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from './config/load.js';

export function createLogger(config: Pick<Config, 'log'>, destination: NodeJS.WritableStream = process.stdout): Logger {
  const options: pino.LoggerOptions = {
    level: config.log.level,
    base: { service: 'berth', ...config.log.fields },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: ['secret', 'password', 'authorization'],
  };
  const terminal = (destination as { isTTY?: boolean }).isTTY === true;
  const human = config.log.formatter === 'text' || (config.log.formatter === undefined && terminal);
  if (human) {
    return pino(options, pretty({ destination: destination as NodeJS.WritableStream & { fd?: number }, colorize: terminal, sync: true,
      translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' }) as unknown as pino.DestinationStream);
  }
  return pino(options, destination as pino.DestinationStream);
}
