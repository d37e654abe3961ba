import { clearTokens, getTokens, setTokens, updateTokens } from "./auth";
import type {
  ActivityEntry,
  AdminLocation,
  AdminNode,
  AdminUser,
  Blueprint,
  BlueprintImport,
  DirectoryPage,
  Enrollment,
  FileContent,
  MyPermissions,
  NodeInput,
  PermissionCatalogue,
  Subuser,
  ConsoleGrant,
  Location,
  LoginAnswer,
  LoginResponse,
  Me,
  PowerAction,
  RefreshResponse,
  Server,
  SignUpResponse,
  TotpSetup,
  StartupView,
  Backup,
  BackupList,
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

const SESSION_ENDED = "Your session has ended. Sign in again.";

async function send(
  method: string,
  path: string,
  body: unknown,
  accessToken: string | null,
): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (accessToken) headers["Authorization"] = `Bearer ${accessToken}`;
  try {
    return await fetch(`/api${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network_error", "Could not reach the server. Check your connection.");
  }
}

async function parseBody<T>(res: Response): Promise<T> {
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

// One refresh at a time: concurrent 401s (and the timer) share it.
let refreshing: Promise<boolean> | null = null;

/**
 * Exchange the held refresh token for new access and ID tokens. Resolves true when the
 * session goes on (also when another caller already replaced `staleAccessToken`), false
 * when it has ended (tokens cleared). Network and server errors reject and leave the tokens.
 */
export function refreshSession(staleAccessToken?: string): Promise<boolean> {
  const tokens = getTokens();
  if (!tokens) return Promise.resolve(false);
  if (staleAccessToken && tokens.access_token !== staleAccessToken) return Promise.resolve(true);
  if (!refreshing) {
    refreshing = (async () => {
      const res = await send("POST", "/auth/refresh", { refresh_token: tokens.refresh_token }, null);
      if (res.ok) {
        updateTokens(await parseBody<RefreshResponse>(res));
        return true;
      }
      if (res.status >= 400 && res.status < 500 && res.status !== 429) {
        clearTokens(SESSION_ENDED);
        return false;
      }
      throw await parseError(res);
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function request<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
  return parseBody<T>(await requestResponse(method, path, body, auth));
}

/** One page of a list: its items and the cursor of the next page (X-Next-Cursor), if any. */
export interface PageOf<T> {
  items: T[];
  next: string | null;
}

async function requestPage<T>(path: string, limit: number, cursor?: string | null): Promise<PageOf<T>> {
  const q = new URLSearchParams({ limit: String(limit) });
  if (cursor) q.set("cursor", cursor);
  const sep = path.includes("?") ? "&" : "?";
  const res = await requestResponse("GET", `${path}${sep}${q.toString()}`);
  const items = await parseBody<T[]>(res);
  return { items: items ?? [], next: res.headers.get("X-Next-Cursor") };
}

async function requestResponse(method: string, path: string, body?: unknown, auth = true): Promise<Response> {
  if (!auth) {
    const res = await send(method, path, body, null);
    if (!res.ok) throw await parseError(res);
    return res;
  }
  let tokens = getTokens();
  // Expired while the tab slept (timers don't fire then): refresh before sending.
  if (tokens && tokens.expires_at - Date.now() < 5_000) {
    await refreshSession(tokens.access_token).catch(() => undefined);
    tokens = getTokens();
  }
  const token = tokens?.access_token ?? null;
  let res = await send(method, path, body, token);
  if (res.status === 401 && token && tokens?.refresh_token) {
    // Access token refused: refresh once and retry. If the refresh fails, the session is over.
    const ok = await refreshSession(token).catch(() => false);
    const fresh = getTokens();
    if (ok && fresh) res = await send(method, path, body, fresh.access_token);
  }
  if (!res.ok) {
    const err = await parseError(res);
    if (res.status === 401) clearTokens(SESSION_ENDED);
    throw err;
  }
  return res;
}

const srv = (id: string) => `/servers/${encodeURIComponent(id)}`;

export const api = {
  /** Stores the tokens, or returns the two-factor challenge to answer with a code. */
  async login(
    email: string,
    password: string,
  ): Promise<{ challenge: "totp"; session: string } | null> {
    const res = await request<LoginAnswer>("POST", "/auth/login", { email, password }, false);
    if ("challenge" in res) return res;
    setTokens(res);
    return null;
  },
  async loginTotp(email: string, session: string, code: string): Promise<void> {
    setTokens(
      await request<LoginResponse>("POST", "/auth/login/totp", { email, session, code }, false),
    );
  },
  signUp: (email: string, password: string) =>
    request<SignUpResponse>("POST", "/auth/signup", { email, password }, false),
  confirmSignUp: (email: string, code: string) =>
    request<unknown>("POST", "/auth/confirm", { email, code }, false),
  forgotPassword: (email: string) =>
    request<unknown>("POST", "/auth/password/forgot", { email }, false),
  resetPassword: (email: string, code: string, password: string) =>
    request<unknown>("POST", "/auth/password/reset", { email, code, password }, false),
  /** Sign out everywhere: every session's tokens stop working; then the local ones are dropped. */
  async logoutEverywhere(): Promise<void> {
    await request<unknown>("POST", "/auth/logout", {});
    clearTokens("You have been signed out on every device.");
  },
  changePassword: (current_password: string, new_password: string) =>
    request<unknown>("POST", "/me/password", { current_password, new_password }),
  totpSetup: () => request<TotpSetup>("POST", "/me/totp/setup", {}),
  totpVerify: (code: string) => request<{ totp: boolean }>("POST", "/me/totp/verify", { code }),
  totpDisable: () => request<{ totp: boolean }>("DELETE", "/me/totp"),
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

  // ---- permissions, subusers, activity ----
  myPermissions: (id: string) => request<MyPermissions>("GET", `${srv(id)}/permissions`),
  permissionCatalogue: () => request<PermissionCatalogue>("GET", "/permissions"),
  subusers: (id: string) => request<Subuser[]>("GET", `${srv(id)}/subusers`),
  inviteSubuser: (id: string, email: string, permissions: string[]) =>
    request<Subuser>("POST", `${srv(id)}/subusers`, { email, permissions }),
  updateSubuser: (id: string, userId: string, permissions: string[]) =>
    request<Subuser>("PATCH", `${srv(id)}/subusers/${encodeURIComponent(userId)}`, { permissions }),
  removeSubuser: (id: string, userId: string) =>
    request<unknown>("DELETE", `${srv(id)}/subusers/${encodeURIComponent(userId)}`),
  activity: (id: string, cursor?: string | null) =>
    requestPage<ActivityEntry>(`${srv(id)}/activity`, 25, cursor),

  // ---- files ----
  listFiles: (id: string, path: string, after?: string | null) => {
    const q = new URLSearchParams({ path, limit: "200" });
    if (after) q.set("after", after);
    return request<DirectoryPage>("GET", `${srv(id)}/files/list?${q.toString()}`);
  },
  readFile: (id: string, path: string) =>
    request<FileContent>("POST", `${srv(id)}/files/contents`, { path }),
  writeFile: (id: string, path: string, content: string) =>
    request<{ path: string; size: number }>("POST", `${srv(id)}/files/write`, { path, content }),
  writeFileB64: (id: string, path: string, content_b64: string) =>
    request<{ path: string; size: number }>("POST", `${srv(id)}/files/write`, { path, content_b64 }),
  createDirectory: (id: string, path: string) =>
    request<{ path: string }>("POST", `${srv(id)}/files/create-directory`, { path }),
  renameFile: (id: string, path: string, target: string) =>
    request<{ path: string }>("POST", `${srv(id)}/files/rename`, { path, target }),
  deleteFiles: (id: string, paths: string[]) =>
    request<{ deleted: string[] }>("POST", `${srv(id)}/files/delete`, { paths }),
  downloadFile: (id: string, path: string) =>
    request<{ url: string; size: number }>("POST", `${srv(id)}/files/download`, { path }),
  uploadUrl: (id: string) =>
    request<{ key: string; url: string; expires_in: number }>("POST", `${srv(id)}/files/upload`),
  pullUpload: (id: string, key: string, path: string) =>
    request<{ path: string; size: number }>("POST", `${srv(id)}/files/pull`, { key, path }),

  // ---- startup ----
  startup: (id: string) => request<StartupView>("GET", `${srv(id)}/startup`),
  updateStartup: (id: string, variables: Record<string, string>) =>
    request<StartupView>("PATCH", `${srv(id)}/startup`, { variables }),
  setImage: (id: string, image: string) => request<Server>("PATCH", `${srv(id)}/image`, { image }),

  // ---- backups ----
  backups: (id: string) => request<BackupList>("GET", `${srv(id)}/backups`),
  createBackup: (id: string, name: string) => request<Backup>("POST", `${srv(id)}/backups`, { name }),
  downloadBackup: (id: string, backupId: string) =>
    request<{ url: string; expires_in: number; size_bytes: number; sha256: string | null }>(
      "POST",
      `${srv(id)}/backups/${encodeURIComponent(backupId)}/download`,
    ),
  restoreBackup: (id: string, backupId: string, wipe: boolean) =>
    request<{ command_id: string }>("POST", `${srv(id)}/backups/${encodeURIComponent(backupId)}/restore`, { wipe }),
  lockBackup: (id: string, backupId: string, locked: boolean) =>
    request<Backup>("POST", `${srv(id)}/backups/${encodeURIComponent(backupId)}/lock`, { locked }),
  deleteBackup: (id: string, backupId: string) =>
    request<unknown>("DELETE", `${srv(id)}/backups/${encodeURIComponent(backupId)}`),

  // ---- admin ----
  adminLocations: () => request<AdminLocation[]>("GET", "/admin/locations"),
  createLocation: (input: { id?: string; name: string }) =>
    request<AdminLocation>("POST", "/admin/locations", input),
  adminNodes: () => request<AdminNode[]>("GET", "/admin/nodes"),
  createNode: (input: NodeInput) => request<AdminNode>("POST", "/admin/nodes", input),
  nodeEnrollment: (nodeId: string) =>
    request<Enrollment>("POST", `/admin/nodes/${encodeURIComponent(nodeId)}/enrollment`),
  adminUser: (userId: string) => request<AdminUser>("GET", `/admin/users/${encodeURIComponent(userId)}`),
  createUser: (input: { email: string; password?: string; admin: boolean }) =>
    request<AdminUser>("POST", "/admin/users", input),
  importBlueprint: (content: string, filename?: string, save = false) =>
    request<BlueprintImport>("POST", "/admin/blueprints/import", { content, filename, save }),
  adminActivity: (cursor?: string | null) => requestPage<ActivityEntry>("/admin/activity", 25, cursor),
};

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
