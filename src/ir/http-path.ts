/**
 * Request paths as Envoy's HTTP connection manager sees them with the listener's settings
 * (`normalize_path`, `merge_slashes`, `path_with_escaped_slashes_action: REJECT_REQUEST`), so
 * `check` matches L7 rules on the same path Envoy's routes do. A path Envoy would reject is null.
 */
import type { PathMatch } from './agent-ir';

export function normaliseRequestPath(raw: string): string | null {
  const q = raw.search(/[?#]/);
  const path = q >= 0 ? raw.slice(0, q) : raw;
  if (!path.startsWith('/')) return null;
  if (/%2f|%5c/i.test(path)) return null; // escaped slashes: rejected outright
  // Percent-encoded dots are dots for dot-segment removal (RFC 3986 §6.2.2.2 normalisation).
  const decodedDots = path.replace(/%2e/gi, '.');
  const merged = decodedDots.replace(/\/{2,}/g, '/');
  const out: string[] = [];
  const segments = merged.split('/').slice(1);
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === '.') {
      if (last) out.push('');
    } else if (seg === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(seg);
  });
  return `/${out.join('/')}`;
}

export function pathMatches(m: PathMatch, normalisedPath: string): boolean {
  return 'exact' in m ? normalisedPath === m.exact : normalisedPath.startsWith(m.prefix);
}
