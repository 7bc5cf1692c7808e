import type { DomainPolicy } from '../config/types.js';

/** How a protected request body is labelled: its content type and the headers that go with it. */
export interface Representation {
  contentType: string;
  headers: Readonly<Record<string, string>>;
}

const JOSE = 'application/jose';
const JSON_TYPE = 'application/json';

/**
 * What a non-empty request body of this domain becomes, known before the body arrives. Envoy sends
 * the request headers on before the body in STREAMED and FULL_DUPLEX_STREAMED modes and ignores
 * header changes in body answers there, so the ext_proc adapter labels the body at the headers phase
 * (and again with the exact values when it replaces the body, which BUFFERED mode honours). Each value
 * equals what the tier's handler sets (`protect/<tier>/handler.ts`); test/extproc/representation
 * checks that they agree.
 */
export function protectedRequestRepresentation(domain: DomainPolicy): Representation {
  switch (domain.tier) {
    case 'RETRIEVAL':
      return { contentType: JOSE, headers: { 'x-mesh-protected': 'RETRIEVAL' } };
    case 'COMPUTATION':
      return { contentType: domain.computation?.mode === 'mpc' ? JSON_TYPE : JOSE, headers: { 'x-mesh-protected': 'COMPUTATION' } };
    case 'FHE':
      return { contentType: JSON_TYPE, headers: { 'x-mesh-protected': 'FHE' } };
  }
}
