import { createHmac, type KeyObject } from 'node:crypto';

/**
 * The audit `target`: callee host and path.
 *
 * The query string and fragment are always dropped: they are where tokens travel (`?access_token=`,
 * signed-URL signatures), and an audit record never holds a credential. In masking domains the path
 * itself is replaced by `HMAC-SHA256(key, path)` (hex), so the record still proves which resource was
 * reached — anyone with the key can recompute it for a candidate path — without naming it.
 */
export function auditTarget(
  host: string | undefined,
  path: string | undefined,
  masking: { key: Uint8Array | KeyObject } | undefined,
): string | null {
  const h = (host ?? '').trim().toLowerCase();
  let p = path ?? '';
  const cut = p.search(/[?#]/);
  if (cut >= 0) p = p.slice(0, cut);
  if (!h && !p) return null;
  if (masking) return `${h}#${createHmac('sha256', masking.key).update(p, 'utf8').digest('hex')}`;
  return h + p;
}
