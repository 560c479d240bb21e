import { CircleAlert } from 'lucide-react';
import { ApiError, errorTitle } from '../lib/api';
import { cn } from '../lib/cn';

interface DetailLine {
  where: string;
  message: string;
}

/** Readable lines from an error's `details` (field errors, batch errors). */
export function detailLines(details: unknown): DetailLine[] {
  if (!details || typeof details !== 'object') return [];
  const d = details as Record<string, unknown>;
  const out: DetailLine[] = [];
  if (Array.isArray(d.errors)) {
    for (const e of d.errors) {
      if (e && typeof e === 'object') {
        const x = e as Record<string, unknown>;
        const where = [x.index !== undefined ? `#${String(x.index)}` : '', typeof x.field === 'string' ? x.field : '']
          .filter(Boolean)
          .join(' ');
        out.push({ where, message: typeof x.message === 'string' ? x.message : JSON.stringify(e) });
      }
    }
  }
  if (typeof d.field === 'string') out.push({ where: 'field', message: d.field });
  return out;
}

export function ErrorAlert({
  error,
  className,
  title,
}: {
  error: unknown;
  className?: string;
  title?: string;
}) {
  if (!error) return null;
  const e =
    error instanceof ApiError
      ? error
      : new ApiError(0, 'ERROR', error instanceof Error ? error.message : String(error));
  const lines = detailLines(e.details);
  const otherDetails =
    e.details && typeof e.details === 'object' && lines.length === 0 && Object.keys(e.details).length > 0
      ? JSON.stringify(e.details, null, 2)
      : null;
  return (
    <div
      role="alert"
      data-testid="error-alert"
      className={cn('flex gap-3 rounded-lg border border-red-200 bg-red-50 px-4 py-3 text-sm text-red-800', className)}
    >
      <CircleAlert className="mt-0.5 h-4 w-4 shrink-0 text-red-500" aria-hidden="true" />
      <div className="min-w-0 flex-1">
        <p className="font-medium text-red-900">
          {title ?? e.title ?? errorTitle(e.status, e.code)}
          {e.status > 0 ? (
            <span className="ml-2 font-mono text-xs font-normal text-red-700">
              {e.status} {e.code}
            </span>
          ) : null}
        </p>
        <p className="mt-0.5 break-words">{e.message}</p>
        {lines.length > 0 ? (
          <ul className="mt-1.5 list-disc space-y-0.5 pl-4 text-xs">
            {lines.map((l, i) => (
              <li key={i}>
                {l.where ? <span className="font-mono">{l.where}: </span> : null}
                {l.message}
              </li>
            ))}
          </ul>
        ) : null}
        {otherDetails ? (
          <pre className="mt-1.5 overflow-x-auto rounded bg-red-100/60 p-2 font-mono text-xs">{otherDetails}</pre>
        ) : null}
      </div>
    </div>
  );
}
