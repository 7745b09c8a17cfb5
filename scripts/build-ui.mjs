#!/usr/bin/env node
// Builds the web UI into dist/ui/: src/ui/web/main.ts bundled and minified by esbuild, the style
// sheet minified, both named by their content's hash (so they can be cached for good), the page
// pointing at them, and for each file its gzip and brotli forms and a strong ETag, listed in
// dist/ui/manifest.json for the server (src/ui/assets.ts). Run by `npm run build`.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src/ui/web');
const out = join(root, 'dist/ui');
/** What the issue allows for everything together, compressed. */
const BUDGET = 150 * 1024;

const common = { bundle: true, minify: true, write: false, legalComments: 'none', logLevel: 'warning' };
const [js, css] = await Promise.all([
  build({ ...common, entryPoints: [join(src, 'main.ts')], format: 'esm', target: ['es2020', 'chrome90', 'firefox90', 'safari15'], outfile: 'app.js' }),
  build({ ...common, entryPoints: [join(src, 'style.css')], outfile: 'app.css' }),
]);

const hash = (data) => createHash('sha256').update(data).digest('base64url');
const files = new Map();
const add = (name, body, type, immutable) => files.set(name, { body: Buffer.from(body), type, immutable });
const hashed = (base, ext, body) => `${base}.${hash(body).slice(0, 10)}.${ext}`;
const jsBody = js.outputFiles[0].contents;
const cssBody = css.outputFiles[0].contents;
const jsName = hashed('app', 'js', jsBody);
const cssName = hashed('app', 'css', cssBody);
add(jsName, jsBody, 'text/javascript; charset=utf-8', true);
add(cssName, cssBody, 'text/css; charset=utf-8', true);
const page = readFileSync(join(src, 'index.html'), 'utf8').replace('{{js}}', jsName).replace('{{css}}', cssName)
  .replace(/\n\s*/g, '\n');
add('index.html', page, 'text/html; charset=utf-8', false);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const manifest = { files: {} };
let total = 0;
for (const [name, { body, type, immutable }] of files) {
  const gzip = gzipSync(body, { level: 9 });
  const br = brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: body.length } });
  writeFileSync(join(out, name), body);
  writeFileSync(join(out, `${name}.gz`), gzip);
  writeFileSync(join(out, `${name}.br`), br);
  manifest.files[name] = { type, etag: hash(body).slice(0, 32), immutable, encodings: { identity: body.length, gzip: gzip.length, br: br.length } };
  total += gzip.length;
}
writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
const sizes = Object.entries(manifest.files).map(([n, f]) => `${n} ${f.encodings.identity} B (gzip ${f.encodings.gzip}, br ${f.encodings.br})`);
process.stdout.write(`web UI: ${sizes.join('; ')}; ${total} B gzip in all\n`);
if (total > BUDGET) {
  process.stderr.write(`web UI: the assets take ${total} B compressed, over the budget of ${BUDGET} B\n`);
  process.exit(1);
}
