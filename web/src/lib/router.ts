import { useSyncExternalStore } from "react";

export type Route =
  | { name: "login" }
  | { name: "servers" }
  | { name: "new-server" }
  | { name: "server"; id: string }
  | { name: "not-found"; path: string };

function currentPath(): string {
  const h = window.location.hash.replace(/^#/, "");
  return h.startsWith("/") ? h : `/${h}`;
}

export function parseRoute(path: string): Route {
  const clean = path.split("?")[0] ?? "/";
  if (clean === "/" || clean === "/servers") return { name: "servers" };
  if (clean === "/login") return { name: "login" };
  if (clean === "/servers/new") return { name: "new-server" };
  const m = /^\/servers\/([^/]+)\/?$/.exec(clean);
  if (m && m[1]) return { name: "server", id: decodeURIComponent(m[1]) };
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
  login: "/login",
};

export function href(path: string): string {
  return `#${path}`;
}
