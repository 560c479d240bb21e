import { describe, expect, it } from 'vitest';
import { meterQueryString, type Meter, type MeterRow } from './api';
import { EMPTY_METER_FORM, definitionOf, filterSummary, formOf, groupLabel, meterSeries } from './meters';

const row = (window_start: string, group: Record<string, string | null>, value: number | string): MeterRow => ({
  window_start,
  window_end: window_start,
  group,
  value,
  event_count: 1,
});

describe('meter queries', () => {
  it('repeat filter parameters, join group_by and leave out an absent window', () => {
    const q = meterQueryString({
      start_date: '2025-11-01T00:00:00Z',
      end_date: '2025-12-01T00:00:00Z',
      window_type: null,
      tz: 'Europe/Paris',
      group_by: ['tenant_id', 'model'],
      filters: { model: ['o3', 'gpt-4o'], region: [''] },
    });
    const p = new URLSearchParams(q.slice(1));
    expect(p.get('window_type')).toBeNull();
    expect(p.get('group_by')).toBe('tenant_id,model');
    expect(p.getAll('filter.model')).toEqual(['o3', 'gpt-4o']);
    expect(p.has('filter.region')).toBe(false);
    expect(p.get('tz')).toBe('Europe/Paris');
    const daily = meterQueryString({ start_date: 'a', end_date: 'b', window_type: 'daily' });
    expect(daily).toBe('?start_date=a&end_date=b&window_type=daily');
  });
});

describe('meter series', () => {
  it('keeps the largest groups, merges the rest into other for additive meters, and labels nulls', () => {
    const rows = [
      row('2025-11-01T00:00:00Z', { model: 'o3' }, 5),
      row('2025-11-01T00:00:00Z', { model: null }, '999999999999999.999999999'),
      row('2025-11-01T00:00:00Z', { model: 'small' }, 1),
      row('2025-11-02T00:00:00Z', { model: 'o3' }, -7),
      row('2025-11-02T00:00:00Z', { model: 'tiny' }, 0.5),
    ];
    const s = meterSeries(rows, true, 2);
    expect(s.names).toEqual(['(none)', 'o3', 'other']);
    expect(s.points).toEqual([
      { t: '2025-11-01T00:00:00Z', '(none)': 1e15, o3: 5, other: 1 },
      { t: '2025-11-02T00:00:00Z', o3: -7, other: 0.5 },
    ]);
    expect(meterSeries(rows, false, 2).names).toEqual(['(none)', 'o3']);
    expect(groupLabel({})).toBe('all');
    expect(groupLabel({ tenant_id: 'a', model: null })).toBe('a · (none)');
  });
});

describe('meter form', () => {
  const meter: Meter = {
    key: 'llm_tokens',
    name: 'Tokens',
    aggregation: 'sum',
    value: 'quantity',
    filter: { resource: ['ai'], feature: ['in', 'out'], metadata: { region: ['eu', null], tier: [2] } },
    dimensions: ['model', 'region'],
    created_at: '2025-11-01T00:00:00Z',
    updated_at: '2025-11-01T00:00:00Z',
  };

  it('round-trips a stored meter through the form', () => {
    const f = formOf(meter);
    expect(f.metadata).toBe('region="eu"\nregion=null\ntier=2');
    const result = definitionOf(f);
    expect(result).toEqual({
      def: {
        name: 'Tokens',
        aggregation: 'sum',
        value: 'quantity',
        dimensions: ['model', 'region'],
        filter: meter.filter,
      },
    });
    expect(filterSummary(meter)).toBe('resource ai, feature in | out, region = "eu" | null, tier = 2');
    expect(filterSummary({ filter: undefined })).toBe('every event');
  });

  it('reports a bad key and unreadable metadata lines', () => {
    const bad = definitionOf({ ...EMPTY_METER_FORM, key: 'Bad Key', metadata: 'region=eu' });
    expect('errors' in bad && Object.keys(bad.errors).sort()).toEqual(['key', 'metadata']);
    const nested = definitionOf({ ...EMPTY_METER_FORM, key: 'k', metadata: 'a=[1]' });
    expect('errors' in nested && nested.errors.metadata).toContain('string, number, boolean or null');
  });
});
