// Structured logs (pino): JSON lines with the level names registry:2 uses; readable,
// coloured lines when standard output is a terminal (or log.formatter is text).
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import type { Config } from './config/load.js';

/** pino-pretty, loaded only for readable lines: a process logging JSON (every worker's primary, say) is smaller without it. */
function pretty(options: PinoPretty.PrettyOptions): PinoPretty.PrettyStream {
  const load = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  return load(options);
}

/** Standard output when it is a file or a pipe: written asynchronously, flushed on exit. */
let asyncStdout: pino.DestinationStream & { flushSync(): void } | undefined;

function stdoutDestination(): pino.DestinationStream {
  if (!asyncStdout) {
    // a line is written as soon as the previous write is done, and the lines that came meanwhile go
    // together: under load one write carries many request lines instead of one each (a write per
    // line was an eighth of the CPU of a manifest GET). process.exit() flushes what is pending.
    asyncStdout = pino.destination({ dest: 1, sync: false }) as unknown as pino.DestinationStream & { flushSync(): void };
    process.on('exit', () => {
      try {
        asyncStdout?.flushSync();
      } catch {
        // standard output is gone: nothing to tell
      }
    });
  }
  return asyncStdout;
}

let stampedAt = -1;
let stamp = '';
/** pino's ISO time field, formatted once per millisecond: under load many lines share one. */
function isoTime(): string {
  const now = Date.now();
  if (now !== stampedAt) {
    stampedAt = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}

export function createLogger(config: Pick<Config, 'log'>, destination: NodeJS.WritableStream = process.stdout): Logger {
  const options: pino.LoggerOptions = {
    level: config.log.level,
    base: { service: 'berth', ...config.log.fields },
    timestamp: isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: ['secret', 'password', 'authorization'],
  };
  const terminal = (destination as { isTTY?: boolean }).isTTY === true;
  const human = config.log.formatter === 'text' || (config.log.formatter === undefined && terminal);
  if (human) {
    return pino(options, pretty({ destination: destination as NodeJS.WritableStream & { fd?: number }, colorize: terminal, sync: true,
      translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' }) as unknown as pino.DestinationStream);
  }
  return pino(options, destination === process.stdout ? stdoutDestination() : destination as pino.DestinationStream);
}
