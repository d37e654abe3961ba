import type { LoginResponse, RefreshResponse } from "./types";

const KEY = "stellarstack.tokens";

export interface StoredTokens {
  access_token: string;
  id_token: string;
  refresh_token: string;
  expires_at: number; // epoch ms
}

type Listener = () => void;
const listeners = new Set<Listener>();

// Why the last session ended (shown once on the login page), or null.
let endedReason: string | null = null;

export function getTokens(): StoredTokens | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const parsed = JSON.parse(raw) as StoredTokens;
    return typeof parsed.access_token === "string" ? parsed : null;
  } catch {
    return null;
  }
}

function store(stored: StoredTokens): void {
  sessionStorage.setItem(KEY, JSON.stringify(stored));
  endedReason = null;
  emit();
}

/** Tokens from a sign-in. */
export function setTokens(res: LoginResponse): void {
  store({
    access_token: res.access_token,
    id_token: res.id_token,
    refresh_token: res.refresh_token,
    expires_at: Date.now() + (res.expires_in || 0) * 1000,
  });
}

/** Tokens from a refresh: no new refresh token comes back, the held one stays. */
export function updateTokens(res: RefreshResponse): void {
  const current = getTokens();
  if (!current) return; // signed out while the refresh was in flight
  store({
    access_token: res.access_token,
    id_token: res.id_token,
    refresh_token: res.refresh_token || current.refresh_token,
    expires_at: Date.now() + (res.expires_in || 0) * 1000,
  });
}

/** Forget the tokens. `reason` is shown on the login page when the session ended by itself. */
export function clearTokens(reason?: string): void {
  const had = sessionStorage.getItem(KEY) !== null;
  sessionStorage.removeItem(KEY);
  endedReason = had && reason ? reason : null;
  emit();
}

/** Why the session ended, until the next sign-in (pure read: safe in render). */
export function sessionEndedReason(): string | null {
  return endedReason;
}

export function subscribeAuth(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(): void {
  for (const fn of listeners) fn();
}
