import type { Meter, MeterDefinition, MeterRow, Scalar } from './api';
import { toNumber, toScaled, fromScaled } from './decimal';

/** The label of a row's group: its values joined, `(none)` for a missing one. */
export function groupLabel(group: Record<string, string | null>): string {
  const parts = Object.values(group).map((v) => (v === null ? '(none)' : v));
  return parts.length ? parts.join(' · ') : 'all';
}

export interface MeterSeries {
  /** Series names, the largest total first (at most `limit`; the rest are merged into "other"). */
  names: string[];
  /** One point per window start, with a number per series name for drawing. */
  points: Record<string, number | string>[];
}

/**
 * Turns meter rows into chart series: one per group, the `limit` groups with the
 * largest absolute total first, the rest summed into "other" (for additive meters only;
 * otherwise they are left out). Values are converted to numbers only here, for drawing.
 */
export function meterSeries(rows: MeterRow[], additive: boolean, limit = 8): MeterSeries {
  const totals = new Map<string, bigint>();
  for (const r of rows) {
    const name = groupLabel(r.group);
    totals.set(name, (totals.get(name) ?? 0n) + toScaled(r.value));
  }
  const abs = (v: bigint) => (v < 0n ? -v : v);
  const ranked = [...totals.entries()].sort((a, b) => (abs(b[1]) > abs(a[1]) ? 1 : abs(b[1]) < abs(a[1]) ? -1 : a[0].localeCompare(b[0])));
  const top = ranked.slice(0, limit).map(([n]) => n);
  const rest = ranked.length > limit && additive;
  const names = rest ? [...top, 'other'] : top;
  const byWindow = new Map<string, Record<string, number | string>>();
  const other = new Map<string, bigint>();
  for (const r of rows) {
    const point = byWindow.get(r.window_start) ?? { t: r.window_start };
    byWindow.set(r.window_start, point);
    const name = groupLabel(r.group);
    if (top.includes(name)) point[name] = toNumber(r.value);
    else if (rest) other.set(r.window_start, (other.get(r.window_start) ?? 0n) + toScaled(r.value));
  }
  for (const [t, v] of other) {
    const point = byWindow.get(t);
    if (point) point.other = toNumber(fromScaled(v));
  }
  const points = [...byWindow.values()].sort((a, b) => String(a.t).localeCompare(String(b.t)));
  return { names, points };
}

/** A one-line summary of a meter's filter. */
export function filterSummary(m: Pick<Meter, 'filter'>): string {
  const f = m.filter ?? {};
  const parts: string[] = [];
  if (f.resource?.length) parts.push(`resource ${f.resource.join(' | ')}`);
  if (f.feature?.length) parts.push(`feature ${f.feature.join(' | ')}`);
  for (const [k, vs] of Object.entries(f.metadata ?? {})) {
    parts.push(`${k} = ${vs.map((v) => JSON.stringify(v)).join(' | ')}`);
  }
  return parts.length ? parts.join(', ') : 'every event';
}

/** The meter form's fields, as text. */
export interface MeterForm {
  key: string;
  name: string;
  aggregation: string;
  value: string;
  resource: string;
  feature: string;
  /** One `key=JSON value` condition per line (`region="eu"`, `tier=2`, `plan=null`). */
  metadata: string;
  dimensions: string;
}

export const EMPTY_METER_FORM: MeterForm = {
  key: '',
  name: '',
  aggregation: 'sum',
  value: 'quantity',
  resource: '',
  feature: '',
  metadata: '',
  dimensions: '',
};

const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

/** The form of a stored meter, for editing. */
export function formOf(m: Meter): MeterForm {
  const lines = Object.entries(m.filter?.metadata ?? {}).flatMap(([k, vs]) => vs.map((v) => `${k}=${JSON.stringify(v)}`));
  return {
    key: m.key,
    name: m.name ?? '',
    aggregation: m.aggregation,
    value: m.value,
    resource: (m.filter?.resource ?? []).join(', '),
    feature: (m.filter?.feature ?? []).join(', '),
    metadata: lines.join('\n'),
    dimensions: m.dimensions.join(', '),
  };
}

/**
 * The definition a form describes, or the problems with it (key -> message). Only what
 * the form itself can tell is checked here (the key's characters, the metadata lines);
 * every other rule is the server's, whose field errors are shown as they come.
 */
export function definitionOf(f: MeterForm): { def: MeterDefinition } | { errors: Partial<Record<keyof MeterForm, string>> } {
  const errors: Partial<Record<keyof MeterForm, string>> = {};
  if (!/^[a-z0-9_-]{1,64}$/.test(f.key.trim())) errors.key = '1 to 64 characters of a-z, 0-9, _ and -.';
  const metadata: Record<string, Scalar[]> = {};
  for (const line of f.metadata.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf('=');
    if (at <= 0) {
      errors.metadata = `"${line}": write key=JSON value, e.g. region="eu".`;
      continue;
    }
    const k = line.slice(0, at).trim();
    let v: unknown;
    try {
      v = JSON.parse(line.slice(at + 1).trim());
    } catch {
      errors.metadata = `"${line}": the value must be JSON (strings in double quotes).`;
      continue;
    }
    if (v !== null && typeof v === 'object') {
      errors.metadata = `"${line}": the value must be a string, number, boolean or null.`;
      continue;
    }
    (metadata[k] ??= []).push(v as Scalar);
  }
  if (Object.keys(errors).length) return { errors };
  const filter: MeterDefinition['filter'] = {};
  if (list(f.resource).length) filter.resource = list(f.resource);
  if (list(f.feature).length) filter.feature = list(f.feature);
  if (Object.keys(metadata).length) filter.metadata = metadata;
  const def: MeterDefinition = {
    aggregation: f.aggregation as MeterDefinition['aggregation'],
    value: f.value.trim() || 'quantity',
    dimensions: list(f.dimensions),
  };
  if (f.name.trim()) def.name = f.name.trim();
  if (Object.keys(filter).length) def.filter = filter;
  return { def };
}
