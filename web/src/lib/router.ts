import { useSyncExternalStore } from "react";

export type Route =
  | { name: "login" }
  | { name: "signup" }
  | { name: "forgot" }
  | { name: "reset" }
  | { name: "account" }
  | { name: "servers" }
  | { name: "new-server" }
  | { name: "server"; id: string; tab: ServerTab }
  | { name: "admin"; section: AdminSection }
  | { name: "not-found"; path: string };

export const SERVER_TABS = ["console", "files", "startup", "backups", "subusers", "activity"] as const;
export type ServerTab = (typeof SERVER_TABS)[number];
export const ADMIN_SECTIONS = ["nodes", "locations", "users", "blueprints", "activity"] as const;
export type AdminSection = (typeof ADMIN_SECTIONS)[number];

function currentPath(): string {
  const h = window.location.hash.replace(/^#/, "");
  return h.startsWith("/") ? h : `/${h}`;
}

export function parseRoute(path: string): Route {
  const clean = path.split("?")[0] ?? "/";
  if (clean === "/" || clean === "/servers") return { name: "servers" };
  if (clean === "/login") return { name: "login" };
  if (clean === "/signup") return { name: "signup" };
  if (clean === "/password/forgot") return { name: "forgot" };
  if (clean === "/password/reset") return { name: "reset" };
  if (clean === "/account") return { name: "account" };
  if (clean === "/servers/new") return { name: "new-server" };
  const m = /^\/servers\/([^/]+)(?:\/([a-z]+))?\/?$/.exec(clean);
  if (m && m[1]) {
    const tab = (m[2] ?? "console") as ServerTab;
    if (SERVER_TABS.includes(tab)) return { name: "server", id: decodeURIComponent(m[1]), tab };
  }
  const a = /^\/admin(?:\/([a-z]+))?\/?$/.exec(clean);
  if (a) {
    const section = (a[1] ?? "nodes") as AdminSection;
    if (ADMIN_SECTIONS.includes(section)) return { name: "admin", section };
  }
  return { name: "not-found", path: clean };
}

function subscribe(cb: () => void): () => void {
  window.addEventListener("hashchange", cb);
  return () => window.removeEventListener("hashchange", cb);
}

export function usePath(): string {
  return useSyncExternalStore(subscribe, currentPath, () => "/");
}

export function navigate(path: string, opts: { replace?: boolean } = {}): void {
  const target = `#${path}`;
  if (opts.replace) {
    const url = `${window.location.pathname}${window.location.search}${target}`;
    window.history.replaceState(null, "", url);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else if (window.location.hash !== target) {
    window.location.hash = path;
  }
}

export const paths = {
  servers: "/",
  newServer: "/servers/new",
  server: (id: string) => `/servers/${encodeURIComponent(id)}`,
  serverTab: (id: string, tab: ServerTab) =>
    tab === "console" ? `/servers/${encodeURIComponent(id)}` : `/servers/${encodeURIComponent(id)}/${tab}`,
  admin: (section: AdminSection) => `/admin/${section}`,
  login: "/login",
  signup: "/signup",
  forgot: "/password/forgot",
  reset: "/password/reset",
  account: "/account",
};

/** Pages for people who are not signed in. */
export const PUBLIC_ROUTES = new Set<Route["name"]>(["login", "signup", "forgot", "reset"]);

/** A path with a query string, e.g. withQuery(paths.login, { email }). */
export function withQuery(path: string, params: Record<string, string>): string {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  return q ? `${path}?${q}` : path;
}

/** The query string of the current hash path. */
export function queryParams(path: string): URLSearchParams {
  const i = path.indexOf("?");
  return new URLSearchParams(i >= 0 ? path.slice(i + 1) : "");
}

export function href(path: string): string {
  return `#${path}`;
}
