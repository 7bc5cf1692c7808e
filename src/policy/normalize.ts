/**
 * Request-target normalisation for domain matching (RFC 3986 section 6.2.2, plus what servers behind
 * the mesh are known to do). A domain's `match` is a security boundary: when the PEP compares a path
 * that the callee will read differently (`//admin`, `/%61dmin`, `/public/../admin`, `/admin;x` all
 * reach `/admin` in common servers), a narrow domain is silently bypassed by a broader one. So the
 * path is brought to the one form the callee resolves before any prefix is compared, and what has
 * no single form is refused rather than guessed.
 *
 * The raw path stays in the request attributes (audit, binding); only classification uses this form.
 */
export type Normalized = { ok: true; value: string } | { ok: false; why: string };

const HEX = /^[0-9A-Fa-f]{2}$/;
/**
 * A path that is already in normal form: segments of pchars without `%`, `;` or `\`, none empty
 * (except after a final `/`) and none starting with a dot. Most requests are; they skip the rewrite.
 */
const ALREADY_NORMAL = /^(?:\/[A-Za-z0-9_~!$&'()*+,=:@-][A-Za-z0-9._~!$&'()*+,=:@-]*)*\/?$/;

/** RFC 3986 unreserved: decoding these never changes what a URI means. */
function isUnreserved(code: number): boolean {
  return (
    (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39) || code === 0x2d || code === 0x2e || code === 0x5f || code === 0x7e
  );
}

/**
 * The path part of a `:path` (query and fragment dropped), normalised:
 * 1. percent-escapes of unreserved characters are decoded, every other escape is upper-cased; an
 *    invalid escape, or an escaped `/` or `\` (servers disagree on whether it splits segments), is
 *    refused;
 * 2. each segment loses its `;` parameters (Tomcat, Jetty and Spring drop them before routing, so
 *    `/admin;x` and `/..;/` mean `/admin` and `/../` there; Envoy's own normalisation keeps them);
 * 3. runs of `/` are merged (what Envoy's `merge_slashes` does);
 * 4. `.` and `..` segments are removed (RFC 3986 section 5.2.4; `..` never climbs above the root).
 * A raw backslash or control character has no RFC 3986 meaning and is refused as well.
 */
export function normalizePath(raw: string): Normalized {
  let end = raw.length;
  const q = raw.indexOf('?');
  if (q >= 0) end = q;
  const h = raw.indexOf('#');
  if (h >= 0 && h < end) end = h;
  const target = end === raw.length ? raw : raw.slice(0, end);
  if (ALREADY_NORMAL.test(target)) return { ok: true, value: target === '' ? '/' : target };
  if (target === '') return { ok: true, value: '/' };
  if (target[0] !== '/') return { ok: false, why: 'path does not start with "/"' };

  let decoded = '';
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c < 0x21 || c === 0x7f || c === 0x5c) return { ok: false, why: 'path holds a control character, space or backslash' };
    if (c !== 0x25) {
      decoded += target[i];
      continue;
    }
    const hex = target.slice(i + 1, i + 3);
    if (!HEX.test(hex)) return { ok: false, why: 'path holds an invalid percent-escape' };
    const byte = parseInt(hex, 16);
    if (byte === 0x2f || byte === 0x5c) return { ok: false, why: 'path holds an escaped slash or backslash' };
    decoded += isUnreserved(byte) ? String.fromCharCode(byte) : `%${hex.toUpperCase()}`;
    i += 2;
  }

  const out: string[] = [];
  const segments = decoded.split('/');
  // segments[0] is the empty string before the leading "/".
  for (let i = 1; i < segments.length; i++) {
    const semi = segments[i]!.indexOf(';');
    const seg = semi >= 0 ? segments[i]!.slice(0, semi) : segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '' && !last) continue; // merged slash
    if (seg === '.' || seg === '..') {
      if (seg === '..') out.pop();
      // A trailing dot segment leaves the path ending in "/" (RFC 3986 5.2.4: "/a/b/." → "/a/b/").
      if (last) out.push('');
      continue;
    }
    out.push(seg);
  }
  return { ok: true, value: '/' + out.join('/') };
}

/**
 * A host (already lower-case and without port) in the form domain patterns are written in: one
 * trailing dot (the DNS root, `api.svc.` is `api.svc`) removed. An empty label or a character no
 * host name holds cannot be compared and is refused.
 */
export function normalizeHost(host: string): Normalized {
  // An authority may carry its port (`analyst.agents:8080`); the port never picks a domain.
  const h = host.toLowerCase().replace(/(?<=[^:]):\d{1,5}$/, '');
  if (h.startsWith('[')) return /^\[[0-9a-f:.]+\]$/.test(h) ? { ok: true, value: h } : { ok: false, why: 'host is not a valid IPv6 literal' };
  const value = h.endsWith('.') ? h.slice(0, -1) : h;
  if (value === '') return { ok: true, value };
  if (!/^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/.test(value)) return { ok: false, why: 'host is not a valid host name' };
  return { ok: true, value };
}
