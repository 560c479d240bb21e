import { type ReactNode, createContext, useCallback, useContext, useMemo, useState } from 'react';
import { ApiClient, type ApiError } from './api';

export const KEY_STORAGE = 'metering.apiKey';

interface AuthState {
  apiKey: string | null;
  client: ApiClient | null;
  /** Why the user was signed out, shown on the sign-in screen. */
  notice: string | null;
  signIn: (key: string) => void;
  signOut: (notice?: string) => void;
}

const AuthContext = createContext<AuthState | null>(null);

function readKey(): string | null {
  try {
    return window.sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [apiKey, setApiKey] = useState<string | null>(readKey);
  const [notice, setNotice] = useState<string | null>(null);

  const signOut = useCallback((why?: string) => {
    try {
      window.sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      /* storage unavailable */
    }
    setApiKey(null);
    setNotice(why ?? null);
  }, []);

  const signIn = useCallback((key: string) => {
    try {
      window.sessionStorage.setItem(KEY_STORAGE, key);
    } catch {
      /* storage unavailable: the key lives in memory only */
    }
    setNotice(null);
    setApiKey(key);
  }, []);

  const client = useMemo(
    () =>
      apiKey
        ? new ApiClient(apiKey, {
            onUnauthorized: (e: ApiError) => signOut(`Signed out: ${e.message}`),
          })
        : null,
    [apiKey, signOut],
  );

  const value = useMemo(
    () => ({ apiKey, client, notice, signIn, signOut }),
    [apiKey, client, notice, signIn, signOut],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const a = useContext(AuthContext);
  if (!a) throw new Error('useAuth outside AuthProvider');
  return a;
}

/** The API client of the signed-in user (pages render only when signed in). */
export function useApi(): ApiClient {
  const { client } = useAuth();
  if (!client) throw new Error('not signed in');
  return client;
}
