// Bearer tokens as the Docker token specification defines them: JWTs whose `access` claim
// lists what the holder may do, verified by signature, issuer, audience and expiry. Keys come
// from a certificate bundle (matched by libtrust key id or x5c chain, as registry:2 does), a
// JWKS file, or the embedded token server's own key.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, SignJWT, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { Scope } from './access.js';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** The key id registry:2 (libtrust) derives from a public key: base32 of 240 bits of SHA-256(SPKI), grouped by 4. */
export function libtrustKeyId(key: KeyObject): string {
  const hash = createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest().subarray(0, 30);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of hash) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)!.join(':');
}

export class TokenError extends Error {}

export interface VerifiedToken {
  subject?: string;
  access: Scope[];
}

export interface VerifierOptions {
  issuer: string;
  service: string;
  rootCertBundle?: string;
  jwks?: string;
  /** Public keys trusted directly (the embedded token server's). */
  keys?: KeyObject[];
}

function algorithmFor(key: KeyObject): string {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : 'ES256';
  }
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
}

export class TokenVerifier {
  private readonly byKid = new Map<string, KeyObject>();
  private readonly roots: X509Certificate[] = [];
  private readonly jwks?: ReturnType<typeof createLocalJWKSet>;

  constructor(private readonly options: VerifierOptions) {
    if (options.rootCertBundle) {
      const pem = readFileSync(options.rootCertBundle, 'utf8');
      for (const block of pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
        const cert = new X509Certificate(block);
        this.roots.push(cert);
        this.byKid.set(libtrustKeyId(cert.publicKey), cert.publicKey);
      }
      if (this.roots.length === 0) throw new Error(`auth.token.rootcertbundle ${options.rootCertBundle} holds no PEM certificate`);
    }
    if (options.jwks) this.jwks = createLocalJWKSet(JSON.parse(readFileSync(options.jwks, 'utf8')) as JSONWebKeySet);
    for (const key of options.keys ?? []) this.byKid.set(libtrustKeyId(key), key);
  }

  async verify(token: string): Promise<VerifiedToken> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, async (header, input) => {
        if (header.kid && this.byKid.has(header.kid)) return this.byKid.get(header.kid)!;
        if (header.x5c?.length) return this.keyFromChain(header.x5c);
        if (this.jwks) return this.jwks(header, input);
        throw new TokenError(`no trusted key for key id ${header.kid ?? '(none)'}`);
      }, { issuer: this.options.issuer, audience: this.options.service, clockTolerance: 30, requiredClaims: ['exp'] }));
    } catch (err) {
      if (err instanceof TokenError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new TokenError('token expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw new TokenError(`token claim ${err.claim} is not valid: ${err.reason}`);
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw new TokenError('token signature is not valid');
      throw new TokenError(`token is not valid: ${(err as Error).message}`);
    }
    const access = Array.isArray(payload.access) ? payload.access as Scope[] : [];
    return {
      subject: payload.sub || undefined,
      access: access.filter((a) => a && typeof a.name === 'string' && Array.isArray(a.actions)),
    };
  }

  /**
   * x5c: every certificate must be in its validity period, each one issued and signed by the
   * next, every issuer a CA, and the last one issued by (or identical to) a trusted root.
   */
  private keyFromChain(x5c: string[]): KeyObject {
    const chain = x5c.map((der) => new X509Certificate(Buffer.from(der, 'base64')));
    const now = Date.now();
    for (const cert of chain) {
      if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) {
        throw new TokenError(`token certificate ${cert.subject.replace(/\n/g, ', ')} is outside its validity period`);
      }
    }
    for (let i = 0; i + 1 < chain.length; i++) {
      const [cert, issuer] = [chain[i]!, chain[i + 1]!];
      if (!issuer.ca || !cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
        throw new TokenError('token certificate chain is broken: each certificate must be issued by the next, a CA');
      }
    }
    const top = chain[chain.length - 1]!;
    const trusted = this.roots.some((root) => root.fingerprint256 === top.fingerprint256 ||
      (root.ca && top.checkIssued(root) && top.verify(root.publicKey)));
    if (!trusted) throw new TokenError('token certificate chain does not lead to a trusted root (auth.token.rootcertbundle)');
    return chain[0]!.publicKey;
  }
}

/** Signs tokens for the embedded token server. */
export class TokenSigner {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  private readonly algorithm: string;
  private readonly kid: string;

  constructor(keyFile: string | undefined, private readonly issuer: string, private readonly service: string,
              private readonly lifetimeMs: number) {
    if (keyFile) {
      this.privateKey = createPrivateKey(readFileSync(keyFile));
    } else {
      this.privateKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    }
    this.publicKey = createPublicKey(this.privateKey);
    this.algorithm = algorithmFor(this.publicKey);
    this.kid = libtrustKeyId(this.publicKey);
  }

  async sign(subject: string | undefined, access: Scope[]): Promise<{ token: string; expiresIn: number; issuedAt: Date }> {
    const issuedAt = new Date();
    const expiresIn = Math.max(1, Math.round(this.lifetimeMs / 1000));
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: this.algorithm, typ: 'JWT', kid: this.kid })
      .setIssuer(this.issuer)
      .setSubject(subject ?? '')
      .setAudience(this.service)
      .setIssuedAt(Math.floor(issuedAt.getTime() / 1000))
      .setNotBefore(Math.floor(issuedAt.getTime() / 1000) - 1)
      .setExpirationTime(Math.floor(issuedAt.getTime() / 1000) + expiresIn)
      .setJti(randomUUID())
      .sign(this.privateKey);
    return { token, expiresIn, issuedAt };
  }
}
