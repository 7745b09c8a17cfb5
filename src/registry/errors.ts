// Errors are data: every code the registry can answer with, its HTTP status and message,
// registered once (OCI Distribution Spec error codes plus distribution's extras).
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  MANIFEST_TOO_LARGE: { status: 413, message: 'manifest exceeds the size limit' },
  UNKNOWN: { status: 500, message: 'unknown error' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class RegistryError extends Error {
  readonly status: number;
  /** Extra response headers the error carries (e.g. Range on a 416 for an upload). */
  headers: Record<string, string> = {};

  constructor(readonly code: ErrorCode, message?: string, readonly detail?: unknown, status?: number) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'RegistryError';
    this.status = status ?? ERROR_CODES[code].status;
  }

  withHeaders(headers: Record<string, string>): this {
    Object.assign(this.headers, headers);
    return this;
  }
}

/** Several errors answered at once (e.g. one MANIFEST_BLOB_UNKNOWN per missing blob). */
export class RegistryErrors extends Error {
  constructor(readonly errors: RegistryError[]) {
    super(errors.map((e) => e.message).join('; '));
    this.name = 'RegistryErrors';
  }
}

export function nameUnknown(name: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `repository name not known to registry: ${name}`, { name });
}
