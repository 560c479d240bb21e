import { useState } from 'react';
import { Download } from 'lucide-react';
import { Button } from './ui/button';
import { ErrorAlert } from './ErrorAlert';
import { useApi } from '../lib/auth';
import { type ApiError, toApiError } from '../lib/api';

/** Saves `blob` as a file named `filename` through a temporary link. */
function save(blob: Blob, filename: string) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/**
 * A button that downloads `path` (under /v1/meter) with the signed-in key, asking for
 * `accept`, and saves it as `filename`; a refused download shows the error envelope.
 */
export function DownloadButton({
  path,
  accept = 'text/csv',
  filename,
  label = 'Download CSV',
  testId,
}: {
  path: string;
  accept?: string;
  filename: string;
  label?: string;
  testId?: string;
}) {
  const api = useApi();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      save(await api.download(path, accept), filename);
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="flex flex-col items-end gap-2">
      <Button variant="outline" size="sm" onClick={run} disabled={busy} data-testid={testId} data-path={path}>
        <Download className="h-3.5 w-3.5" aria-hidden="true" />
        {busy ? 'Downloading…' : label}
      </Button>
      {error ? <ErrorAlert error={error} /> : null}
    </div>
  );
}
