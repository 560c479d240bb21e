import { describe, expect, it } from 'vitest';
import {
  compareQuantities,
  fromScaled,
  isPositiveDecimal,
  numberToPlainString,
  plainDecimal,
  sumQuantities,
  toDecimalString,
  toNumber,
  toScaled,
} from './decimal';

describe('decimal', () => {
  it('parses numbers and decimal strings exactly', () => {
    expect(toScaled(1)).toBe(1_000_000_000n);
    expect(toScaled('0.5')).toBe(500_000_000n);
    expect(toScaled('0.000000001')).toBe(1n);
    expect(toScaled('9999999999999999.123456789')).toBe(9999999999999999123456789n);
    expect(toScaled(null)).toBe(0n);
    expect(() => toScaled('abc')).toThrow();
  });

  it('renders canonical strings', () => {
    expect(fromScaled(1_500_000_000n)).toBe('1.5');
    expect(fromScaled(-250_000_000n)).toBe('-0.25');
    expect(toDecimalString('007.100')).toBe('7.1');
    expect(toDecimalString(12)).toBe('12');
  });

  it('expands exponent notation of JS numbers', () => {
    expect(numberToPlainString(1e-7)).toBe('0.0000001');
    expect(numberToPlainString(1.5e21)).toBe('1500000000000000000000');
    expect(numberToPlainString(-2.5e-3)).toBe('-0.0025');
    expect(toDecimalString(1e-9)).toBe('0.000000001');
  });

  it('expands exponent notation of decimal text', () => {
    expect(plainDecimal('1e21')).toBe('1000000000000000000000');
    expect(plainDecimal('1.50E+2')).toBe('150');
    expect(plainDecimal('-0.5e-3')).toBe('-0.0005');
    expect(plainDecimal('123.450')).toBe('123.450');
    expect(plainDecimal('abc')).toBe('abc');
    expect(toDecimalString('1.000000001e15')).toBe('1000000001000000');
  });

  it('sums without float drift', () => {
    expect(0.1 + 0.2).not.toBe(0.3);
    expect(sumQuantities([0.1, 0.2])).toBe('0.3');
    // Beyond 2^53: a double would lose the last digits.
    expect(sumQuantities(['9007199254740993', 1])).toBe('9007199254740994');
    expect(sumQuantities(['999999999999999.5', '999999999999999.5', '999999999999999.5'])).toBe('2999999999999998.5');
  });

  it('compares exactly', () => {
    expect(compareQuantities('9007199254740993', '9007199254740992')).toBe(1);
    expect(compareQuantities(1, '1.000000000')).toBe(0);
    expect(compareQuantities('0.1', 0.2)).toBe(-1);
  });

  it('converts to approximate numbers for charts', () => {
    expect(toNumber('1.5')).toBe(1.5);
    expect(toNumber(3)).toBe(3);
    expect(toNumber(undefined)).toBe(0);
  });

  it('validates form quantities', () => {
    expect(isPositiveDecimal('10')).toBe(true);
    expect(isPositiveDecimal('0.000000001')).toBe(true);
    expect(isPositiveDecimal('0')).toBe(false);
    expect(isPositiveDecimal('1.0000000001')).toBe(false);
    expect(isPositiveDecimal('-1')).toBe(false);
    expect(isPositiveDecimal('1e3')).toBe(false);
  });
});
