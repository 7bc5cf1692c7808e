/**
 * True for an http(s) URL whose host is a loopback address (`localhost`, 127.0.0.0/8, `::1`). Plain
 * http for the issuer JWKS is refused everywhere else: whoever sits on the path could swap the keys.
 * Loopback stays allowed for a local issuer sidecar and for tests, where no network path exists.
 */
export function isLoopbackUrl(uri: string): boolean {
  let host: string;
  try {
    host = new URL(uri).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (host === 'localhost' || host === '[::1]') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
