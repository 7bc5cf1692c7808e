/** A JSON document of about `size` bytes, shaped like an agent memory write. */
export function jsonBody(size: number): Buffer {
  const items: object[] = [];
  let i = 0;
  let text = '';
  while (text.length < size) {
    items.push({ id: `mem-${i}`, kind: 'note', text: `observation ${i}: the retriever saw document ${i * 7} with score 0.${(i * 37) % 100}`, tags: ['agent', 'memory'] });
    i++;
    text = JSON.stringify({ agent: 'agent-7', items });
  }
  return Buffer.from(text);
}
