// Bounded memory on S3: a large push while others run holds a few parts per upload in memory,
// never a layer. Berth runs as its own process so that its peak RSS (VmHWM) is its own. CI's
// sizes are small; `S3_MEMORY_BIG_MIB=1024 S3_MEMORY_OTHERS=15 S3_MEMORY_CHUNK_MIB=10` gives the 1 GiB figure
// with the default part size.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/registry.js';
import { needsS3, s3Bucket, type S3Server } from '../helpers/s3.js';
import { peakRssMiB, startBerthOnS3, streamPush, type S3Berth } from '../helpers/s3-berth.js';

const skip = needsS3();
const BIG_MIB = Number(process.env.S3_MEMORY_BIG_MIB ?? 256);
const OTHERS = Number(process.env.S3_MEMORY_OTHERS ?? 7);
const OTHER_MIB = Number(process.env.S3_MEMORY_OTHER_MIB ?? 48);
const CHUNK_MIB = Number(process.env.S3_MEMORY_CHUNK_MIB ?? 5);
/** Node and Berth at rest, plus what each upload may hold: a part filling, a part being cut, two being sent. */
const BOUND_MIB = 150 + (OTHERS + 1) * 4 * CHUNK_MIB;

describe('memory stays bounded while pushing to S3', { skip }, () => {
  let berth: S3Berth;
  let server: S3Server;
  let bucket: string;

  before(async () => {
    ({ server, bucket } = await s3Bucket('memory'));
    berth = await startBerthOnS3(tempDir('berth-s3mem-'), server, bucket, `    chunksize: ${CHUNK_MIB << 20}\n`, { quiet: true });
  });
  after(async () => { await berth?.stop(); });

  it(`a ${BIG_MIB} MiB push beside ${OTHERS} pushes of ${OTHER_MIB} MiB`, async () => {
    const rest = peakRssMiB(berth.child.pid!);
    const started = Date.now();
    const digests = await Promise.all([
      streamPush(berth.url, 'mem/big', BIG_MIB << 20),
      ...Array.from({ length: OTHERS }, (_, i) => streamPush(berth.url, `mem/other${i}`, OTHER_MIB << 20)),
    ]);
    const seconds = (Date.now() - started) / 1000;
    const peak = peakRssMiB(berth.child.pid!);
    const total = BIG_MIB + OTHERS * OTHER_MIB;
    console.log(`peak RSS ${peak.toFixed(0)} MiB (at rest ${rest.toFixed(0)} MiB, bound ${BOUND_MIB} MiB); ` +
      `${total} MiB pushed in ${seconds.toFixed(1)} s (${(total / seconds).toFixed(0)} MiB/s), parts of ${CHUNK_MIB} MiB`);
    assert.ok(peak < BOUND_MIB, `peak RSS ${peak.toFixed(0)} MiB is above ${BOUND_MIB} MiB`);
    const head = await fetch(`${berth.url}/v2/mem/big/blobs/${digests[0]}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(BIG_MIB << 20));
  });
});
