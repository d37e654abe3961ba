import { useQuery } from "@tanstack/react-query";
import { api } from "./api";

export const qk = {
  me: ["me"] as const,
  servers: ["servers"] as const,
  server: (id: string) => ["servers", id] as const,
  blueprints: ["blueprints"] as const,
  locations: ["locations"] as const,
  permissions: (id: string) => ["servers", id, "permissions"] as const,
  catalogue: ["permission-catalogue"] as const,
  subusers: (id: string) => ["servers", id, "subusers"] as const,
  activity: (id: string) => ["servers", id, "activity"] as const,
  files: (id: string, path: string) => ["servers", id, "files", path] as const,
  startup: (id: string) => ["servers", id, "startup"] as const,
  backups: (id: string) => ["servers", id, "backups"] as const,
  adminNodes: ["admin", "nodes"] as const,
  adminLocations: ["admin", "locations"] as const,
  adminActivity: ["admin", "activity"] as const,
};

/** The caller's nodes on a server; `can(node)` answers whether to show what needs it. */
export function useMyPermissions(id: string) {
  const q = useQuery({ queryKey: qk.permissions(id), queryFn: () => api.myPermissions(id), staleTime: 30_000 });
  const held = new Set(q.data?.permissions ?? []);
  return { ...q, can: (node: string) => held.has(node) };
}

export function usePermissionCatalogue() {
  return useQuery({ queryKey: qk.catalogue, queryFn: api.permissionCatalogue, staleTime: Infinity });
}

export function useMe() {
  return useQuery({ queryKey: qk.me, queryFn: api.me, staleTime: 5 * 60_000 });
}

export function useBlueprints() {
  return useQuery({ queryKey: qk.blueprints, queryFn: api.blueprints, staleTime: 5 * 60_000 });
}

export function useLocations() {
  return useQuery({ queryKey: qk.locations, queryFn: api.locations, staleTime: 5 * 60_000 });
}

export function useServers() {
  return useQuery({ queryKey: qk.servers, queryFn: api.servers, refetchInterval: 5000 });
}

export function useServer(id: string) {
  return useQuery({
    queryKey: qk.server(id),
    queryFn: () => api.server(id),
    refetchInterval: 15_000,
  });
}
