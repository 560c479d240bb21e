import { useEffect } from 'react';
import { Layout } from './components/Layout';
import { EmptyState } from './components/EmptyState';
import { buttonClass } from './components/ui/button';
import { AuthProvider, useAuth } from './lib/auth';
import { Link, RouterProvider, matchPath, useRouter } from './lib/router';
import { SettingsProvider } from './lib/settings';
import { ApiKeysPage } from './pages/ApiKeys';
import { EventsPage } from './pages/Events';
import { MetersPage } from './pages/Meters';
import { OverviewPage } from './pages/Overview';
import { QuotasPage } from './pages/Quotas';
import { SignInPage } from './pages/SignIn';
import { TenantDetailPage } from './pages/TenantDetail';
import { TenantsPage } from './pages/Tenants';
import { WebhooksPage } from './pages/Webhooks';

const TITLES: [string, string][] = [
  ['/', 'Overview'],
  ['/tenants', 'Tenants'],
  ['/tenants/:id', 'Tenant'],
  ['/events', 'Events'],
  ['/quotas', 'Quotas'],
  ['/meters', 'Meters'],
  ['/webhooks', 'Webhooks'],
  ['/keys', 'API keys'],
];

function Routes() {
  const { path } = useRouter();
  const tenant = matchPath('/tenants/:id', path);
  const p = path.replace(/\/+$/, '') || '/';

  useEffect(() => {
    const t = TITLES.find(([pattern]) => matchPath(pattern, p));
    document.title = t ? `${tenant ? tenant.id : t[1]} · Metering` : 'Metering';
  }, [p, tenant]);

  let page;
  let showRange = false;
  if (p === '/') {
    page = <OverviewPage />;
    showRange = true;
  } else if (p === '/tenants') {
    page = <TenantsPage />;
    showRange = true;
  } else if (tenant) {
    page = <TenantDetailPage key={tenant.id} tenant={tenant.id} />;
    showRange = true;
  } else if (p === '/events') {
    page = <EventsPage />;
  } else if (p === '/quotas') {
    page = <QuotasPage />;
  } else if (p === '/meters') {
    page = <MetersPage />;
    showRange = true;
  } else if (p === '/webhooks') {
    page = <WebhooksPage />;
  } else if (p === '/keys') {
    page = <ApiKeysPage />;
  } else {
    page = (
      <EmptyState
        title="Page not found"
        description={`Nothing lives at ${path}.`}
        action={
          <Link to="/" className={buttonClass('default', 'sm')}>
            Go to the overview
          </Link>
        }
      />
    );
  }
  return <Layout showRange={showRange}>{page}</Layout>;
}

function Gate() {
  const { apiKey } = useAuth();
  return apiKey ? <Routes /> : <SignInPage />;
}

export function App() {
  return (
    <RouterProvider>
      <AuthProvider>
        <SettingsProvider>
          <Gate />
        </SettingsProvider>
      </AuthProvider>
    </RouterProvider>
  );
}
