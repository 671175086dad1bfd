/**
 * Request paths as Envoy's HTTP connection manager sees them with the listener's settings
 * (`normalize_path`, `merge_slashes`, `path_with_escaped_slashes_action: REJECT_REQUEST`), so
 * `check` matches L7 rules on the same path Envoy's routes do. A path Envoy would reject is null.
 */
import type { PathMatch } from './agent-ir';

export function normaliseRequestPath(raw: string): string | null {
  const q = raw.search(/[?#]/);
  const path = q >= 0 ? raw.slice(0, q) : raw;
  if (!path.startsWith('/') && !path.startsWith('\\')) return null;
  if (/%2f|%5c/i.test(path)) return null; // escaped slashes: rejected outright
  // normalize_path is URL canonicalisation (RFC 3986 §6.2.2): "\" is a "/", and percent-encoded
  // unreserved characters are the characters themselves (so %2e is a dot, %76 a "v")...
  const canonical = path
    .replace(/\\/g, '/')
    .replace(/%([0-9a-f]{2})/gi, (m, hex: string) => {
      const c = String.fromCharCode(parseInt(hex, 16));
      return /[A-Za-z0-9\-._~]/.test(c) ? c : m;
    });
  // ...then dot segments are removed (RFC 3986 §5.2.4), and only after that are slashes merged.
  const out: string[] = [];
  const segments = canonical.split('/').slice(1);
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === '.') {
      if (last) out.push('');
    } else if (seg === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(seg);
  });
  return `/${out.join('/')}`.replace(/\/{2,}/g, '/');
}

export function pathMatches(m: PathMatch, normalisedPath: string): boolean {
  return 'exact' in m ? normalisedPath === m.exact : normalisedPath.startsWith(m.prefix);
}
