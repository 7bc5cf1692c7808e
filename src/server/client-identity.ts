import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';

/**
 * The SAN identities of a verified client certificate: URI SANs as they are (SPIFFE ids), DNS SANs
 * lower-cased. Node renders `subjectaltname` as `DNS:a, URI:spiffe://…`, quoting (JSON) a value that
 * holds a comma or quote; other SAN kinds (IP, email) are not identities here.
 */
export function certificateIdentities(cert: PeerCertificate | undefined): { uris: Set<string>; dns: Set<string> } {
  const uris = new Set<string>();
  const dns = new Set<string>();
  const san = cert?.subjectaltname;
  if (typeof san !== 'string') return { uris, dns };
  for (const m of san.matchAll(/(?:^|, )(DNS|URI):("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    let value = m[2]!;
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    if (m[1] === 'URI') uris.add(value);
    else dns.add(value.toLowerCase());
  }
  return { uris, dns };
}

/** An allow-list entry with `://` names a URI SAN; any other entry a DNS SAN (case-insensitive). */
export function identityAllowed(cert: PeerCertificate | undefined, allowed: readonly string[]): boolean {
  const { uris, dns } = certificateIdentities(cert);
  for (const a of allowed) {
    if (a.includes('://') ? uris.has(a) : dns.has(a.toLowerCase())) return true;
  }
  return false;
}

/**
 * A server interceptor that refuses every call (PERMISSION_DENIED, before any handler runs) from a
 * client whose verified certificate carries none of the allowed identities. The list is read per call,
 * so a policy reload applies to the next call; `undefined` means no restriction. A refused call is not
 * a decision: it is a caller that is not one of the mesh's Envoys, so it gets a gRPC error, not a
 * CheckResponse.
 */
export function clientAllowListInterceptor(allowed: () => readonly string[] | undefined, onRefused?: (peer: string) => void): grpc.ServerInterceptor {
  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        const list = allowed();
        if (list === undefined || identityAllowed(call.getAuthContext().sslPeerCertificate, list)) {
          next();
          return;
        }
        onRefused?.(call.getPeer());
        call.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: 'client certificate identity is not in server.tls.allowed_clients' });
      },
    });
}
