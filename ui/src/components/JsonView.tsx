import type { ReactNode } from 'react';

const TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

/** Pretty, syntax-coloured JSON (rendered as text nodes, never as HTML). */
export function JsonView({ value, className }: { value: unknown; className?: string }) {
  const text = value === undefined ? 'null' : JSON.stringify(value, null, 2);
  const out: ReactNode[] = [];
  let last = 0;
  let i = 0;
  for (const m of text.matchAll(TOKEN)) {
    const at = m.index ?? 0;
    if (at > last) out.push(text.slice(last, at));
    if (m[1] !== undefined) {
      if (m[2] !== undefined) {
        out.push(
          <span key={i++} className="text-sky-300">
            {m[1]}
          </span>,
          m[2],
        );
      } else {
        out.push(
          <span key={i++} className="text-emerald-300">
            {m[1]}
          </span>,
        );
      }
    } else if (m[3] !== undefined) {
      out.push(
        <span key={i++} className="text-violet-300">
          {m[3]}
        </span>,
      );
    } else {
      out.push(
        <span key={i++} className="text-amber-300">
          {m[4]}
        </span>,
      );
    }
    last = at + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return (
    <pre
      data-testid="json-view"
      className={
        'max-h-96 overflow-auto rounded-lg bg-slate-900 p-4 font-mono text-xs leading-relaxed text-slate-200 ' +
        (className ?? '')
      }
    >
      <code>{out}</code>
    </pre>
  );
}
