import { clearTokens, getTokens, setTokens } from "./auth";
import type {
  Blueprint,
  ConsoleGrant,
  Location,
  LoginResponse,
  Me,
  PowerAction,
  Server,
} from "./types";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: Record<string, string>;

  constructor(status: number, code: string, message: string, fields?: Record<string, string>) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.fields = fields ?? {};
  }
}

interface ErrorBody {
  error?: { code?: unknown; message?: unknown; fields?: unknown };
}

async function parseError(res: Response): Promise<ApiError> {
  let body: ErrorBody | null = null;
  try {
    body = (await res.json()) as ErrorBody;
  } catch {
    body = null;
  }
  const err = body?.error;
  const code = typeof err?.code === "string" ? err.code : `http_${res.status}`;
  const message =
    typeof err?.message === "string" && err.message
      ? err.message
      : `Request failed (${res.status} ${res.statusText || "error"})`;
  const fields: Record<string, string> = {};
  if (err?.fields && typeof err.fields === "object") {
    for (const [k, v] of Object.entries(err.fields as Record<string, unknown>)) {
      fields[k] = typeof v === "string" ? v : String(v);
    }
  }
  return new ApiError(res.status, code, message, fields);
}

async function request<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) {
    const tokens = getTokens();
    if (tokens) headers["Authorization"] = `Bearer ${tokens.access_token}`;
  }
  let res: Response;
  try {
    res = await fetch(`/api${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network_error", "Could not reach the server. Check your connection.");
  }
  if (!res.ok) {
    const err = await parseError(res);
    // Any 401 on an authenticated call ends the session: back to login.
    if (auth && res.status === 401) clearTokens();
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const api = {
  async login(email: string, password: string): Promise<void> {
    const res = await request<LoginResponse>("POST", "/auth/login", { email, password }, false);
    setTokens(res);
  },
  me: () => request<Me>("GET", "/me"),
  blueprints: () => request<Blueprint[]>("GET", "/blueprints"),
  locations: () => request<Location[]>("GET", "/locations"),
  servers: () => request<Server[]>("GET", "/servers"),
  server: (id: string) => request<Server>("GET", `/servers/${encodeURIComponent(id)}`),
  createServer: (input: {
    name: string;
    blueprint_id: string;
    location_id: string;
    variables: Record<string, string>;
  }) => request<Server>("POST", "/servers", input),
  power: (id: string, action: PowerAction) =>
    request<{ command_id: string }>("POST", `/servers/${encodeURIComponent(id)}/power`, { action }),
  command: (id: string, line: string) =>
    request<{ command_id: string }>("POST", `/servers/${encodeURIComponent(id)}/command`, { line }),
  consoleGrant: (id: string) =>
    request<ConsoleGrant>("POST", `/servers/${encodeURIComponent(id)}/console-grant`),
  consoleBacklog: (id: string) =>
    request<unknown>("POST", `/servers/${encodeURIComponent(id)}/console/backlog`),
  deleteServer: (id: string) => request<unknown>("DELETE", `/servers/${encodeURIComponent(id)}`),
};

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
