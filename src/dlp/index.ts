export { compileDlp, dlpSettingsProblems, DEFAULT_BUDGET_MS, DEFAULT_MAX_BYTES } from './scanner.js';
export type { DlpResult, DlpScanner, DlpOptions } from './scanner.js';
export { DLP_ENTITIES, isDlpEntity } from './entities.js';
export type { DlpEntity } from './entities.js';
export { toPayloadScan, createDlpScanFor } from './payload-scan.js';
