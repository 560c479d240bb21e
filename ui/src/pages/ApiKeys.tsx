import { type FormEvent, useMemo, useState } from 'react';
import { KeyRound, Plus, ShieldCheck, TriangleAlert } from 'lucide-react';
import { PageHeader } from '../components/Layout';
import { ErrorAlert } from '../components/ErrorAlert';
import { EmptyState } from '../components/EmptyState';
import { CopyButton } from '../components/CopyButton';
import { Card } from '../components/ui/card';
import { Button } from '../components/ui/button';
import { Dialog } from '../components/ui/dialog';
import { Field, Input, Select } from '../components/ui/input';
import { SkeletonRows } from '../components/ui/skeleton';
import { Badge, type BadgeTone } from '../components/ui/badge';
import { TBody, TD, TH, THead, TR, Table } from '../components/ui/table';
import { useApi, useAuth } from '../lib/auth';
import { useSettings } from '../lib/settings';
import { useQuery } from '../lib/useQuery';
import { type ApiError, type ApiKey, KEY_ROLES, type KeyRole, toApiError } from '../lib/api';
import { formatDateTime, formatRelative } from '../lib/format';
import { parseLocalDateTime, toIso } from '../lib/range';

const ROLE_TONE: Record<string, BadgeTone> = { admin: 'violet', ingest: 'sky', read: 'green' };
const ROLE_HELP: Record<KeyRole, string> = {
  admin: 'Everything, including keys and quotas',
  ingest: 'Send events and check quotas',
  read: 'Read events, aggregates and quotas',
};

export function keyStatus(k: ApiKey, now = Date.now()): { label: string; tone: BadgeTone } {
  if (k.revoked_at) return { label: 'revoked', tone: 'red' };
  if (k.expires_at && Date.parse(k.expires_at) <= now) return { label: 'expired', tone: 'amber' };
  return { label: 'active', tone: 'green' };
}

function CreateKeyDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: () => void }) {
  const api = useApi();
  const { tz } = useSettings();
  const [name, setName] = useState('');
  const [role, setRole] = useState<KeyRole>('ingest');
  const [tenant, setTenant] = useState('');
  const [expires, setExpires] = useState('');
  const [nameError, setNameError] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [lastOpen, setLastOpen] = useState(false);

  if (open !== lastOpen) {
    setLastOpen(open);
    if (open) {
      setName('');
      setRole('ingest');
      setTenant('');
      setExpires('');
      setNameError(null);
      setError(null);
      setCreated(null);
    }
  }

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) {
      setNameError('Give the key a name, e.g. the service that uses it.');
      return;
    }
    setNameError(null);
    let expiresAt: string | null = null;
    if (expires) {
      const t = parseLocalDateTime(expires, tz);
      if (t === null) return setError(toApiError(new Error('The expiry time is not valid.')));
      expiresAt = toIso(t);
    }
    setBusy(true);
    setError(null);
    try {
      const k = await api.createApiKey({ name: name.trim(), role, tenant_id: tenant.trim() || null, expires_at: expiresAt });
      setCreated(k);
      onCreated();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  if (created) {
    return (
      <Dialog
        open={open}
        onClose={onClose}
        dismissible={false}
        title="Copy your new API key"
        description="This is the only time the key is shown. Store it somewhere safe now."
        footer={
          <Button onClick={onClose} data-testid="close-secret">
            I have copied the key
          </Button>
        }
      >
        <div className="space-y-3">
          <div className="flex items-start gap-2 rounded-lg border border-amber-200 bg-amber-50 px-3 py-2.5 text-xs text-amber-800">
            <TriangleAlert className="mt-0.5 h-4 w-4 shrink-0" aria-hidden="true" />
            <span>The server keeps only a hash of this key: it cannot be shown again.</span>
          </div>
          <label htmlFor="new-key-secret" className="text-xs font-medium text-slate-700">
            API key for “{created.name}”
          </label>
          <div className="flex gap-2">
            <Input
              id="new-key-secret"
              readOnly
              value={created.key ?? ''}
              className="font-mono text-xs"
              data-testid="new-key-secret"
              onFocus={(e) => e.currentTarget.select()}
            />
            <CopyButton text={created.key ?? ''} data-autofocus data-testid="copy-key" />
          </div>
          <p className="text-xs text-slate-500">
            Role <Badge tone={ROLE_TONE[created.role] ?? 'slate'}>{created.role}</Badge>
            {created.tenant_id ? (
              <>
                {' '}
                · tenant <span className="font-mono">{created.tenant_id}</span>
              </>
            ) : null}
          </p>
        </div>
      </Dialog>
    );
  }

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title="Create API key"
      description="Keys authenticate clients with the X-API-Key header."
      footer={
        <>
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" form="key-form" disabled={busy} data-testid="create-key-submit">
            {busy ? 'Creating…' : 'Create key'}
          </Button>
        </>
      }
    >
      <form id="key-form" onSubmit={submit} noValidate className="grid grid-cols-1 gap-4">
        <Field label="Name" htmlFor="k-name" error={nameError}>
          <Input
            id="k-name"
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="billing-service"
            aria-invalid={nameError ? true : undefined}
            aria-describedby={nameError ? 'k-name-error' : undefined}
          />
        </Field>
        <Field label="Role" htmlFor="k-role" hint={ROLE_HELP[role]}>
          <Select id="k-role" value={role} onChange={(e) => setRole(e.target.value as KeyRole)}>
            {KEY_ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </Select>
        </Field>
        <div className="grid grid-cols-1 gap-4 sm:grid-cols-2">
          <Field label="Tenant (optional)" htmlFor="k-tenant" hint="Restricts the key to one tenant">
            <Input id="k-tenant" value={tenant} onChange={(e) => setTenant(e.target.value)} placeholder="all tenants" />
          </Field>
          <Field label={`Expires (optional, ${tz})`} htmlFor="k-expires" hint="Empty: never expires">
            <Input id="k-expires" type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />
          </Field>
        </div>
        {error ? <ErrorAlert error={error} /> : null}
      </form>
    </Dialog>
  );
}

export function ApiKeysPage() {
  const api = useApi();
  const { apiKey } = useAuth();
  const { tz } = useSettings();
  const res = useQuery('api-keys', (signal) => api.apiKeys(signal));
  const [creating, setCreating] = useState(false);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const [revokeError, setRevokeError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const keys = useMemo(
    () =>
      [...(res.data?.api_keys ?? [])].sort(
        (a, b) => (b.created_at ?? '').localeCompare(a.created_at ?? '') || a.name.localeCompare(b.name),
      ),
    [res.data],
  );

  const revoke = async () => {
    if (!revoking) return;
    setBusy(true);
    setRevokeError(null);
    try {
      await api.revokeApiKey(revoking.id);
      setRevoking(null);
      res.refetch();
    } catch (err) {
      setRevokeError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  const isOwn = (k: ApiKey) =>
    !!apiKey && typeof k.prefix === 'string' && k.prefix.length >= 4 && apiKey.startsWith(k.prefix);

  return (
    <div>
      <PageHeader
        title="API keys"
        description="Keys are stored as hashes; a key's secret is shown once, when it is created."
        actions={
          <Button onClick={() => setCreating(true)} data-testid="create-key">
            <Plus className="h-4 w-4" aria-hidden="true" />
            Create key
          </Button>
        }
      />
      {res.error ? <ErrorAlert error={res.error} className="mb-4" /> : null}

      <Card className="overflow-hidden">
        {res.loading ? (
          <SkeletonRows className="p-5" />
        ) : keys.length === 0 ? (
          <EmptyState
            icon={<KeyRound className="h-5 w-5" aria-hidden="true" />}
            title={res.error ? 'Keys unavailable' : 'No API keys'}
            description={res.error ? undefined : 'Create a key for each service that sends or reads usage.'}
          />
        ) : (
          <Table data-testid="keys-table">
            <caption className="sr-only">API keys</caption>
            <THead>
              <tr>
                <TH>Name</TH>
                <TH>Role</TH>
                <TH className="hidden md:table-cell">Tenant</TH>
                <TH className="hidden sm:table-cell">Status</TH>
                <TH className="hidden md:table-cell">Created</TH>
                <TH>Last used</TH>
                <TH className="hidden lg:table-cell">Expires</TH>
                <TH className="text-right">
                  <span className="sr-only">Actions</span>
                </TH>
              </tr>
            </THead>
            <TBody>
              {keys.map((k) => {
                const st = keyStatus(k);
                return (
                  <TR key={k.id} data-testid="key-row" data-name={k.name}>
                    <TD className="whitespace-nowrap">
                      <div className="flex items-center gap-2">
                        <span className="font-medium text-slate-900">{k.name}</span>
                        {isOwn(k) ? (
                          <Badge tone="indigo">
                            <ShieldCheck className="h-3 w-3" aria-hidden="true" />
                            this session
                          </Badge>
                        ) : null}
                      </div>
                      {typeof k.prefix === 'string' ? <span className="font-mono text-xs text-slate-400">{k.prefix}…</span> : null}
                    </TD>
                    <TD>
                      <Badge tone={ROLE_TONE[k.role] ?? 'slate'}>{k.role}</Badge>
                    </TD>
                    <TD className="hidden whitespace-nowrap md:table-cell">{k.tenant_id ?? <span className="text-slate-400">all</span>}</TD>
                    <TD className="hidden sm:table-cell">
                      <Badge tone={st.tone}>{st.label}</Badge>
                    </TD>
                    <TD className="hidden whitespace-nowrap text-slate-500 md:table-cell" title={formatDateTime(k.created_at, tz)}>
                      {formatRelative(k.created_at)}
                    </TD>
                    <TD
                      className="whitespace-nowrap text-slate-500"
                      title={k.last_used_at ? formatDateTime(k.last_used_at, tz) : 'Never used'}
                      data-testid="last-used"
                    >
                      {formatRelative(k.last_used_at)}
                    </TD>
                    <TD className="hidden whitespace-nowrap text-slate-500 lg:table-cell">
                      {k.expires_at ? formatDateTime(k.expires_at, tz, false) : <span className="text-slate-400">never</span>}
                    </TD>
                    <TD className="text-right">
                      <Button
                        variant="outline-destructive"
                        size="sm"
                        onClick={() => {
                          setRevokeError(null);
                          setRevoking(k);
                        }}
                        disabled={st.label === 'revoked'}
                        aria-label={`Revoke key ${k.name}`}
                      >
                        Revoke
                      </Button>
                    </TD>
                  </TR>
                );
              })}
            </TBody>
          </Table>
        )}
      </Card>

      <CreateKeyDialog open={creating} onClose={() => setCreating(false)} onCreated={() => res.refetch()} />

      <Dialog
        open={revoking !== null}
        onClose={() => setRevoking(null)}
        title="Revoke API key?"
        description={
          revoking ? (
            <>
              <strong className="text-slate-700">{revoking.name}</strong> stops working immediately. Clients using it get
              401 errors.
              {isOwn(revoking) ? ' This is the key you are signed in with: you will be signed out.' : ''}
            </>
          ) : null
        }
        footer={
          <>
            <Button variant="outline" onClick={() => setRevoking(null)} data-autofocus>
              Cancel
            </Button>
            <Button variant="destructive" onClick={revoke} disabled={busy} data-testid="confirm-revoke">
              {busy ? 'Revoking…' : 'Revoke key'}
            </Button>
          </>
        }
      >
        {revokeError ? <ErrorAlert error={revokeError} /> : <p className="text-sm text-slate-600">This cannot be undone.</p>}
      </Dialog>
    </div>
  );
}
