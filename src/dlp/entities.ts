/**
 * The leak guard's entity names, exactly as the contract lists them (section 5, "Leak guard"). Policies
 * name these in `dlp.entities`; audit records and metrics count findings under these names.
 */
export const DLP_ENTITIES = Object.freeze([
  'EMAIL',
  'PHONE',
  'US_SSN',
  'CREDIT_CARD',
  'IBAN',
  'ABA_ROUTING',
  'IP_ADDRESS',
  'AWS_ACCESS_KEY',
  'AWS_SECRET_KEY',
  'GITHUB_TOKEN',
  'SLACK_TOKEN',
  'STRIPE_KEY',
  'OPENAI_KEY',
  'ANTHROPIC_KEY',
  'JWT',
  'PRIVATE_KEY',
  'CREDENTIAL_URI',
  'CANARY',
  // Leak guard 2 (issue 19).
  'UK_NHS',
  'CA_SIN',
  'GOOGLE_API_KEY',
  'GCP_SERVICE_ACCOUNT',
  'AZURE_STORAGE_KEY',
  'NPM_TOKEN',
  'CRYPTO_PRIVATE_KEY',
] as const);

export type DlpEntity = (typeof DLP_ENTITIES)[number];

const ENTITY_SET: ReadonlySet<string> = new Set(DLP_ENTITIES);

export function isDlpEntity(name: string): name is DlpEntity {
  return ENTITY_SET.has(name);
}
