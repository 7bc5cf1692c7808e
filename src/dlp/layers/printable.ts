const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * At least 90% printable characters (tabs and newlines count). `whole` also requires valid UTF-8; a
 * prefix may end in the middle of a character, so it is checked byte-wise only.
 */
export function mostlyPrintableText(bytes: Uint8Array, whole: boolean): boolean {
  if (bytes.length === 0) return false;
  let bad = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if ((b < 32 && b !== 9 && b !== 10 && b !== 13) || b === 127) bad++;
  }
  if (bad * 10 > bytes.length) return false;
  if (!whole) return true;
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
