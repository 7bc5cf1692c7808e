import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FileAuditSink } from '../../src/audit/file-sink.js';
import { checkEvent, tempAudit } from './fixtures.js';

const distSrc = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');
const commandModule = pathToFileURL(join(distSrc, 'cli', 'commands', 'audit-verify.js')).href;
const mainJs = join(distSrc, 'cli', 'main.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(argv: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The command object's run() in a child process, exactly as main would call it. */
function runCommand(args: string[]): Promise<Run> {
  const script = `import(${JSON.stringify(commandModule)}).then((m) => m.command.run(${JSON.stringify(args)})).then((c) => process.exit(c), (e) => { console.error(e.name + ': ' + e.message); process.exit(e.name === 'UsageError' ? 2 : 3); });`;
  return run(['--input-type=module', '-e', script]);
}

async function chainFile(): Promise<{ file: string; cleanup: () => Promise<void> }> {
  const t = await tempAudit();
  const sink = await FileAuditSink.open(t.settings);
  await Promise.all([0, 1, 2, 3, 4].map((i) => sink.record(checkEvent(i), { durable: true })));
  await sink.close();
  return { file: t.settings.file, cleanup: t.cleanup };
}

const runners: Array<[string, (args: string[]) => Promise<Run>]> = [['command run()', runCommand]];
if (existsSync(mainJs)) runners.push(['mesh-pep main', (args) => run([mainJs, 'audit', 'verify', ...args])]);

for (const [label, exec] of runners) {
  test(`audit verify via ${label}: exit 0 with a count, 1 naming file:line, 2 on usage errors`, async () => {
    const c = await chainFile();
    try {
      const good = await exec([c.file]);
      assert.equal(good.code, 0, good.stderr);
      assert.match(good.stdout, /^ok: 5 records in 1 file\(s\); head [0-9a-f]{64}$/m);

      const json = await exec(['--json', c.file]);
      assert.equal(json.code, 0);
      assert.equal((JSON.parse(json.stdout) as { records: number }).records, 5);

      const lines = (await readFile(c.file, 'utf8')).split('\n');
      lines[2] = lines[2]!.replace('"allow"', '"deny"');
      await writeFile(c.file, lines.join('\n'));
      const bad = await exec([c.file]);
      assert.equal(bad.code, 1);
      assert.equal(bad.stderr.trim(), `${c.file}:3: hash does not match the record (modified)`);

      const none = await exec([]);
      assert.equal(none.code, 2);
      const help = await exec(['--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /^Usage: mesh-pep audit verify/);
    } finally {
      await c.cleanup();
    }
  });
}
