/** The policy file as written, after schema validation (snake_case, optional sections absent). */
export interface RawDomain {
  name: string;
  tier: 'RETRIEVAL' | 'COMPUTATION' | 'FHE';
  allowed_roles: string[];
  metadata_masking?: boolean;
  audit_level?: 'FULL_MESH' | 'OUTPUT_ONLY';
  max_token_age_ms?: number;
  attestation_required?: boolean;
  match?: { hosts?: string[]; path_prefixes?: string[] };
  mask_headers?: string[];
  mask_response_headers?: string[];
  max_body_bytes?: number;
  dlp?: { action: 'redact' | 'block' | 'report'; entities?: string[]; canaries?: string[] };
  computation?: { mode?: 'tee' | 'mpc'; recipients_file?: string; parties?: { name: string; jwks_file: string }[]; fields?: string[] };
  fhe?: { paths?: string[]; max_length?: number; max_ciphertexts?: number; max_output_bytes?: number };
  zones?: { allow?: { from: string; to?: string }[]; allow_unzoned?: boolean };
  deny_shared_identity?: boolean;
}

export interface RawRevocationLists {
  agents?: string[];
  token_ids?: string[];
  key_ids?: string[];
}

export interface RawServerSettings {
  tls?: { cert_file: string; key_file: string; client_ca_file?: string; allowed_clients?: string[] };
  max_concurrent_checks?: number;
  max_concurrent_streams?: number;
  max_request_header_bytes?: number;
  max_inflight_body_bytes?: number;
}

export interface RawPolicy {
  security_mesh: {
    global?: { tls_min_version?: '1.2' | '1.3'; credential_rotation_interval_ms?: number; audit_scope?: 'FULL_MESH' | 'OUTPUT_ONLY' };
    identity?: {
      issuer?: string;
      audiences?: string[];
      jwks_file?: string;
      jwks_uri?: string;
      role_claim?: string;
      attestation_claim?: string;
      spiffe_claim?: string;
      clock_skew_ms?: number;
      algorithms?: string[];
    };
    attestation?: { trusted_measurements?: string[] };
    keys?: { dir?: string; pseudonym_key_file?: string; issuer_private_key_file?: string };
    audit?: { file?: string; max_file_bytes?: number; group_commit_ms?: number };
    domains: RawDomain[];
    zones?: { name: string; principals: string[] }[];
    revocation?: RawRevocationLists & { file?: string };
    shared_identity?: { window_ms?: number; max_tracked_agents?: number };
    server?: RawServerSettings;
  };
}
