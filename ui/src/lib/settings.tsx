import { type ReactNode, createContext, useContext, useEffect, useMemo, useState } from 'react';
import {
  type RangeSpec,
  type TimeRange,
  RangeSpecError,
  browserTimeZone,
  computeRange,
  isValidTimeZone,
} from './range';

/** How often the visible page refetches its queries. */
export const REFRESH_MS = 2500;

interface SettingsState {
  spec: RangeSpec;
  setSpec: (s: RangeSpec) => void;
  tz: string;
  setTz: (tz: string) => void;
  live: boolean;
  setLive: (v: boolean) => void;
  /** Increments every REFRESH_MS while live and the tab is visible. */
  tick: number;
  range: TimeRange | null;
  rangeError: string | null;
}

const SettingsContext = createContext<SettingsState | null>(null);
const STORE = 'metering.settings';

function load(): { spec: RangeSpec; tz: string; live: boolean } {
  const fallback = { spec: { preset: '7d' } as RangeSpec, tz: browserTimeZone(), live: true };
  try {
    const raw = window.sessionStorage.getItem(STORE);
    if (!raw) return fallback;
    const v = JSON.parse(raw) as Partial<typeof fallback>;
    return {
      spec: v.spec && typeof v.spec.preset === 'string' ? v.spec : fallback.spec,
      tz: typeof v.tz === 'string' && isValidTimeZone(v.tz) ? v.tz : fallback.tz,
      live: typeof v.live === 'boolean' ? v.live : true,
    };
  } catch {
    return fallback;
  }
}

export function SettingsProvider({ children, refreshMs = REFRESH_MS }: { children: ReactNode; refreshMs?: number }) {
  const [initial] = useState(load);
  const [spec, setSpec] = useState<RangeSpec>(initial.spec);
  const [tz, setTz] = useState(initial.tz);
  const [live, setLive] = useState(initial.live);
  const [tick, setTick] = useState(0);
  const [now, setNow] = useState(() => Date.now());

  useEffect(() => {
    try {
      window.sessionStorage.setItem(STORE, JSON.stringify({ spec, tz, live }));
    } catch {
      /* ignore */
    }
  }, [spec, tz, live]);

  useEffect(() => {
    if (!live) return;
    const id = window.setInterval(() => {
      if (document.visibilityState === 'hidden') return;
      setNow(Date.now());
      setTick((t) => t + 1);
    }, refreshMs);
    const onVisible = () => {
      if (document.visibilityState === 'visible') {
        setNow(Date.now());
        setTick((t) => t + 1);
      }
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      window.clearInterval(id);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [live, refreshMs]);

  // Recompute the range as time passes; it only changes at window boundaries.
  const rangeResult = useMemo(() => {
    try {
      return { range: computeRange(spec, now, tz), error: null };
    } catch (e) {
      return { range: null, error: e instanceof RangeSpecError ? e.message : String(e) };
    }
  }, [spec, now, tz]);
  const rs = rangeResult.range?.start;
  const re = rangeResult.range?.end;
  const rw = rangeResult.range?.windowType;
  const range = useMemo(
    () => (rs !== undefined && re !== undefined && rw ? { start: rs, end: re, windowType: rw } : null),
    [rs, re, rw],
  );

  const value = useMemo(
    () => ({
      spec,
      setSpec: (s: RangeSpec) => {
        setNow(Date.now());
        setSpec(s);
      },
      tz,
      setTz,
      live,
      setLive,
      tick,
      range,
      rangeError: rangeResult.error,
    }),
    [spec, tz, live, tick, range, rangeResult.error],
  );
  return <SettingsContext.Provider value={value}>{children}</SettingsContext.Provider>;
}

export function useSettings(): SettingsState {
  const s = useContext(SettingsContext);
  if (!s) throw new Error('useSettings outside SettingsProvider');
  return s;
}
