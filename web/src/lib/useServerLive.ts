import { useEffect, useRef, useState } from "react";
import mqtt, { type MqttClient } from "mqtt";
import { api, ApiError, errorMessage } from "./api";
import { toDate } from "./format";
import type { ConsoleGrant, ConsoleMessage, StateMessage, StatsMessage } from "./types";

export type ConnectionStatus = "connecting" | "connected" | "reconnecting";

export interface StateEntry {
  state: string;
  seq: number;
  at: Date;
  detail?: string | null;
}

export interface ServerLive {
  connection: ConnectionStatus;
  connectionError: string | null;
  /** Latest state from the state topic, or null until one arrives. */
  live: StateEntry | null;
  /** State changes received live, oldest first. */
  history: StateEntry[];
  stats: StatsMessage | null;
  /** Stats received over the last STATS_WINDOW_MS, oldest first (kept in memory only). */
  statsHistory: StatsSample[];
}

/** One stats message with the time it arrived (the graph's x axis; agents' clocks may drift). */
export interface StatsSample {
  at: number;
  cpu: number;
  mem: number;
  memLimit: number;
}

export const STATS_WINDOW_MS = 120_000;

/** Renew the grant this long before it expires (or at 80% of its lifetime if that is shorter). */
const RENEW_MARGIN_MS = 30_000;
const MIN_RENEW_DELAY_MS = 10_000;
const GRANT_RETRY_MS = 3_000;
const MAX_HISTORY = 100;

/** MQTT v5 CONNACK reason codes (and v3 return codes) that mean the credentials are no good. */
const AUTH_FAILURES = new Set([4, 5, 134, 135]);

function renewDelay(grant: ConsoleGrant): number {
  const remaining = grant.expires_at * 1000 - Date.now();
  const delay = Math.min(remaining - RENEW_MARGIN_MS, remaining * 0.8);
  return Math.max(delay, MIN_RENEW_DELAY_MS);
}

function parseJson(payload: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return null;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}

/**
 * Live connection to one server's MQTT topics (console, state, stats) using
 * short-lived console grants, renewed before they expire.
 *
 * `initialStatus` is the status from the API until a live state arrives; `history`
 * starts with the first live state and then records each change.
 */
export function useServerLive(
  serverId: string,
  initialStatus: string,
  onConsole: (msg: ConsoleMessage) => void,
): ServerLive {
  const [connection, setConnection] = useState<ConnectionStatus>("connecting");
  const [connectionError, setConnectionError] = useState<string | null>(null);
  const [live, setLive] = useState<StateEntry | null>(null);
  const [history, setHistory] = useState<StateEntry[]>([]);
  const [stats, setStats] = useState<StatsMessage | null>(null);
  const [statsHistory, setStatsHistory] = useState<StatsSample[]>([]);

  const onConsoleRef = useRef(onConsole);
  const initialStatusRef = useRef(initialStatus);
  useEffect(() => {
    onConsoleRef.current = onConsole;
    initialStatusRef.current = initialStatus;
  });

  useEffect(() => {
    let disposed = false;
    /** The client whose messages are processed (its subscription is acknowledged). */
    let active: MqttClient | null = null;
    /** The newest client (may still be connecting, replacing `active`). */
    let latest: MqttClient | null = null;
    let renewTimer: ReturnType<typeof setTimeout> | undefined;
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    let backlogRequested = false;
    let lastSeq = Number.NEGATIVE_INFINITY;
    let lastState: string | null = null;
    let everConnected = false;

    setConnection("connecting");
    setConnectionError(null);
    setLive(null);
    setHistory([]);
    setStats(null);

    const handleState = (data: unknown) => {
      if (!isObject(data) || typeof data.state !== "string") return;
      const seq = typeof data.seq === "number" ? data.seq : Number(data.seq);
      if (Number.isFinite(seq) && seq < lastSeq) return; // stale (out of order)
      if (Number.isFinite(seq)) lastSeq = seq;
      const msg = data as unknown as StateMessage;
      const entry: StateEntry = { state: msg.state, seq, at: toDate(msg.ts), detail: msg.detail };
      // The first state received (the retained one, on subscribe) opens the history, so
      // the list shows where the server was when watching began; after that, changes only.
      const previous = lastState;
      lastState = msg.state;
      setLive(entry);
      if (previous === null || msg.state !== previous) {
        setHistory((h) => [...h, entry].slice(-MAX_HISTORY));
      }
    };

    const handleStats = (data: unknown) => {
      if (!isObject(data)) return;
      const n = (k: string) => (typeof data[k] === "number" ? (data[k] as number) : NaN);
      const msg: StatsMessage = {
        v: n("v"),
        ts: (data.ts as number | string) ?? Date.now(),
        cpu_percent: n("cpu_percent"),
        memory_bytes: n("memory_bytes"),
        memory_limit_bytes: n("memory_limit_bytes"),
        rx_bytes: n("rx_bytes"),
        tx_bytes: n("tx_bytes"),
        uptime_s: n("uptime_s"),
      };
      setStats(msg);
      const at = Date.now();
      const sample: StatsSample = {
        at,
        cpu: msg.cpu_percent,
        mem: msg.memory_bytes,
        memLimit: msg.memory_limit_bytes,
      };
      setStatsHistory((h) => [...h.filter((x) => x.at > at - STATS_WINDOW_MS), sample]);
    };

    const handleConsole = (data: unknown) => {
      if (!isObject(data)) return;
      const lines = Array.isArray(data.lines) ? data.lines.filter((l) => typeof l === "string") : [];
      const msg: ConsoleMessage = {
        v: typeof data.v === "number" ? data.v : 1,
        ts: (data.ts as number | string) ?? Date.now(),
        lines: lines as string[],
        backlog: data.backlog === true,
        dropped: typeof data.dropped === "number" ? data.dropped : undefined,
        source:
          data.source === "server" || data.source === "install" || data.source === "agent"
            ? data.source
            : undefined,
      };
      onConsoleRef.current(msg);
    };

    const scheduleRetry = () => {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => void connect(), GRANT_RETRY_MS);
    };

    const connect = async (): Promise<void> => {
      if (disposed) return;
      clearTimeout(renewTimer);
      clearTimeout(retryTimer);
      let grant: ConsoleGrant;
      try {
        grant = await api.consoleGrant(serverId);
      } catch (err) {
        if (disposed) return;
        // A 401 clears the session and the app returns to the login page.
        if (err instanceof ApiError && (err.status === 401 || err.status === 404)) {
          setConnectionError(errorMessage(err));
          return;
        }
        setConnection(everConnected ? "reconnecting" : "connecting");
        setConnectionError(errorMessage(err));
        scheduleRetry();
        return;
      }
      if (disposed) return;

      const client = mqtt.connect(grant.url, {
        username: grant.username,
        password: grant.password,
        clientId: grant.client_id,
        protocolVersion: 4, // MQTT 3.1.1: spoken by Mosquitto, the embedded broker and AWS IoT alike
        reconnectPeriod: 2000,
        connectTimeout: 10_000,
        clean: true,
        resubscribe: false, // we subscribe on every (re)connect ourselves
      });
      // A previous replacement that never got going is abandoned.
      if (latest && latest !== active) latest.end(true);
      latest = client;
      const topics = grant.topics;

      client.on("connect", () => {
        if (disposed || latest !== client) return;
        client.subscribe(
          [topics.console, topics.state, topics.stats],
          { qos: 0 },
          (err, granted) => {
            if (disposed || latest !== client) return;
            const refused = granted?.some((g) => typeof g.qos === "number" && g.qos >= 0x80);
            if (err || refused) {
              setConnectionError(err ? errorMessage(err) : "Subscription refused by the broker");
              client.end(true);
              scheduleRetry();
              return;
            }
            const previous = active;
            active = client;
            if (previous && previous !== client) previous.end(true);
            everConnected = true;
            setConnection("connected");
            setConnectionError(null);
            if (!backlogRequested) {
              backlogRequested = true;
              api.consoleBacklog(serverId).catch(() => {
                backlogRequested = false;
              });
            }
          },
        );
      });

      client.on("message", (topic, payload) => {
        if (disposed || active !== client) return;
        const data = parseJson(payload);
        if (topic === topics.console) handleConsole(data);
        else if (topic === topics.state) handleState(data);
        else if (topic === topics.stats) handleStats(data);
      });

      client.on("reconnect", () => {
        if (!disposed && latest === client) setConnection(everConnected ? "reconnecting" : "connecting");
      });
      client.on("close", () => {
        if (!disposed && latest === client && active === client) {
          setConnection("reconnecting");
        }
      });
      client.on("error", (err) => {
        if (disposed || latest !== client) return;
        const code = (err as { code?: unknown }).code;
        setConnectionError(err.message || "Connection error");
        if (typeof code === "number" && AUTH_FAILURES.has(code)) {
          // Credentials rejected (probably expired): get a fresh grant.
          client.end(true);
          if (active === client) active = null;
          setConnection(everConnected ? "reconnecting" : "connecting");
          scheduleRetry();
        }
      });

      renewTimer = setTimeout(() => void connect(), renewDelay(grant));
    };

    void connect();

    return () => {
      disposed = true;
      clearTimeout(renewTimer);
      clearTimeout(retryTimer);
      active?.end(true);
      if (latest && latest !== active) latest.end(true);
    };
  }, [serverId]);

  return { connection, connectionError, live, history, stats, statsHistory };
}
