// Certificates for TLS and token tests, made with the real openssl command.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './clients.js';

export interface Pki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** An EC key and a self-signed certificate of it, for signing tokens. */
  tokenKey: string;
  tokenCert: string;
}

export async function makePki(dir: string): Promise<Pki> {
  mkdirSync(dir, { recursive: true });
  const p = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => run('openssl', args);
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=Berth Test CA');
  writeFileSync(p('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=localhost');
  await openssl('x509', '-req', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-out', p('server.crt'), '-days', '2', '-extfile', p('server.ext'));
  writeFileSync(p('client.ext'), 'extendedKeyUsage=clientAuth\n');
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('client.key'), '-out', p('client.csr'), '-subj', '/CN=berth-client');
  await openssl('x509', '-req', '-in', p('client.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-out', p('client.crt'), '-days', '2', '-extfile', p('client.ext'));
  await openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', p('token.key'));
  await openssl('req', '-x509', '-key', p('token.key'), '-out', p('token.crt'), '-days', '2', '-subj', '/CN=Berth Test Token Issuer');
  return {
    dir, caCert: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), clientCert: p('client.crt'),
    clientKey: p('client.key'), tokenKey: p('token.key'), tokenCert: p('token.crt'),
  };
}

/** An htpasswd file written by the real htpasswd command (bcrypt, as `htpasswd -B`). */
export async function makeHtpasswd(file: string, users: Record<string, string>): Promise<void> {
  let first = true;
  for (const [user, password] of Object.entries(users)) {
    await run('htpasswd', [first ? '-Bbc' : '-Bb', file, user, password]);
    first = false;
  }
}
