import { describe, expect, it } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/react';
import { QuotaBar } from './QuotaBar';
import { ErrorAlert, detailLines } from './ErrorAlert';
import { JsonView } from './JsonView';
import { ChangeBadge, StatCard } from './StatCard';
import { Dialog } from './ui/dialog';
import { ApiError } from '../lib/api';
import { percentChange } from '../lib/format';

describe('QuotaBar', () => {
  const base = { label: 'api_call', tz: 'UTC', resetAt: '2025-12-01T00:00:00Z', period: 'monthly' };

  it('is green below the threshold, with usage, limit and reset time', () => {
    render(<QuotaBar {...base} current={10} limit={100} alertThreshold={80} />);
    const bar = screen.getByTestId('quota-bar');
    expect(bar.dataset.level).toBe('ok');
    expect(bar.textContent).toContain('10');
    expect(bar.textContent).toContain('/ 100');
    expect(bar.textContent).toContain('resets Dec 1, 2025, 00:00');
    const progress = screen.getByRole('progressbar', { name: 'api_call usage' });
    expect(progress.getAttribute('aria-valuenow')).toBe('10');
    expect(progress.firstElementChild?.className).toContain('bg-emerald-500');
  });

  it('is amber past the alert threshold and red at the limit', () => {
    const { rerender } = render(<QuotaBar {...base} current={85} limit={100} alertThreshold={80} />);
    expect(screen.getByTestId('quota-bar').dataset.level).toBe('alert');
    expect(screen.getByRole('progressbar').firstElementChild?.className).toContain('bg-amber-500');
    rerender(<QuotaBar {...base} current={120} limit={100} alertThreshold={80} />);
    expect(screen.getByTestId('quota-bar').dataset.level).toBe('exceeded');
    expect(screen.getByRole('progressbar').firstElementChild?.className).toContain('bg-red-500');
    // The bar never overflows its track.
    expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('100');
  });

  it('shows exact decimal-string quantities', () => {
    render(<QuotaBar {...base} current="9007199254740993" limit="10000000000000000" alertThreshold={95} />);
    expect(screen.getByTestId('quota-bar').textContent).toContain('9,007,199,254,740,993');
  });
});

describe('ErrorAlert', () => {
  it('shows title, status, code and message of an API error', () => {
    render(<ErrorAlert error={new ApiError(403, 'FORBIDDEN', 'key is scoped to another tenant')} />);
    const alert = screen.getByRole('alert');
    expect(alert.textContent).toContain('Not allowed');
    expect(alert.textContent).toContain('403 FORBIDDEN');
    expect(alert.textContent).toContain('key is scoped to another tenant');
  });

  it('lists batch validation errors', () => {
    const details = { errors: [{ index: 3, field: 'events[3].quantity', message: 'quantity must be > 0' }] };
    expect(detailLines(details)).toEqual([{ where: '#3 events[3].quantity', message: 'quantity must be > 0' }]);
    render(<ErrorAlert error={new ApiError(422, 'VALIDATION_ERROR', 'invalid batch', details)} />);
    expect(screen.getByRole('alert').textContent).toContain('events[3].quantity: quantity must be > 0');
  });

  it('renders plain errors and nothing for no error', () => {
    const { container, rerender } = render(<ErrorAlert error={null} />);
    expect(container.innerHTML).toBe('');
    rerender(<ErrorAlert error={new Error('boom')} title="Oops" />);
    expect(screen.getByRole('alert').textContent).toContain('Oops');
  });
});

describe('JsonView', () => {
  it('pretty-prints and never interprets HTML', () => {
    render(<JsonView value={{ user: 'u_1', html: '<img src=x onerror=alert(1)>', n: 1.5, ok: true, none: null }} />);
    const pre = screen.getByTestId('json-view');
    expect(JSON.parse(pre.textContent!)).toEqual({ user: 'u_1', html: '<img src=x onerror=alert(1)>', n: 1.5, ok: true, none: null });
    expect(pre.querySelector('img')).toBeNull();
    expect(pre.textContent).toContain('\n  "user": "u_1"');
  });
});

describe('StatCard and ChangeBadge', () => {
  it('shows the value, raw value and change', () => {
    render(<StatCard label="Total events" testId="t" value="1,234" rawValue="1234" change={percentChange(1234, 1000)} />);
    const v = screen.getByTestId('t-value');
    expect(v.textContent).toBe('1,234');
    expect(v.dataset.value).toBe('1234');
    expect(screen.getByTestId('change').dataset.direction).toBe('up');
    expect(screen.getByText('up +23%')).toBeTruthy();
  });

  it('describes falls and new values for screen readers', () => {
    const { rerender } = render(<ChangeBadge change={percentChange(50, 100)} />);
    expect(screen.getByText('down 50%')).toBeTruthy();
    rerender(<ChangeBadge change={percentChange(5, 0)} />);
    expect(screen.getByTestId('change').dataset.direction).toBe('new');
  });
});

describe('Dialog', () => {
  it('focuses inside, closes on Escape, and is labelled', () => {
    let closed = 0;
    render(
      <Dialog open onClose={() => closed++} title="New quota" description="desc">
        <input aria-label="Tenant" />
      </Dialog>,
    );
    const dialog = screen.getByRole('dialog', { name: 'New quota' });
    expect(dialog.getAttribute('aria-modal')).toBe('true');
    expect(document.activeElement).toBe(screen.getByLabelText('Tenant'));
    fireEvent.keyDown(document, { key: 'Escape' });
    expect(closed).toBe(1);
  });
});
