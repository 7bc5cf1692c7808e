import type { CliCommand } from './command.js';

/**
 * Every CLI command, in the order `mesh-pep --help` lists them. Commands are imported lazily so that
 * `mesh-pep validate` does not load gRPC, and `mesh-pep token` does not load node-seal.
 */
export const COMMANDS: ReadonlyArray<{ name: string; load: () => Promise<CliCommand> }> = [
  { name: 'serve', load: async () => (await import('./commands/serve.js')).command },
  { name: 'validate', load: async () => (await import('./commands/validate.js')).command },
  { name: 'token', load: async () => (await import('./commands/token.js')).command },
  { name: 'keys init', load: async () => (await import('./commands/keys-init.js')).command },
  { name: 'keys rotate', load: async () => (await import('./commands/keys-rotate.js')).command },
  { name: 'check', load: async () => (await import('./commands/check.js')).command },
  { name: 'protect', load: async () => (await import('./commands/protect.js')).command },
  { name: 'open', load: async () => (await import('./commands/open.js')).command },
  { name: 'audit verify', load: async () => (await import('./commands/audit-verify.js')).command },
  { name: 'fhe', load: async () => (await import('./commands/fhe.js')).command },
  { name: 'mpc', load: async () => (await import('./commands/mpc.js')).command },
  { name: 'probe', load: async () => (await import('./commands/probe.js')).command },
];
