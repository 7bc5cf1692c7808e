/**
 * `text/event-stream` (WHATWG HTML §9.2) rewritten event by event. Lines end in CRLF, LF or CR; a
 * blank line ends an event; an event's `data:` lines joined with "\n" are its message. Events the
 * caller leaves alone keep their exact bytes; a changed event keeps its other fields (`event:`, `id:`,
 * `retry:`, comments) and line endings, with its data as one `data:` line where the first one was.
 */
const LINE = /\r\n|\r|\n/g;

interface Line {
  text: string;
  end: string;
}

function linesOf(text: string): Line[] {
  const out: Line[] = [];
  let last = 0;
  LINE.lastIndex = 0;
  for (let m = LINE.exec(text); m !== null; m = LINE.exec(text)) {
    out.push({ text: text.slice(last, m.index), end: m[0] });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), end: '' });
  return out;
}

function dataValue(line: string): string | undefined {
  if (!line.startsWith('data')) return undefined;
  if (line.length === 4) return '';
  if (line[4] !== ':') return undefined;
  return line[5] === ' ' ? line.slice(6) : line.slice(5);
}

/**
 * Calls `rewrite` with the data of every event that has any; it returns the new data, or undefined to
 * keep the event as it is. Returns the new stream text, or undefined when no event changed.
 */
export function rewriteEventStream(text: string, rewrite: (data: string) => string | undefined): string | undefined {
  const lines = linesOf(text);
  let changed = false;
  const out: string[] = [];
  let event: Line[] = [];
  const flush = () => {
    if (event.length === 0) return;
    const data: string[] = [];
    for (const l of event) {
      const v = dataValue(l.text);
      if (v !== undefined) data.push(v);
    }
    const next = data.length ? rewrite(data.join('\n')) : undefined;
    if (next === undefined) {
      for (const l of event) out.push(l.text, l.end);
    } else {
      changed = true;
      let written = false;
      for (const l of event) {
        if (dataValue(l.text) === undefined) out.push(l.text, l.end);
        else if (!written) {
          out.push(`data: ${next}`, l.end || '\n');
          written = true;
        }
      }
    }
    event = [];
  };
  for (const l of lines) {
    event.push(l);
    if (l.text === '' && l.end !== '') flush();
  }
  flush();
  return changed ? out.join('') : undefined;
}
