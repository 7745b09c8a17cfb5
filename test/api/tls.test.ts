// TLS: HTTPS with HTTP/2 and HTTP/1.1 side by side, and client-certificate verification.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { request } from 'node:https';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { needs } from '../helpers/clients.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { startRegistry, tempDir } from '../helpers/registry.js';

function httpsGet(url: string, options: { ca: Buffer; cert?: Buffer; key?: Buffer }): Promise<{ status: number; body: string; protocol: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...options }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body, protocol: `HTTP/${res.httpVersion}` }));
    });
    req.on('error', reject);
    req.end();
  });
}

function h2Get(origin: string, path: string, ca: Buffer): Promise<{ status: number; body: string; alpn: string }> {
  return new Promise((resolve, reject) => {
    const session = connect(origin, { ca });
    session.on('error', reject);
    const stream = session.request({ ':path': path });
    let body = '';
    let status = 0;
    stream.on('response', (headers) => { status = Number(headers[':status']); });
    stream.on('data', (c) => { body += c; });
    stream.on('end', () => {
      const alpn = (session.socket as unknown as { alpnProtocol: string }).alpnProtocol;
      session.close();
      resolve({ status, body, alpn });
    });
    stream.end();
  });
}

describe('TLS', () => {
  let pki: Pki;
  const skip = needs('openssl');
  before(async () => { if (!skip) pki = await makePki(join(tempDir('berth-tls-'), 'pki')); });

  it('serves HTTPS over HTTP/1.1 and HTTP/2 with a certificate from config', { skip }, async () => {
    const r = await startRegistry({ overrides: { 'http.tls': { certificate: pki.serverCert, key: pki.serverKey } } });
    try {
      const https = r.url.replace('http://', 'https://');
      const ca = readFileSync(pki.caCert);
      const one = await httpsGet(`${https}/v2/`, { ca });
      assert.deepEqual([one.status, one.body, one.protocol], [200, '{}', 'HTTP/1.1']);
      const two = await h2Get(https, '/v2/', ca);
      assert.deepEqual([two.status, two.body, two.alpn], [200, '{}', 'h2']);
      const catalog = await h2Get(https, '/v2/_catalog', ca);
      assert.deepEqual([catalog.status, catalog.body], [200, '{"repositories":[]}']);
      await assert.rejects(httpsGet(`${https}/v2/`, { ca: readFileSync(pki.tokenCert) }), /self-signed|unable to verify|certificate/);
    } finally {
      await r.close();
    }
  });

  it('verifies client certificates against http.tls.clientcas', { skip }, async () => {
    const r = await startRegistry({ overrides: { 'http.tls': { certificate: pki.serverCert, key: pki.serverKey, clientcas: [pki.caCert] } } });
    try {
      const https = r.url.replace('http://', 'https://');
      const ca = readFileSync(pki.caCert);
      await assert.rejects(httpsGet(`${https}/v2/`, { ca }));
      const ok = await httpsGet(`${https}/v2/`, { ca, cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });
      assert.equal(ok.status, 200);
      // a certificate the CA did not sign is refused
      await assert.rejects(httpsGet(`${https}/v2/`, { ca, cert: readFileSync(pki.tokenCert), key: readFileSync(pki.tokenKey) }));
    } finally {
      await r.close();
    }
  });
});
