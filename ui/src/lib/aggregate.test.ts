import { describe, expect, it } from 'vitest';
import type { AggregateRow } from './api';
import { seriesByWindow, share, totalsBy } from './aggregate';
import { computeRange } from './range';

const row = (p: Partial<AggregateRow>): AggregateRow => ({
  window_start: '2025-11-20T00:00:00Z',
  window_end: '2025-11-21T00:00:00Z',
  window_type: 'daily',
  total_quantity: 0,
  event_count: 0,
  ...p,
});

describe('aggregates', () => {
  const range = computeRange({ preset: '7d' }, Date.parse('2025-11-20T10:00:00Z'), 'UTC');

  it('fills empty windows with zeros and sums groups per window', () => {
    const s = seriesByWindow(
      [
        row({ resource: 'a', total_quantity: 2, event_count: 2 }),
        row({ resource: 'b', total_quantity: '0.5', event_count: 1 }),
        row({ window_start: '2025-11-17T00:00:00Z', total_quantity: 7, event_count: 3 }),
      ],
      range,
      'UTC',
    );
    expect(s).toHaveLength(7);
    expect(s.map((p) => p.exact)).toEqual(['0', '0', '0', '7', '0', '0', '2.5']);
    expect(s[6].events).toBe(3);
  });

  it('totals a dimension exactly, largest first', () => {
    const t = totalsBy(
      [
        row({ tenant_id: 'x', total_quantity: '9007199254740993', event_count: 1 }),
        row({ tenant_id: 'y', total_quantity: 5, event_count: 5 }),
        row({ tenant_id: 'x', total_quantity: 1, event_count: 1 }),
      ],
      'tenant_id',
    );
    expect(t).toEqual([
      { key: 'x', quantity: '9007199254740994', events: 2 },
      { key: 'y', quantity: '5', events: 5 },
    ]);
  });

  it('computes shares', () => {
    expect(share(25, 100)).toBe(25);
    expect(share(1, 0)).toBe(0);
  });
});
