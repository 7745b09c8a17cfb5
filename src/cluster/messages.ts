// What the processes of one registry (`http.workers` > 1) say to each other over their IPC
// channels. Every channel is one ordered stream: a worker sees what the primary sent in the order
// it was sent, which the lock protocol relies on (an event before the release that follows it).
import type { LockRequest } from '../registry/locks.js';
import type { MetadataEvent } from '../registry/metadata.js';
import { Digest, type Algorithm } from '../registry/names.js';

/** A metadata event as plain data: digests as strings, a manifest's bytes as base64. */
export type WireEvent = Record<string, unknown> & { type: MetadataEvent['type'] };

/** Worker → primary. */
export type ToPrimary =
  | { t: 'join' }
  | { t: 'acquire'; op: number; requests: LockRequest[] }
  | { t: 'release'; op: number }
  | { t: 'held'; op: number; key: string }
  | { t: 'event'; event: WireEvent }
  /** A catalog walk this worker started, and one it finished, for the others. */
  | { t: 'walking' }
  | { t: 'walked'; names?: string[]; startedAt: number }
  | { t: 'metrics'; id: number }
  | { t: 'metrics-part'; id: number; metrics: unknown[] };

/** Primary → worker. */
export type ToWorker =
  | { t: 'welcome' }
  | { t: 'granted'; op: number }
  | { t: 'hold'; op: number; key: string }
  | { t: 'unhold'; op: number }
  | { t: 'event'; event: WireEvent }
  | { t: 'walking' }
  | { t: 'walked'; names?: string[]; startedAt: number }
  | { t: 'metrics-get'; id: number }
  /** A connection the primary accepted, for one of this worker's servers (the socket comes along). */
  | { t: 'conn'; listener: ListenerName }
  | { t: 'metrics-text'; id: number; text: string; contentType: string };

/** The listeners the primary accepts connections for: the registry's, the debug one, the token server's. */
export type ListenerName = 'main' | 'debug' | 'token';

/** Environment the primary gives each worker. */
export const WORKER_ENV = {
  /** This worker's slot, 0..n-1: slot 0 runs the registry's scheduled work. */
  slot: 'BERTH_WORKER_SLOT',
} as const;

export function encodeEvent(event: MetadataEvent): WireEvent {
  const out: WireEvent = { type: event.type };
  for (const [key, value] of Object.entries(event)) {
    if (value instanceof Digest) out[key] = value.toString();
    else if (key === 'record') {
      const r = value as Extract<MetadataEvent, { type: 'manifest-put' }>['record'];
      out.record = {
        digest: r.digest.toString(), mediaType: r.mediaType, content: r.content.toString('base64'),
        blobs: r.blobs.map(String), children: r.children.map(String), subject: r.subject?.toString(),
        deferReferences: r.deferReferences,
      };
    } else out[key] = value;
  }
  return out;
}

function digest(value: unknown): Digest {
  const text = String(value);
  const colon = text.indexOf(':');
  return new Digest(text.slice(0, colon) as Algorithm, text.slice(colon + 1));
}

export function decodeEvent(wire: WireEvent): MetadataEvent {
  const out: Record<string, unknown> = { ...wire };
  if (typeof wire.digest === 'string') out.digest = digest(wire.digest);
  if (wire.record) {
    const r = wire.record as Record<string, unknown>;
    out.record = {
      digest: digest(r.digest), mediaType: r.mediaType, content: Buffer.from(String(r.content), 'base64'),
      blobs: (r.blobs as string[]).map(digest), children: (r.children as string[]).map(digest),
      subject: r.subject ? digest(r.subject) : undefined, deferReferences: r.deferReferences,
    };
  }
  return out as unknown as MetadataEvent;
}
