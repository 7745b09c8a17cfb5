// `n` / `last` pagination shared by tags/list and _catalog, with the RFC 5988 Link header.
import { RegistryError } from '../registry/errors.js';

export const MAX_PAGE = 10_000;

export interface Page {
  items: string[];
  /** Query string of the next page, when there is one. */
  next?: string;
}

export function paginate(sorted: string[], query: URLSearchParams): Page {
  const rawN = query.get('n');
  const last = query.get('last');
  let start = 0;
  if (last) {
    // first index whose item sorts after `last` (sorted is ascending, unique)
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! <= last) lo = mid + 1; else hi = mid;
    }
    start = lo;
  }
  if (rawN === null || rawN === '') return { items: sorted.slice(start) };
  const n = Number(rawN);
  if (!/^\d+$/.test(rawN) || !Number.isSafeInteger(n)) {
    throw new RegistryError('PAGINATION_NUMBER_INVALID', `n must be a whole number from 0 to ${MAX_PAGE}, not ${JSON.stringify(rawN.slice(0, 20))}`);
  }
  const size = Math.min(n, MAX_PAGE);
  const items = sorted.slice(start, start + size);
  if (size > 0 && start + size < sorted.length) {
    return { items, next: `n=${size}&last=${encodeURIComponent(items[items.length - 1]!)}` };
  }
  return { items };
}

export function linkHeader(path: string, next: string | undefined): Record<string, string> {
  return next ? { Link: `<${path}?${next}>; rel="next"` } : {};
}
