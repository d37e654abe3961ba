import { lazy, Suspense, useCallback, useRef, useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, errorMessage } from "../lib/api";
import { qk, useBlueprints, useMyPermissions, useServer } from "../lib/queries";
import { href, navigate, paths, type ServerTab } from "../lib/router";
import { formatBytes, formatDuration, formatTime, serverAddress } from "../lib/format";
import { useServerLive, type ConnectionStatus } from "../lib/useServerLive";
import type { ConsoleMessage, PowerAction, Server, StatsMessage } from "../lib/types";
import { StatusBadge } from "../components/StatusBadge";
import { Console, type ConsoleHandle } from "../components/Console";
import { CommandInput } from "../components/CommandInput";
import { Button, Card, ErrorBox, Spinner } from "../components/ui";
import { SubusersTab } from "./server/SubusersTab";
import { ActivityTab } from "./server/ActivityTab";
import { StartupTab } from "./server/StartupTab";
import { BackupsTab } from "./server/BackupsTab";
import { StatsGraph } from "../components/StatsGraph";

// The file manager carries CodeMirror: load it when the tab is opened.
const FilesTab = lazy(() => import("./server/FilesTab").then((m) => ({ default: m.FilesTab })));

const TABS: { tab: ServerTab; label: string; needs: string | null }[] = [
  { tab: "console", label: "Console", needs: null },
  { tab: "files", label: "Files", needs: "file.read" },
  { tab: "startup", label: "Startup", needs: "startup.read" },
  { tab: "backups", label: "Backups", needs: "backup.read" },
  { tab: "subusers", label: "Subusers", needs: "user.read" },
  { tab: "activity", label: "Activity", needs: "activity.read" },
];

export function ServerPage({ id, tab = "console" }: { id: string; tab?: ServerTab }) {
  const server = useServer(id);

  if (server.isPending) return <Spinner label="Loading server" />;
  if (server.isError) {
    const notFound = server.error instanceof ApiError && server.error.status === 404;
    return (
      <div className="space-y-4">
        <BackLink />
        <ErrorBox testId="server-error">
          {notFound ? "This server doesn't exist (or was deleted)." : errorMessage(server.error)}
        </ErrorBox>
      </div>
    );
  }
  // Keyed so that everything live starts afresh for another server.
  return <ServerView key={server.data.id} server={server.data} tab={tab} />;
}

function BackLink() {
  return (
    <a href={href(paths.servers)} className="text-sm text-zinc-400 hover:text-zinc-200">
      ← Servers
    </a>
  );
}

const POWER: { action: PowerAction; label: string; variant: "primary" | "secondary" | "danger" }[] = [
  { action: "start", label: "Start", variant: "primary" },
  { action: "restart", label: "Restart", variant: "secondary" },
  { action: "stop", label: "Stop", variant: "secondary" },
  { action: "kill", label: "Kill", variant: "danger" },
];

function powerEnabled(action: PowerAction, state: string): boolean {
  switch (action) {
    case "start":
      return state === "offline";
    case "stop":
      return state === "starting" || state === "running";
    case "restart":
      return state === "starting" || state === "running";
    case "kill":
      return state === "starting" || state === "running" || state === "stopping";
  }
}

function ServerView({ server, tab }: { server: Server; tab: ServerTab }) {
  const perms = useMyPermissions(server.id);
  const consoleRef = useRef<ConsoleHandle>(null);
  const blueprints = useBlueprints();
  const onConsole = useCallback((msg: ConsoleMessage) => consoleRef.current?.write(msg), []);
  const live = useServerLive(server.id, server.status, onConsole);
  const state = live.live?.state ?? server.status;
  const address = serverAddress(server);
  const blueprintName = blueprints.data?.find((b) => b.id === server.blueprint_id)?.name;

  const [powerError, setPowerError] = useState<string | null>(null);
  const power = useMutation({
    mutationFn: (action: PowerAction) => api.power(server.id, action),
    onMutate: () => setPowerError(null),
    onError: (err) => setPowerError(errorMessage(err)),
  });

  return (
    <div className="space-y-5">
      <div className="space-y-3">
        <BackLink />
        <div className="flex flex-wrap items-start justify-between gap-4">
          <div className="min-w-0">
            <div className="flex flex-wrap items-center gap-3">
              <h1 className="truncate text-xl font-semibold text-white" data-testid="server-title">
                {server.name}
              </h1>
              <StatusBadge status={state} testId="server-state" />
            </div>
            <div className="mt-1 flex flex-wrap items-center gap-x-3 gap-y-1 text-sm text-zinc-400">
              <code className="font-mono text-zinc-300" data-testid="server-address">
                {address ?? "no address"}
              </code>
              {blueprintName && <span>{blueprintName}</span>}
              {live.live?.detail && <span className="text-zinc-500">{live.live.detail}</span>}
            </div>
          </div>
          <div className="flex flex-wrap gap-2" role="group" aria-label="Power controls">
            {POWER.filter((p) => perms.can(`control.${p.action}`)).map((p) => (
              <Button
                key={p.action}
                variant={p.variant}
                data-testid={`power-${p.action}`}
                disabled={power.isPending || !powerEnabled(p.action, state)}
                onClick={() => power.mutate(p.action)}
              >
                {p.label}
              </Button>
            ))}
          </div>
        </div>
        {powerError && <ErrorBox testId="power-error">{powerError}</ErrorBox>}
      </div>

      <TabBar server={server} tab={tab} can={perms.can} loaded={perms.isSuccess} />

      {tab === "files" && perms.can("file.read") && (
        <Suspense fallback={<Spinner label="Loading files" />}>
          <FilesTab serverId={server.id} can={perms.can} />
        </Suspense>
      )}
      {tab === "startup" && perms.can("startup.read") && <StartupTab serverId={server.id} can={perms.can} />}
      {tab === "backups" && perms.can("backup.read") && <BackupsTab serverId={server.id} can={perms.can} />}
      {tab === "subusers" && perms.can("user.read") && <SubusersTab serverId={server.id} can={perms.can} />}
      {tab === "activity" && perms.can("activity.read") && <ActivityTab serverId={server.id} />}
      {tab !== "console" && perms.isSuccess && !perms.can(TABS.find((t) => t.tab === tab)?.needs ?? "") && (
        <ErrorBox testId="tab-denied">You don't have access to this part of the server.</ErrorBox>
      )}

      {/* The console stays mounted (hidden) on other tabs so that its history and connection live on. */}
      <div className={`grid gap-5 lg:grid-cols-[minmax(0,1fr)_18rem] ${tab === "console" ? "" : "hidden"}`}>
        <section aria-label="Console" className="min-w-0">
          <div className="overflow-hidden rounded-lg border border-zinc-800 bg-zinc-950">
            <div className="flex flex-wrap items-center justify-between gap-2 border-b border-zinc-800 px-3 py-2 text-xs">
              <ConnectionIndicator status={live.connection} error={live.connectionError} />
              <StatsLine stats={live.stats} />
            </div>
            {state !== "offline" && <StatsGraph samples={live.statsHistory} />}
            <div className="px-2 pt-2 pb-1">
              <Console ref={consoleRef} />
            </div>
            {perms.can("control.console") && <CommandInput serverId={server.id} />}
          </div>
        </section>

        <aside className="space-y-5">
          <Card className="p-4">
            <h2 className="mb-3 text-sm font-semibold text-zinc-200">State changes</h2>
            {live.history.length === 0 && (
              <p className="text-sm text-zinc-500">No changes since you opened this page.</p>
            )}
            <ol
              data-testid="state-history"
              className="max-h-72 space-y-1.5 overflow-y-auto text-sm"
              aria-live="polite"
            >
              {live.history.map((e, i) => (
                <li
                  key={`${e.seq}-${i}`}
                  data-state={e.state}
                  className="flex items-center justify-between gap-3"
                >
                  <span className="text-zinc-200">{e.state}</span>{" "}
                  <time
                    dateTime={e.at.toISOString()}
                    className="font-mono text-xs text-zinc-500"
                  >
                    {formatTime(e.at)}
                  </time>
                </li>
              ))}
            </ol>
          </Card>
          {perms.can("settings.delete") && <DangerZone server={server} />}
        </aside>
      </div>
    </div>
  );
}

function TabBar({
  server,
  tab,
  can,
  loaded,
}: {
  server: Server;
  tab: ServerTab;
  can: (node: string) => boolean;
  loaded: boolean;
}) {
  const shown = TABS.filter((t) => t.needs === null || (loaded && can(t.needs)));
  return (
    <nav aria-label="Server sections" className="-mx-4 overflow-x-auto px-4 sm:mx-0 sm:px-0">
      <ul className="flex gap-1 border-b border-zinc-800" data-testid="server-tabs">
        {shown.map((t) => (
          <li key={t.tab}>
            <a
              href={href(paths.serverTab(server.id, t.tab))}
              data-testid={`tab-${t.tab}`}
              aria-current={tab === t.tab ? "page" : undefined}
              className="-mb-px block whitespace-nowrap border-b-2 border-transparent px-3 py-2 text-sm font-medium text-zinc-400 hover:text-zinc-100 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-400 aria-[current=page]:border-indigo-400 aria-[current=page]:text-white"
            >
              {t.label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

function ConnectionIndicator({ status, error }: { status: ConnectionStatus; error: string | null }) {
  const label = { connected: "Connected", connecting: "Connecting…", reconnecting: "Reconnecting…" }[
    status
  ];
  const dot = {
    connected: "bg-emerald-400",
    connecting: "bg-amber-400 animate-pulse",
    reconnecting: "bg-amber-400 animate-pulse",
  }[status];
  return (
    <span
      className="inline-flex items-center gap-1.5 text-zinc-400"
      role="status"
      data-testid="connection-status"
      data-connection={status}
      title={error ?? undefined}
    >
      <span className={`size-2 rounded-full ${dot}`} aria-hidden="true" />
      {label}
      {error && status !== "connected" && <span className="sr-only"> ({error})</span>}
    </span>
  );
}

function StatsLine({ stats }: { stats: StatsMessage | null }) {
  if (!stats) return null;
  const cpu = Number.isFinite(stats.cpu_percent) ? `${stats.cpu_percent.toFixed(1)}%` : "–";
  const mem = Number.isFinite(stats.memory_bytes) ? formatBytes(stats.memory_bytes) : "–";
  const limit =
    Number.isFinite(stats.memory_limit_bytes) && stats.memory_limit_bytes > 0
      ? ` / ${formatBytes(stats.memory_limit_bytes)}`
      : "";
  return (
    <span className="flex flex-wrap gap-x-3 font-mono text-zinc-400" data-testid="server-stats">
      <span>
        CPU <span className="text-zinc-200" data-testid="stats-cpu">{cpu}</span>
      </span>{" "}
      <span>
        Mem <span className="text-zinc-200" data-testid="stats-memory">{mem}{limit}</span>
      </span>{" "}
      {Number.isFinite(stats.uptime_s) && stats.uptime_s > 0 && (
        <span className="hidden sm:inline">Up {formatDuration(stats.uptime_s)}</span>
      )}
    </span>
  );
}

function DangerZone({ server }: { server: Server }) {
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const del = useMutation({
    mutationFn: () => api.deleteServer(server.id),
    onSuccess: async () => {
      queryClient.removeQueries({ queryKey: qk.server(server.id), exact: true });
      await queryClient.invalidateQueries({ queryKey: qk.servers, exact: true });
      navigate(paths.servers);
    },
  });

  return (
    <Card className="border-rose-900/50 p-4">
      <h2 className="text-sm font-semibold text-zinc-200">Delete server</h2>
      <p className="mt-1 text-sm text-zinc-500">Removes the server and all of its files.</p>
      {!confirming ? (
        <Button
          variant="secondary"
          className="mt-3 w-full text-rose-300"
          data-testid="delete-server"
          onClick={() => setConfirming(true)}
        >
          Delete server
        </Button>
      ) : (
        <div
          className="mt-3 space-y-3 rounded-md border border-rose-500/30 bg-rose-500/10 p-3"
          role="alertdialog"
          aria-labelledby="delete-confirm-text"
        >
          <p id="delete-confirm-text" className="text-sm text-rose-100">
            Delete <strong>{server.name}</strong>? This can't be undone.
          </p>
          {del.isError && <p className="text-sm text-rose-300">{errorMessage(del.error)}</p>}
          <div className="flex gap-2">
            <Button
              variant="danger"
              className="flex-1"
              data-testid="delete-confirm"
              disabled={del.isPending}
              onClick={() => del.mutate()}
              autoFocus
            >
              {del.isPending ? "Deleting…" : "Yes, delete"}
            </Button>
            <Button
              variant="ghost"
              data-testid="delete-cancel"
              disabled={del.isPending}
              onClick={() => setConfirming(false)}
            >
              Cancel
            </Button>
          </div>
        </div>
      )}
    </Card>
  );
}
