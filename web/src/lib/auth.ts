import type { LoginResponse } from "./types";

const KEY = "stellarstack.tokens";

export interface StoredTokens {
  access_token: string;
  id_token: string;
  refresh_token: string;
  expires_at: number; // epoch ms
}

type Listener = () => void;
const listeners = new Set<Listener>();

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

export function setTokens(res: LoginResponse): void {
  const stored: StoredTokens = {
    access_token: res.access_token,
    id_token: res.id_token,
    refresh_token: res.refresh_token,
    expires_at: Date.now() + (res.expires_in || 0) * 1000,
  };
  sessionStorage.setItem(KEY, JSON.stringify(stored));
  emit();
}

export function clearTokens(): void {
  sessionStorage.removeItem(KEY);
  emit();
}

export function subscribeAuth(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(): void {
  for (const fn of listeners) fn();
}
