import { useQuery } from "@tanstack/react-query";
import { api } from "./api";

export const qk = {
  me: ["me"] as const,
  servers: ["servers"] as const,
  server: (id: string) => ["servers", id] as const,
  blueprints: ["blueprints"] as const,
  locations: ["locations"] as const,
};

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
