import { useCallback, useEffect, useRef, useState } from 'react';
import { type ApiError, toApiError } from './api';
import { useSettings } from './settings';

export interface QueryState<T> {
  data: T | undefined;
  error: ApiError | null;
  /** True until the first answer for the current key. */
  loading: boolean;
  /** True while data for an older key is shown and the new key loads. */
  stale: boolean;
  refetch: () => void;
}

/**
 * Fetches `fn` for `key` (null: nothing to fetch), then refetches on every
 * refresh tick. Data for a previous key stays on screen until the new answer
 * comes (no flicker), and an answer equal to the shown one does not
 * re-render. Requests never overlap.
 */
export function useQuery<T>(key: string | null, fn: (signal: AbortSignal) => Promise<T>): QueryState<T> {
  const { tick } = useSettings();
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const [state, setState] = useState<{
    key: string | null;
    data: T | undefined;
    text: string | null;
    error: ApiError | null;
    dataKey: string | null;
  }>({ key: null, data: undefined, text: null, error: null, dataKey: null });
  const inflight = useRef<{ key: string; ctrl: AbortController } | null>(null);
  const mounted = useRef(true);

  const run = useCallback((k: string, force: boolean) => {
    if (inflight.current) {
      if (inflight.current.key === k && !force) return; // still loading: skip this tick
      inflight.current.ctrl.abort();
    }
    const ctrl = new AbortController();
    inflight.current = { key: k, ctrl };
    fnRef
      .current(ctrl.signal)
      .then(
        (data) => {
          if (ctrl.signal.aborted || !mounted.current) return;
          const text = JSON.stringify(data);
          setState((s) =>
            s.text === text && s.dataKey === k && !s.error
              ? s
              : { key: k, data, text, error: null, dataKey: k },
          );
        },
        (err: unknown) => {
          if (ctrl.signal.aborted || !mounted.current) return;
          const e = toApiError(err);
          setState((s) =>
            s.error && s.error.message === e.message && s.error.status === e.status && s.key === k
              ? s
              : { ...s, key: k, error: e },
          );
        },
      )
      .finally(() => {
        if (inflight.current?.ctrl === ctrl) inflight.current = null;
      });
  }, []);

  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
      inflight.current?.ctrl.abort();
      inflight.current = null;
    };
  }, []);

  useEffect(() => {
    if (key === null) return;
    setState((s) => (s.key === key ? s : { ...s, key, error: null }));
    run(key, true);
  }, [key, run]);

  useEffect(() => {
    if (key === null || tick === 0) return;
    run(key, false);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [tick]);

  const refetch = useCallback(() => {
    if (key !== null) run(key, true);
  }, [key, run]);

  const hasData = state.dataKey !== null;
  return {
    data: state.data,
    error: state.key === key ? state.error : null,
    loading: key !== null && !hasData && !(state.key === key && state.error),
    stale: hasData && state.dataKey !== key,
    refetch,
  };
}
