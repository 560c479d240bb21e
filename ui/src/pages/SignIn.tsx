import { type FormEvent, useState } from 'react';
import { Eye, EyeOff, Info } from 'lucide-react';
import { Logo } from '../components/Layout';
import { ErrorAlert } from '../components/ErrorAlert';
import { Button } from '../components/ui/button';
import { Card } from '../components/ui/card';
import { Field, Input } from '../components/ui/input';
import { type ApiError, checkKey, toApiError } from '../lib/api';
import { useAuth } from '../lib/auth';

export function SignInPage({ check = checkKey }: { check?: (key: string) => Promise<void> }) {
  const { signIn, notice } = useAuth();
  const [key, setKey] = useState('');
  const [show, setShow] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [missing, setMissing] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) {
      setMissing(true);
      return;
    }
    setMissing(false);
    setBusy(true);
    setError(null);
    try {
      await check(k);
      signIn(k);
    } catch (err) {
      setError(toApiError(err));
      setBusy(false);
    }
  };

  return (
    <div className="flex min-h-screen flex-col items-center justify-center bg-gradient-to-b from-slate-50 to-indigo-50/60 px-4 py-10">
      <main className="w-full max-w-sm">
        <div className="mb-6 flex justify-center">
          <Logo className="[&_span]:text-lg" />
        </div>
        <Card className="p-6 shadow-sm">
          <h1 className="text-lg font-semibold tracking-tight text-slate-900">Sign in to the dashboard</h1>
          <p className="mt-1 text-sm text-slate-500">Enter an API key with the read or admin role.</p>
          {notice ? (
            <div role="status" className="mt-4 flex gap-2 rounded-lg border border-amber-200 bg-amber-50 px-3 py-2 text-sm text-amber-800">
              <Info className="mt-0.5 h-4 w-4 shrink-0" aria-hidden="true" />
              {notice}
            </div>
          ) : null}
          <form onSubmit={submit} className="mt-5 space-y-4" noValidate>
            <Field label="API key" htmlFor="api-key" error={missing ? 'Enter an API key.' : null}>
              <div className="relative">
                <Input
                  id="api-key"
                  name="api-key"
                  type={show ? 'text' : 'password'}
                  autoComplete="off"
                  spellCheck={false}
                  autoFocus
                  value={key}
                  onChange={(e) => setKey(e.target.value)}
                  className="pr-10 font-mono"
                  aria-invalid={missing || error ? true : undefined}
                  aria-describedby={missing ? 'api-key-error' : undefined}
                />
                <button
                  type="button"
                  onClick={() => setShow(!show)}
                  className="absolute inset-y-0 right-0 flex w-10 cursor-pointer items-center justify-center rounded-r-md text-slate-400 hover:text-slate-700 focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                  aria-label={show ? 'Hide key' : 'Show key'}
                  aria-pressed={show}
                >
                  {show ? <EyeOff className="h-4 w-4" aria-hidden="true" /> : <Eye className="h-4 w-4" aria-hidden="true" />}
                </button>
              </div>
            </Field>
            {error ? <ErrorAlert error={error} /> : null}
            <Button type="submit" className="w-full" disabled={busy} data-testid="sign-in">
              {busy ? 'Checking key…' : 'Sign in'}
            </Button>
          </form>
        </Card>
        <p className="mt-4 text-center text-xs text-slate-500">
          The key stays in this browser tab only (session storage) and is sent as the <code className="font-mono">X-API-Key</code> header.
        </p>
      </main>
    </div>
  );
}
