import type { DomainPolicy } from '../config/types.js';
import type { PayloadScan, ScanResult } from '../protect/pipeline.js';
import { compileDlp, type DlpOptions, type DlpScanner } from './scanner.js';

/**
 * Adapts a compiled scanner to the payload pipeline's `PayloadScan` step. The scan is synchronous and
 * bounded by the scanner's budget; `truncated` results already come back as `block` for redact/block
 * domains, so the pipeline's deny path covers the fail-closed case.
 */
export function toPayloadScan(scanner: DlpScanner): PayloadScan {
  return async (plaintext, ctx): Promise<ScanResult> => {
    const r = scanner.scan(plaintext, ctx.contentType);
    const layers = r.layers;
    switch (r.action) {
      case 'pass':
        return { action: 'clean', body: plaintext, findings: r.findings, layers };
      case 'redact':
        return r.body === undefined ? { action: 'block', body: plaintext, findings: r.findings, layers } : { action: 'redact', body: r.body, findings: r.findings, layers };
      case 'report':
        return { action: 'report', body: plaintext, findings: r.findings, layers };
      case 'block':
        return { action: 'block', body: plaintext, findings: r.findings, layers };
    }
  };
}

/**
 * `scanFor` for the ext_proc stream: one compiled scanner per domain object. A policy reload produces
 * new DomainPolicy objects, so scanners follow reloads and old ones are garbage-collected with the
 * old policy. Domains without a `dlp` block get no scan step.
 */
export function createDlpScanFor(opts: DlpOptions = {}): (domain: DomainPolicy) => PayloadScan | undefined {
  const cache = new WeakMap<DomainPolicy, PayloadScan>();
  return (domain) => {
    if (!domain.dlp) return undefined;
    let scan = cache.get(domain);
    if (!scan) {
      scan = toPayloadScan(compileDlp(domain.dlp, { maxBytes: domain.maxBodyBytes, ...opts }));
      cache.set(domain, scan);
    }
    return scan;
  };
}
