import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { TemplateError, TemplateSet } from './support/go-template.js';
import { coalesce } from './support/helm-chart.js';

/**
 * The chart tests are only as good as this renderer, so each construct the chart uses is pinned here to
 * the output Go text/template + Sprig produce for it.
 */
function render(src: string, data: unknown, helpers = ''): string {
  return new TemplateSet().add('_helpers.tpl', helpers).add('t.yaml', src).render('t.yaml', data);
}

describe('Go template subset used by the chart', () => {
  it('trims whitespace on the marked side only', () => {
    assert.equal(render('a  {{- "b" }}  c', {}), 'ab  c');
    assert.equal(render('a  {{ "b" -}}  c', {}), 'a  bc');
    assert.equal(render('x:\n  {{- if true }}\n  y: 1\n  {{- end }}\n', {}), 'x:\n  y: 1\n');
    assert.equal(render('a{{/* comment */}}b{{- /* trimmed */ -}} c', {}), 'abc');
  });

  it('if / else if / else with Go truthiness (empty list, map, string and 0 are false)', () => {
    const t = '{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}';
    assert.equal(render(t, { a: [1] }), 'A');
    assert.equal(render(t, { a: [], b: { k: 1 } }), 'B');
    assert.equal(render(t, { a: {}, b: '' }), 'C');
    assert.equal(render(t, { a: 0, b: 0 }), 'C');
    assert.equal(render('{{ if and .a (not .b) }}yes{{ end }}', { a: 1, b: false }), 'yes');
    assert.equal(render('{{ if eq .m "soft" }}S{{ else if eq .m "hard" }}H{{ end }}', { m: 'hard' }), 'H');
  });

  it('range over lists and sorted maps, with $ for the root and variables', () => {
    assert.equal(render('{{ range .xs }}[{{ .n }}{{ $.sep }}]{{ end }}', { xs: [{ n: 1 }, { n: 2 }], sep: ';' }), '[1;][2;]');
    assert.equal(render('{{ range $k, $v := .m }}{{ $k }}={{ $v }} {{ end }}', { m: { b: 2, a: 1 } }), 'a=1 b=2 ');
    assert.equal(render('{{ range .xs }}x{{ else }}none{{ end }}', { xs: [] }), 'none');
    assert.equal(render('{{ $n := .name }}{{ range .xs }}{{ $n }}-{{ . }} {{ end }}', { name: 'p', xs: ['a', 'b'] }), 'p-a p-b ');
  });

  it('with rebinds the dot and skips empty values', () => {
    assert.equal(render('{{ with .a }}{{ .b }}{{ else }}none{{ end }}', { a: { b: 'x' } }), 'x');
    assert.equal(render('{{ with .a }}{{ .b }}{{ else }}none{{ end }}', { a: {} }), 'none');
  });

  it('define + include piped into nindent/indent, as in labels blocks', () => {
    const helpers = '{{- define "labels" -}}\na: {{ .x }}\nb: "2"\n{{- end -}}';
    assert.equal(render('m:\n  labels:\n    {{- include "labels" . | nindent 4 }}\n', { x: 1 }, helpers), 'm:\n  labels:\n    a: 1\n    b: "2"\n');
    assert.equal(render('{{ include "labels" . | indent 2 }}', { x: 1 }, helpers), '  a: 1\n  b: "2"');
  });

  it('toYaml sorts keys and trims the final newline like Helm', () => {
    assert.equal(render('{{ toYaml .v }}', { v: { b: [1, 'two'], a: { c: true } } }), 'a:\n  c: true\nb:\n  - 1\n  - two');
    assert.equal(render('{{ toJson .v }}', { v: { app: 'x' } }), '{"app":"x"}');
  });

  it('default, quote, printf, trunc, trimSuffix, contains, sha256sum', () => {
    assert.equal(render('{{ .tag | default .app }}', { tag: '', app: '1.0' }), '1.0');
    assert.equal(render('{{ .tag | default .app }}', { tag: '2.0', app: '1.0' }), '2.0');
    assert.equal(render('{{ .v | quote }}', { v: 'say "hi"' }), '"say \\"hi\\""');
    assert.equal(render('{{ .p | quote }}', { p: 9090 }), '"9090"');
    assert.equal(render('{{ printf "outbound|%v||%s" .port .host }}', { port: 9001, host: 'h' }), 'outbound|9001||h');
    assert.equal(render('{{ "abcdef-" | trunc 7 | trimSuffix "-" }}', {}), 'abcdef');
    assert.equal(render('{{ if contains "pep" .n }}y{{ end }}', { n: 'mesh-pep' }), 'y');
    assert.equal(render('{{ "abc" | sha256sum }}', {}), createHash('sha256').update('abc').digest('hex'));
  });

  it('missing leaf prints nothing; walking through a missing map fails like Go', () => {
    assert.equal(render('[{{ .a.b }}]', { a: {} }), '[]');
    assert.throws(() => render('{{ .a.b.c }}', { a: {} }), /nil pointer evaluating \.b\.c|nil pointer/);
  });

  it('fails loudly on anything outside the implemented subset', () => {
    assert.throws(() => render('{{ tpl .x . }}', {}), TemplateError);
    assert.throws(() => render('{{ template "x" . }}', {}), /unsupported action "template"/);
    assert.throws(() => render('{{ .a }', {}), /unclosed action/);
    assert.throws(() => render('{{ if .a }}x', {}), /"if" without "end"|without "end"/);
    assert.throws(() => render('{{ .m }}', { m: { a: 1 } }), /use toYaml/);
    assert.throws(() => render('{{ include "nope" . }}', {}), /no template named "nope"/);
  });

  it('values coalescing: maps merge, lists replace, null deletes', () => {
    assert.deepEqual(coalesce({ a: { b: 1, c: 2 }, l: [1, 2], d: 'x' }, { a: { c: 3 }, l: [9], d: null }), { a: { b: 1, c: 3 }, l: [9] });
  });
});
