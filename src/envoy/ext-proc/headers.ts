/**
 * Header rules shared by decoding and encoding. Envoy ignores (and counts as
 * `rejected_header_mutations`) any attempt to set `host`, `:authority`, `:scheme`, `:method` or an
 * `x-envoy-*` header, and never removes `:`-prefixed headers or `host`; mesh-pep never asks for those,
 * so every mutation it emits is applied as sent under the default `mutation_rules`.
 */
export function maySetHeader(name: string): boolean {
  return !name.startsWith(':') && name !== 'host' && !name.startsWith('x-envoy-');
}

/**
 * `x-envoy-*` removals are emitted (for response masking) but only take effect where the filter's
 * `mutation_rules.allow_envoy` is true; Envoy ignores them otherwise (docs/ext-proc.md).
 */
export function mayRemoveHeader(name: string): boolean {
  return !name.startsWith(':') && name !== 'host';
}

/** A header as Envoy sends it: `raw_value` (bytes) when `send_header_raw_value` is on, else `value`. */
export interface WireHeaderValue {
  key?: string;
  value?: string;
  raw_value?: Uint8Array | null;
}

/** Lower-case names; repeated headers joined with ", " as Envoy does for ext_authz. */
export function headerMapOf(list: readonly WireHeaderValue[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const h of list ?? []) {
    if (typeof h.key !== 'string' || h.key === '') continue;
    const name = h.key.toLowerCase();
    const value = h.raw_value && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('latin1') : (h.value ?? '');
    const prev = out.get(name);
    out.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  return out;
}
