import { type ReactNode, useEffect, useState } from 'react';
import { Gauge, KeyRound, LayoutDashboard, LogOut, Menu, Ruler, ScrollText, Users, Webhook, X } from 'lucide-react';
import { useAuth } from '../lib/auth';
import { cn } from '../lib/cn';
import { Link, useRouter } from '../lib/router';
import { LiveToggle, RangePicker, TimeZoneSelect } from './RangePicker';
import { Button, focusRing } from './ui/button';

export const NAV = [
  { to: '/', label: 'Overview', icon: LayoutDashboard },
  { to: '/tenants', label: 'Tenants', icon: Users },
  { to: '/events', label: 'Events', icon: ScrollText },
  { to: '/quotas', label: 'Quotas', icon: Gauge },
  { to: '/meters', label: 'Meters', icon: Ruler },
  { to: '/webhooks', label: 'Webhooks', icon: Webhook },
  { to: '/keys', label: 'API keys', icon: KeyRound },
] as const;

function isActive(to: string, path: string) {
  return to === '/' ? path === '/' : path === to || path.startsWith(`${to}/`);
}

export function Logo({ className }: { className?: string }) {
  return (
    <span className={cn('flex items-center gap-2.5', className)}>
      <svg viewBox="0 0 32 32" className="h-7 w-7 shrink-0" aria-hidden="true">
        <rect width="32" height="32" rx="8" fill="#4f46e5" />
        <path d="M8 22V14M13 22V10M18 22V16M23 22V8" stroke="#fff" strokeWidth="3" strokeLinecap="round" />
      </svg>
      <span className="text-[15px] font-semibold tracking-tight text-slate-900">metering</span>
    </span>
  );
}

function NavLinks({ onNavigate }: { onNavigate?: () => void }) {
  const { path } = useRouter();
  return (
    <ul className="space-y-0.5">
      {NAV.map(({ to, label, icon: Icon }) => {
        const active = isActive(to, path);
        return (
          <li key={to}>
            <Link
              to={to}
              onClick={onNavigate}
              aria-current={active ? 'page' : undefined}
              className={cn(
                'group flex items-center gap-3 rounded-md px-2.5 py-2 text-sm font-medium transition-colors',
                focusRing,
                active ? 'bg-indigo-50 text-indigo-700' : 'text-slate-600 hover:bg-slate-100 hover:text-slate-900',
              )}
            >
              <Icon
                className={cn('h-4 w-4 shrink-0', active ? 'text-indigo-600' : 'text-slate-400 group-hover:text-slate-500')}
                aria-hidden="true"
              />
              {label}
            </Link>
          </li>
        );
      })}
    </ul>
  );
}

function KeyFooter() {
  const { apiKey, signOut } = useAuth();
  const tail = apiKey ? apiKey.slice(-4) : '';
  return (
    <div className="border-t border-slate-200 p-3">
      <div className="flex items-center justify-between gap-2 rounded-md px-2 py-1.5">
        <div className="min-w-0">
          <p className="text-xs font-medium text-slate-700">API key</p>
          <p className="truncate font-mono text-xs text-slate-500" aria-label={`key ending in ${tail}`}>
            ••••••{tail}
          </p>
        </div>
        <Button variant="ghost" size="sm" onClick={() => signOut()} data-testid="sign-out">
          <LogOut className="h-3.5 w-3.5" aria-hidden="true" />
          Sign out
        </Button>
      </div>
    </div>
  );
}

export function Layout({ children, showRange }: { children: ReactNode; showRange: boolean }) {
  const [open, setOpen] = useState(false);
  const { path } = useRouter();
  useEffect(() => setOpen(false), [path]);
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && setOpen(false);
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [open]);

  return (
    <div className="min-h-screen bg-slate-50 lg:flex">
      <a
        href="#main"
        className="sr-only z-50 rounded-md bg-white px-3 py-2 text-sm font-medium text-indigo-700 shadow focus:not-sr-only focus:fixed focus:left-3 focus:top-3"
      >
        Skip to content
      </a>

      {/* Desktop sidebar */}
      <aside className="hidden w-60 shrink-0 border-r border-slate-200 bg-white lg:block">
        <div className="sticky top-0 flex h-screen flex-col">
        <div className="flex h-14 items-center px-5">
          <Link to="/" className={cn('rounded-md', focusRing)} aria-label="metering overview">
            <Logo />
          </Link>
        </div>
        <nav aria-label="Main" className="flex-1 overflow-y-auto px-3 py-3">
          <p className="px-2.5 pb-2 text-[11px] font-semibold tracking-wider text-slate-400 uppercase">Usage</p>
          <NavLinks />
        </nav>
        <KeyFooter />
        </div>
      </aside>

      {/* Mobile drawer */}
      {open ? (
        <div className="fixed inset-0 z-40 lg:hidden">
          <div className="absolute inset-0 bg-slate-900/40" aria-hidden="true" onClick={() => setOpen(false)} />
          <div
            id="mobile-nav"
            className="absolute inset-y-0 left-0 flex w-72 max-w-[85%] flex-col bg-white shadow-xl"
            role="dialog"
            aria-modal="true"
            aria-label="Navigation"
          >
            <div className="flex h-14 items-center justify-between px-4">
              <Logo />
              <Button variant="ghost" size="icon-sm" aria-label="Close menu" onClick={() => setOpen(false)} autoFocus>
                <X className="h-4 w-4" aria-hidden="true" />
              </Button>
            </div>
            <nav aria-label="Main" className="flex-1 overflow-y-auto px-3 py-2">
              <NavLinks onNavigate={() => setOpen(false)} />
            </nav>
            <KeyFooter />
          </div>
        </div>
      ) : null}

      <div className="min-w-0 flex-1">
        <header className="sticky top-0 z-20 border-b border-slate-200 bg-white/95">
          <div className="flex min-h-14 flex-wrap items-center gap-x-3 gap-y-2 px-4 py-2.5 sm:px-6 lg:px-8">
            <Button
              variant="ghost"
              size="icon-sm"
              className="-ml-1 lg:hidden"
              aria-label="Open menu"
              aria-expanded={open}
              aria-controls="mobile-nav"
              onClick={() => setOpen(true)}
            >
              <Menu className="h-5 w-5" aria-hidden="true" />
            </Button>
            <Link to="/" className={cn('rounded-md lg:hidden', focusRing)} aria-label="metering overview">
              <Logo />
            </Link>
            <div className="order-last w-full sm:order-none sm:w-auto">{showRange ? <RangePicker /> : null}</div>
            <div className="ml-auto flex items-center gap-2">
              <TimeZoneSelect className="hidden sm:flex" />
              <LiveToggle />
            </div>
            <TimeZoneSelect className="order-last w-full sm:hidden [&_select]:max-w-none" />
          </div>
        </header>
        <main id="main" tabIndex={-1} className="mx-auto w-full max-w-7xl px-4 py-6 outline-none sm:px-6 lg:px-8 lg:py-8">
          {children}
        </main>
      </div>
    </div>
  );
}

export function PageHeader({
  title,
  description,
  actions,
  children,
}: {
  title: ReactNode;
  description?: ReactNode;
  actions?: ReactNode;
  children?: ReactNode;
}) {
  return (
    <div className="mb-6 flex flex-col gap-3 sm:flex-row sm:items-end sm:justify-between">
      <div className="min-w-0">
        {children}
        <h1 className="truncate text-xl font-semibold tracking-tight text-slate-900 sm:text-2xl">{title}</h1>
        {description ? <div className="mt-1 text-sm text-slate-500">{description}</div> : null}
      </div>
      {actions ? <div className="flex shrink-0 flex-wrap items-center gap-2">{actions}</div> : null}
    </div>
  );
}
