// The status page: version, storage used, uploads in progress, the last garbage collection and
// what it freed; starting a collection for users who may.
import { CATALOG_SCOPE, json, request } from '../api.js';
import { age, bytes, count, dateTime } from '../format.js';
import { announce, confirmDialog, h, replace } from '../dom.js';
import { navigate, type Page } from '../main.js';

interface GcReport {
  startedAt: string; finishedAt: string; dryRun: boolean; repositories: number; manifestsDeleted: number; blobsKept: number;
  blobsDeleted: number; bytesFreed: number; layerLinksDeleted: number; uploadsDeleted: number; durationMs: number;
}
interface Status {
  version: string; repositories: number; storage: { bytes: number; driver: string };
  uploads: { count: number; bytes: number; oldest?: string };
  gc: { running: boolean; startedAt?: string; last: GcReport | null; settings: { graceMs: number; deleteUntagged: boolean; dryRun: boolean };
    scheduled: { intervalSeconds: number } | null };
  deleteEnabled: boolean; readOnly: boolean;
}

const duration = (ms: number) => (ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`);

export async function statusPage(page: Page): Promise<void> {
  const s = await json<Status>('api/v1/status', { scopes: [CATALOG_SCOPE] });
  const last = s.gc.last;
  const start = async () => {
    const ok = await confirmDialog('Start garbage collection?', [
      h('p', null, 'Collection removes blobs no manifest references',
        s.gc.settings.deleteUntagged ? ' and manifests no tag reaches' : '',
        `, once unused for longer than the grace period (${duration(s.gc.settings.graceMs)}).`),
      s.gc.settings.dryRun ? h('p', null, 'It runs as a dry run (storage.maintenance.gc.dryrun): it only reports.') : null,
    ], 'Start collection');
    if (!ok) return;
    await request('api/v1/gc', { method: 'POST', scopes: [CATALOG_SCOPE] });
    announce('Garbage collection started.');
    for (let i = 0; i < 600; i++) {
      const state = await json<{ running: boolean }>('api/v1/gc', { scopes: [CATALOG_SCOPE] });
      if (!state.running) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    announce('Garbage collection finished.');
    navigate('#/status');
  };
  replace(page.main,
    page.heading('Registry status'),
    h('div', { class: 'cards' },
      card('Storage used', bytes(s.storage.bytes), `${count(s.repositories)} repositor${s.repositories === 1 ? 'y' : 'ies'}, ${s.storage.driver} storage`),
      card('Uploads in progress', count(s.uploads.count), s.uploads.count ? `${bytes(s.uploads.bytes)}, oldest started ${age(s.uploads.oldest)}` : 'none open'),
      card('Last garbage collection', last ? age(last.finishedAt) : 'never',
        last ? `freed ${bytes(last.bytesFreed)}${last.dryRun ? ' (dry run: nothing removed)' : ''}` : 'no collection has run on this storage'),
      card('Version', `Berth ${s.version}`, [s.readOnly ? 'read-only' : 'read-write', s.deleteEnabled ? 'deletes enabled' : 'deletes disabled'].join(', '))),
    h('section', { 'aria-labelledby': 'gc-title' },
      h('h2', { id: 'gc-title' }, 'Garbage collection'),
      s.gc.running ? h('p', { role: 'status' }, `Running since ${dateTime(s.gc.startedAt)}.`) : null,
      h('p', null, s.gc.scheduled ? `Runs every ${duration(s.gc.scheduled.intervalSeconds * 1000)} (storage.maintenance.gc).` : 'Not scheduled (storage.maintenance.gc.enabled is off): it runs when started here, with POST /api/v1/gc, or offline with berth gc.'),
      last ? h('dl', { class: 'facts wide' },
        h('dt', null, 'Finished'), h('dd', null, h('time', { datetime: last.finishedAt }, dateTime(last.finishedAt)), ` (took ${duration(last.durationMs)})`),
        h('dt', null, 'Repositories marked'), h('dd', null, count(last.repositories)),
        h('dt', null, 'Blobs removed'), h('dd', null, `${count(last.blobsDeleted)} (${bytes(last.bytesFreed)}); ${count(last.blobsKept)} kept`),
        h('dt', null, 'Manifests removed'), h('dd', null, count(last.manifestsDeleted)),
        h('dt', null, 'Uploads removed'), h('dd', null, count(last.uploadsDeleted)),
        h('dt', null, 'Mode'), h('dd', null, last.dryRun ? 'dry run (reported only)' : 'removed what it found')) : null,
      page.me.gc ? h('button', { type: 'button', onclick: () => void start().catch((err: Error) => announce(err.message, 'error')) }, 'Start garbage collection') : null),
  );
}

function card(title: string, value: string, note: string): HTMLElement {
  return h('section', { class: 'card' }, h('h2', null, title), h('p', { class: 'value' }, value), h('p', { class: 'muted' }, note));
}
