import { refreshSession } from "./api";
import { getTokens, subscribeAuth } from "./auth";

const LEAD_MS = 60_000; // refresh this long before the access token expires
const RETRY_MS = 15_000; // after a network error

/**
 * Keep the session alive: refresh the access token shortly before it expires, re-planning
 * whenever the tokens change (sign-in, refresh, sign-out). Returns a stop function.
 */
export function startAutoRefresh(): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;

  const plan = (delayOverride?: number) => {
    clearTimeout(timer);
    timer = undefined;
    const tokens = getTokens();
    if (!tokens) return;
    const left = tokens.expires_at - Date.now();
    // Short-lived tokens: refresh at 80 % of their life rather than a fixed minute early.
    const delay = delayOverride ?? Math.max(1_000, Math.min(left - LEAD_MS, left * 0.8));
    timer = setTimeout(() => {
      const current = getTokens();
      if (!current) return;
      refreshSession(current.access_token).catch(() => plan(RETRY_MS));
    }, delay);
  };

  const unsubscribe = subscribeAuth(() => plan());
  plan();
  return () => {
    clearTimeout(timer);
    unsubscribe();
  };
}
