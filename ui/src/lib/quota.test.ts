import { describe, expect, it } from 'vitest';
import { quotaLevel, quotaPercent } from './quota';

describe('quota bar colour rule', () => {
  it('is normal below the alert threshold', () => {
    expect(quotaLevel(10, 100, 80)).toBe('ok');
    expect(quotaLevel(79.999, 100, 80)).toBe('ok');
    expect(quotaLevel(0, 100, 80)).toBe('ok');
  });

  it('turns amber at and past the alert threshold', () => {
    expect(quotaLevel(80, 100, 80)).toBe('alert');
    expect(quotaLevel(99, 100, 80)).toBe('alert');
    expect(quotaLevel(1, 2, 50)).toBe('alert');
  });

  it('turns red when usage reaches or passes the limit', () => {
    expect(quotaLevel(100, 100, 80)).toBe('exceeded');
    expect(quotaLevel(150, 100, 80)).toBe('exceeded');
    expect(quotaLevel('100.000000000', '100', 80)).toBe('exceeded');
  });

  it('trusts the server alert flag', () => {
    expect(quotaLevel(10, 100, 80, true)).toBe('alert');
  });

  it('compares huge decimal strings exactly', () => {
    expect(quotaLevel('9007199254740992', '9007199254740993', 100)).toBe('ok');
    expect(quotaLevel('9007199254740993', '9007199254740993', 100)).toBe('exceeded');
  });

  it('has no colour without a limit, and defaults the threshold to 80', () => {
    expect(quotaLevel(5, null, 80)).toBe('none');
    expect(quotaLevel(85, 100, undefined)).toBe('alert');
  });

  it('computes the share used', () => {
    expect(quotaPercent(78, 100)).toBe(78);
    expect(quotaPercent(5, null)).toBe(0);
    expect(quotaPercent('150', '100')).toBe(150);
  });
});
