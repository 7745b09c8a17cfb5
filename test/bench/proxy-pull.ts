// Cold and warm pulls of a 200 MiB image through the pull-through cache, against pulling the
// same image straight from the upstream and pulling an image pushed to Berth itself, in one run.
// The upstream is the reference registry with htpasswd; Berth runs as its own process; skopeo
// copies to a local directory (no unpacking, so the transfer is what is measured). Berth is
// started as the `berth` command is (bin/berth, with its Node.js settings).
//
//   npm run build && node dist/test/bench/proxy-pull.js [ROUNDS]
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { run, startBerth } from '../helpers/clients.js';
import { tempDir } from '../helpers/registry.js';
import { basicAuth, pushImageTo, refRegistry } from '../helpers/upstreams.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const LAYERS = [80 << 20, 60 << 20, 40 << 20, 20 << 20]; // 200 MiB of incompressible bytes
const work = tempDir('bench-');
const ref = await refRegistry(join(work, 'ref'), 'u', 'bench-pass');
const berth = await startBerth(join(work, 'data'), {
  REGISTRY_PROXY_UPSTREAMS: JSON.stringify([{ prefix: 'ref', remoteurl: ref.url, username: 'u', password: 'bench-pass' }]),
  REGISTRY_LOG_ACCESSLOG_DISABLED: 'true', REGISTRY_LOG_LEVEL: 'warn',
});
const refHost = new URL(ref.url).host;

async function timed(source: string, flags: string[]): Promise<number> {
  const out = join(work, 'out');
  rmSync(out, { recursive: true, force: true });
  await run('mkdir', ['-p', out]);
  await run('sync', []); // what the previous copies left dirty is written out before, not during, this one
  const started = process.hrtime.bigint();
  await run('skopeo', ['copy', '--quiet', ...flags, source, `dir:${out}`]);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

const rows: Record<string, number[]> = { direct: [], cold: [], warm: [], local: [] };
try {
  for (let i = 0; i < ROUNDS; i++) {
    const name = `bench/img${i}`;
    await pushImageTo(ref.url, name, 'v1', basicAuth('u', 'bench-pass'), LAYERS);
    rows.direct!.push(await timed(`docker://${refHost}/${name}:v1`, ['--src-tls-verify=false', '--src-creds', 'u:bench-pass']));
    rows.cold!.push(await timed(`docker://${berth.host}/ref/${name}:v1`, ['--src-tls-verify=false']));
    rows.warm!.push(await timed(`docker://${berth.host}/ref/${name}:v1`, ['--src-tls-verify=false']));
    await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `dir:${join(work, 'out')}`, `docker://${berth.host}/local/img${i}:v1`]);
    rows.local!.push(await timed(`docker://${berth.host}/local/img${i}:v1`, ['--src-tls-verify=false']));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  console.log(`200 MiB image (4 layers), skopeo copy to dir:, ${ROUNDS} rounds, median seconds (all runs)`);
  for (const [what, xs] of Object.entries(rows)) console.log(`${what.padEnd(7)} ${median(xs).toFixed(2)}  (${xs.map((x) => x.toFixed(2)).join(', ')})`);
  console.log(`cold / direct = ${(median(rows.cold!) / median(rows.direct!)).toFixed(2)}; warm / local = ${(median(rows.warm!) / median(rows.local!)).toFixed(2)}`);
} finally {
  await berth.stop();
  await ref.stop();
}
