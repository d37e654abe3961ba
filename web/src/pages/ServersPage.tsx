import { useMemo } from "react";
import { useBlueprints, useServers } from "../lib/queries";
import { href, navigate, paths } from "../lib/router";
import { serverAddress } from "../lib/format";
import { errorMessage } from "../lib/api";
import { StatusBadge } from "../components/StatusBadge";
import { Button, Card, ErrorBox, Spinner } from "../components/ui";

export function ServersPage() {
  const servers = useServers();
  const blueprints = useBlueprints();

  const blueprintNames = useMemo(() => {
    const map = new Map<string, string>();
    for (const b of blueprints.data ?? []) map.set(b.id, b.name);
    return map;
  }, [blueprints.data]);

  const list = useMemo(
    () => [...(servers.data ?? [])].sort((a, b) => a.name.localeCompare(b.name)),
    [servers.data],
  );

  return (
    <div className="space-y-6">
      <div className="flex flex-wrap items-center justify-between gap-3">
        <div>
          <h1 className="text-xl font-semibold text-white">Servers</h1>
          <p className="text-sm text-zinc-400">Your game servers. Updated every few seconds.</p>
        </div>
        <Button variant="primary" data-testid="new-server" onClick={() => navigate(paths.newServer)}>
          <span aria-hidden="true">+</span> New server
        </Button>
      </div>

      {servers.isPending && <Spinner label="Loading servers" />}
      {servers.isError && (
        <ErrorBox testId="servers-error">Couldn't load servers: {errorMessage(servers.error)}</ErrorBox>
      )}

      {servers.isSuccess && list.length === 0 && (
        <Card className="px-6 py-12 text-center">
          <p className="text-zinc-300">You don't have any servers yet.</p>
          <p className="mt-1 text-sm text-zinc-500">Create one to get started.</p>
        </Card>
      )}

      {list.length > 0 && (
        <ul className="space-y-2" data-testid="server-list">
          {list.map((s) => {
            const address = serverAddress(s);
            return (
              <li key={s.id}>
                <a
                  href={href(paths.server(s.id))}
                  data-testid="server-row"
                  data-server-id={s.id}
                  className="flex flex-col gap-2 rounded-lg border border-zinc-800 bg-zinc-900/60 px-4 py-3 transition-colors hover:border-zinc-700 hover:bg-zinc-900 focus-visible:outline-2 focus-visible:outline-indigo-400 sm:flex-row sm:items-center sm:gap-4"
                >
                  <div className="min-w-0 flex-1">
                    <div className="truncate font-medium text-white" data-testid="server-name">
                      {s.name}
                    </div>
                    <div className="truncate text-sm text-zinc-400" data-testid="server-blueprint">
                      {blueprintNames.get(s.blueprint_id) ?? s.blueprint_id}
                    </div>
                  </div>
                  <div className="flex items-center justify-between gap-4 sm:justify-end">
                    <code
                      className="truncate font-mono text-sm text-zinc-300"
                      data-testid="server-address"
                    >
                      {address ?? "no address"}
                    </code>
                    <StatusBadge status={s.status} testId="server-status" />
                  </div>
                </a>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}
