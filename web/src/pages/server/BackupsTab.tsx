import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, errorMessage } from "../../lib/api";
import { qk } from "../../lib/queries";
import type { Backup, BackupList } from "../../lib/types";
import { formatBytes, formatTime, toDate } from "../../lib/format";
import { Notice, splitErrors, TextField } from "../../components/form";
import { Button, Card, ErrorBox, Spinner } from "../../components/ui";

function startDownload(url: string) {
  const a = document.createElement("a");
  a.href = url;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
}

const STATUS_CLASS: Record<string, string> = {
  completed: "bg-emerald-500/15 text-emerald-300 ring-emerald-500/30",
  pending: "bg-amber-500/15 text-amber-300 ring-amber-500/30",
  failed: "bg-rose-500/15 text-rose-300 ring-rose-500/30",
};

/** Backups: list (polled while one is pending), create, download, restore, lock, delete. */
export function BackupsTab({ serverId, can }: { serverId: string; can: (node: string) => boolean }) {
  const backups = useQuery({
    queryKey: qk.backups(serverId),
    queryFn: () => api.backups(serverId),
    // A new backup is pending until the node reports it: poll until none is.
    refetchInterval: (q) => (q.state.data?.backups.some((b) => b.status === "pending") ? 1000 : false),
  });
  const [creating, setCreating] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const list = backups.data?.backups ?? [];

  return (
    <section aria-labelledby="backups-heading" className="space-y-4">
      <div className="flex flex-wrap items-center justify-between gap-3">
        <div>
          <h2 id="backups-heading" className="text-base font-semibold text-white">
            Backups
          </h2>
          <p className="text-sm text-zinc-400" data-testid="backups-limit">
            {backups.isSuccess
              ? `${list.length} of ${backups.data.limit} backups used. Locked backups cannot be deleted.`
              : "Archives of the server's files."}
          </p>
        </div>
        {can("backup.create") && !creating && (
          <Button
            variant="primary"
            data-testid="backup-create"
            onClick={() => {
              setNotice(null);
              setCreating(true);
            }}
          >
            Create backup
          </Button>
        )}
      </div>
      {notice && <Notice testId="backups-notice">{notice}</Notice>}
      {creating && (
        <CreateForm
          serverId={serverId}
          onCancel={() => setCreating(false)}
          onDone={(b) => {
            setCreating(false);
            setNotice(`Backup “${b.name}” started; it appears as completed when the node has uploaded it.`);
          }}
        />
      )}
      {backups.isPending && <Spinner label="Loading backups" />}
      {backups.isError && <ErrorBox testId="backups-error">{errorMessage(backups.error)}</ErrorBox>}
      {backups.isSuccess && list.length === 0 && (
        <Card className="px-6 py-8 text-center text-sm text-zinc-400">No backups yet.</Card>
      )}
      {list.length > 0 && (
        <ul className="space-y-2" data-testid="backup-list">
          {list.map((b) => (
            <BackupRow key={b.id} serverId={serverId} backup={b} can={can} onNotice={setNotice} />
          ))}
        </ul>
      )}
    </section>
  );
}

function CreateForm({
  serverId,
  onCancel,
  onDone,
}: {
  serverId: string;
  onCancel: () => void;
  onDone: (b: Backup) => void;
}) {
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const m = useMutation({
    mutationFn: () => api.createBackup(serverId, name.trim()),
    onSuccess: (b) => {
      // Show it at once (pending); the list then polls until it completes.
      queryClient.setQueryData<BackupList>(qk.backups(serverId), (old) =>
        old ? { ...old, backups: [b, ...old.backups.filter((x) => x.id !== b.id)] } : old,
      );
      void queryClient.invalidateQueries({ queryKey: qk.backups(serverId), exact: true });
      onDone(b);
    },
  });
  const err = m.isError ? splitErrors(m.error, ["name"]) : null;
  return (
    <Card className="p-4">
      <form
        className="space-y-3"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          m.mutate();
        }}
      >
        <TextField
          id="backup-name"
          label="Name (optional)"
          value={name}
          maxLength={128}
          autoFocus
          placeholder="backup <date>"
          error={err?.fields.name}
          onChange={(e) => setName(e.target.value)}
        />
        {err?.general && <ErrorBox testId="backup-create-error">{err.general}</ErrorBox>}
        <div className="flex gap-2">
          <Button type="submit" variant="primary" data-testid="backup-create-submit" disabled={m.isPending}>
            {m.isPending ? "Starting…" : "Start backup"}
          </Button>
          <Button variant="ghost" onClick={onCancel} disabled={m.isPending}>
            Cancel
          </Button>
        </div>
      </form>
    </Card>
  );
}

type Confirming = "restore" | "delete" | null;

function BackupRow({
  serverId,
  backup: b,
  can,
  onNotice,
}: {
  serverId: string;
  backup: Backup;
  can: (node: string) => boolean;
  onNotice: (s: string | null) => void;
}) {
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState<Confirming>(null);
  const [wipe, setWipe] = useState(false);
  const [rowError, setRowError] = useState<string | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.backups(serverId), exact: true });
  const start = () => {
    setRowError(null);
    onNotice(null);
  };
  const fail = (err: unknown) => setRowError(errorMessage(err));

  const download = useMutation({
    mutationFn: () => api.downloadBackup(serverId, b.id),
    onMutate: start,
    onSuccess: (res) => startDownload(res.url),
    onError: fail,
  });
  const lock = useMutation({
    mutationFn: () => api.lockBackup(serverId, b.id, !b.locked),
    onMutate: start,
    onSuccess: refresh,
    onError: fail,
  });
  const restore = useMutation({
    mutationFn: () => api.restoreBackup(serverId, b.id, wipe),
    onMutate: start,
    onSuccess: () => {
      setConfirming(null);
      onNotice(`Restoring “${b.name}”; the server stays offline until it is done.`);
    },
    onError: fail,
  });
  const del = useMutation({
    mutationFn: () => api.deleteBackup(serverId, b.id),
    onMutate: start,
    onSuccess: async () => {
      onNotice(`Backup “${b.name}” was deleted.`);
      await refresh();
    },
    onError: fail,
  });
  const busy = download.isPending || lock.isPending || restore.isPending || del.isPending;
  const completed = b.status === "completed";
  const created = toDate(b.created_at);

  return (
    <li data-testid="backup-row" data-name={b.name} data-status={b.status} data-locked={b.locked ? "true" : "false"}>
      <Card className="p-4">
        <div className="flex flex-wrap items-center justify-between gap-3">
          <div className="min-w-0">
            <div className="flex flex-wrap items-center gap-2">
              <span className="truncate text-sm font-medium text-white" data-testid="backup-name">
                {b.name}
              </span>
              <span
                data-testid="backup-status"
                className={`rounded-full px-2 py-0.5 text-xs ring-1 ring-inset ${STATUS_CLASS[b.status] ?? STATUS_CLASS.pending}`}
              >
                {b.status === "pending" ? "in progress…" : b.status}
              </span>
              {b.locked && (
                <span className="text-xs text-amber-300" data-testid="backup-locked">
                  locked
                </span>
              )}
            </div>
            <div className="mt-0.5 text-xs text-zinc-500">
              <time dateTime={created.toISOString()}>
                {created.toLocaleDateString()} {formatTime(created)}
              </time>
              {completed && <> · {formatBytes(b.size_bytes)}</>}
            </div>
          </div>
          <div className="flex flex-wrap gap-2">
            {can("backup.download") && completed && (
              <Button data-testid="backup-download" disabled={busy} onClick={() => download.mutate()}>
                Download
              </Button>
            )}
            {can("backup.restore") && completed && (
              <Button data-testid="backup-restore" disabled={busy} onClick={() => setConfirming("restore")}>
                Restore
              </Button>
            )}
            {can("backup.lock") && (
              <Button data-testid="backup-lock" disabled={busy} onClick={() => lock.mutate()}>
                {b.locked ? "Unlock" : "Lock"}
              </Button>
            )}
            {can("backup.delete") && (
              <Button
                data-testid="backup-delete"
                className="text-rose-300"
                disabled={busy || b.locked}
                title={b.locked ? "Unlock it first" : undefined}
                onClick={() => setConfirming("delete")}
              >
                Delete
              </Button>
            )}
          </div>
        </div>
        {confirming && (
          <div
            className="mt-3 space-y-3 rounded-md border border-rose-500/30 bg-rose-500/10 p-3"
            role="alertdialog"
            aria-labelledby={`backup-confirm-${b.id}`}
          >
            <p id={`backup-confirm-${b.id}`} className="text-sm text-rose-100">
              {confirming === "restore"
                ? `Restore “${b.name}” over the server's files? The server must be offline.`
                : `Delete “${b.name}”? This can't be undone.`}
            </p>
            {confirming === "restore" && (
              <label className="flex items-center gap-2 text-sm text-zinc-300">
                <input
                  type="checkbox"
                  id={`backup-restore-wipe-${b.id}`}
                  data-testid="backup-restore-wipe"
                  checked={wipe}
                  onChange={(e) => setWipe(e.target.checked)}
                />
                Delete the current files first
              </label>
            )}
            <div className="flex gap-2">
              <Button
                variant="danger"
                autoFocus
                data-testid={confirming === "restore" ? "backup-restore-confirm" : "backup-delete-confirm"}
                disabled={busy}
                onClick={() => (confirming === "restore" ? restore.mutate() : del.mutate())}
              >
                {confirming === "restore" ? "Yes, restore" : "Yes, delete"}
              </Button>
              <Button variant="ghost" data-testid="backup-confirm-cancel" disabled={busy} onClick={() => setConfirming(null)}>
                Cancel
              </Button>
            </div>
          </div>
        )}
        {rowError && (
          <p className="mt-2 text-sm text-rose-300" role="alert" data-testid="backup-row-error">
            {rowError}
          </p>
        )}
      </Card>
    </li>
  );
}
