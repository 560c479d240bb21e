import { describe, expect, it } from 'vitest';
import {
  formatCompact,
  formatCount,
  formatDateTime,
  formatOffset,
  formatQuantity,
  formatQuantityPlain,
  formatRelative,
  formatWindowLabel,
  percentChange,
} from './format';

describe('formatQuantity', () => {
  it('formats JSON numbers with separators', () => {
    expect(formatQuantity(0)).toBe('0');
    expect(formatQuantity(1234567)).toBe('1,234,567');
    expect(formatQuantity(1234.5)).toBe('1,234.5');
    expect(formatQuantity(0.000000001)).toBe('0.000000001');
    expect(formatQuantity(-1500)).toBe('-1,500');
  });

  it('formats decimal strings exactly, every digit kept', () => {
    expect(formatQuantity('2999999999999998.5')).toBe('2,999,999,999,999,998.5');
    expect(formatQuantity('9007199254740993')).toBe('9,007,199,254,740,993');
    expect(formatQuantity('1000000.123456789')).toBe('1,000,000.123456789');
    expect(formatQuantity('12.500')).toBe('12.5');
  });

  it('writes exact plain text for raw values', () => {
    expect(formatQuantityPlain('999999999999999.999999999')).toBe('999999999999999.999999999');
    expect(formatQuantityPlain(1e21)).toBe('1000000000000000000000');
    expect(formatQuantityPlain('12.500')).toBe('12.5');
    expect(formatQuantityPlain(null)).toBe('—');
  });

  it('shows a dash for nothing and passes through garbage', () => {
    expect(formatQuantity(null)).toBe('—');
    expect(formatQuantity(undefined)).toBe('—');
    expect(formatQuantity('n/a')).toBe('n/a');
  });
});

describe('formatCount / formatCompact', () => {
  it('formats counts', () => {
    expect(formatCount(1234)).toBe('1,234');
    expect(formatCount(null)).toBe('—');
  });
  it('shortens large values', () => {
    expect(formatCompact(999)).toBe('999');
    expect(formatCompact(1500)).toBe('1.5K');
    expect(formatCompact('2500000')).toBe('2.5M');
    expect(formatCompact(0.25)).toBe('0.25');
  });
});

describe('percentChange against the previous range', () => {
  it('computes rises and falls', () => {
    expect(percentChange(150, 100)).toMatchObject({ direction: 'up', label: '+50%' });
    expect(percentChange(75, 100)).toMatchObject({ direction: 'down', label: '−25%' });
    expect(percentChange(101, 100)).toMatchObject({ direction: 'up', label: '+1%' });
    expect(percentChange(1005, 1000)).toMatchObject({ direction: 'up', label: '+0.5%' });
  });
  it('handles zero previous values', () => {
    expect(percentChange(0, 0)).toMatchObject({ direction: 'flat', label: '0%', pct: 0 });
    expect(percentChange(5, 0)).toMatchObject({ direction: 'new', pct: null });
    expect(percentChange(0, 5)).toMatchObject({ direction: 'down', label: '−100%' });
  });
  it('accepts decimal strings and caps huge changes', () => {
    expect(percentChange('3000000000000000', '1500000000000000')).toMatchObject({ label: '+100%' });
    expect(percentChange(100000, 1)).toMatchObject({ direction: 'up', label: '+>999%' });
  });
  it('treats tiny changes as flat', () => {
    expect(percentChange(100000, 100001)).toMatchObject({ direction: 'flat' });
  });
});

describe('dates', () => {
  it('formats in the chosen zone', () => {
    expect(formatDateTime('2025-11-20T10:31:00Z', 'UTC')).toBe('Nov 20, 2025, 10:31:00');
    expect(formatDateTime('2025-11-20T10:31:00Z', 'Asia/Tokyo', false)).toBe('Nov 20, 2025, 19:31');
    expect(formatDateTime(null, 'UTC')).toBe('—');
  });
  it('labels windows', () => {
    const t = Date.parse('2025-11-20T14:00:00Z');
    expect(formatWindowLabel(t, 'UTC', 'hourly')).toBe('14:00');
    expect(formatWindowLabel(t, 'UTC', 'daily')).toBe('Nov 20');
    expect(formatWindowLabel(t, 'America/New_York', 'hourly')).toBe('09:00');
  });
  it('says how long ago', () => {
    const now = Date.parse('2025-11-20T12:00:00Z');
    expect(formatRelative(null, now)).toBe('never');
    expect(formatRelative('2025-11-20T11:59:50Z', now)).toBe('just now');
    expect(formatRelative('2025-11-20T11:57:00Z', now)).toBe('3 min ago');
    expect(formatRelative('2025-11-18T12:00:00Z', now)).toBe('2 d ago');
    expect(formatRelative('2025-11-20T14:00:00Z', now)).toBe('in 2 h');
  });
  it('names offsets', () => {
    expect(formatOffset('UTC')).toBe('UTC');
    expect(formatOffset('Asia/Kolkata')).toBe('UTC+05:30');
  });
});
