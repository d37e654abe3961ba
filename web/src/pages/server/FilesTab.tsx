import { useState, type FormEvent } from "react";
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, errorMessage } from "../../lib/api";
import { qk } from "../../lib/queries";
import { navigate, paths, queryParams, usePath, withQuery } from "../../lib/router";
import { formatBytes } from "../../lib/format";
import type { FileEntry } from "../../lib/types";
import { CodeEditor, languageFor } from "../../components/CodeEditor";
import { Notice, splitErrors, TextField } from "../../components/form";
import { Button, Card, ErrorBox, Spinner } from "../../components/ui";

/** Files up to this size are uploaded through the API in one request; larger ones go to storage first. */
const INLINE_UPLOAD_BYTES = 96 * 1024;

export function joinPath(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, "")}/${name}`.replace(/^(?!\/)/, "/");
}

function parentOf(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

function validName(name: string): string | null {
  if (!name.trim()) return "Enter a name.";
  if (name.includes("/")) return "A name can't contain “/”.";
  if (name === "." || name === "..") return "Choose another name.";
  return null;
}

function b64ToText(b64: string): string | null {
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  if (bytes.includes(0)) return null;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

async function fileToB64(file: File): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

function startDownload(url: string, name: string) {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
}

export function FilesTab({ serverId, can }: { serverId: string; can: (node: string) => boolean }) {
  const fullPath = usePath();
  const params = queryParams(fullPath);
  const dir = params.get("path") || "/";
  const editing = params.get("file");
  const base = paths.serverTab(serverId, "files");
  const go = (next: { path?: string; file?: string | null }) =>
    navigate(
      withQuery(base, {
        path: next.path ?? dir,
        file: next.file === undefined ? (editing ?? "") : (next.file ?? ""),
      }),
    );

  if (editing) {
    return (
      <FileEditor
        key={editing}
        serverId={serverId}
        path={editing}
        canSave={can("file.update") || can("file.create")}
        onClose={() => go({ file: null })}
      />
    );
  }
  return (
    <DirectoryView
      serverId={serverId}
      dir={dir}
      can={can}
      openDir={(p) => go({ path: p, file: null })}
      openFile={(p) => go({ file: p })}
    />
  );
}

function Breadcrumbs({ dir, openDir }: { dir: string; openDir: (p: string) => void }) {
  const parts = dir.split("/").filter(Boolean);
  return (
    <nav aria-label="Folder path">
      <ol className="flex flex-wrap items-center gap-1 font-mono text-sm" data-testid="files-breadcrumbs">
        <li>
          <button
            type="button"
            data-testid="crumb"
            className="rounded px-1 text-indigo-300 hover:underline focus-visible:outline-2 focus-visible:outline-indigo-400 aria-[current=page]:text-zinc-100"
            aria-current={parts.length === 0 ? "page" : undefined}
            onClick={() => openDir("/")}
          >
            /
          </button>
        </li>
        {parts.map((p, i) => {
          const to = `/${parts.slice(0, i + 1).join("/")}`;
          const last = i === parts.length - 1;
          return (
            <li key={to} className="flex items-center gap-1">
              {i > 0 && <span className="text-zinc-600" aria-hidden="true">/</span>}
              <button
                type="button"
                data-testid="crumb"
                aria-current={last ? "page" : undefined}
                className="rounded px-1 text-indigo-300 hover:underline focus-visible:outline-2 focus-visible:outline-indigo-400 aria-[current=page]:text-zinc-100"
                onClick={() => openDir(to)}
              >
                {p}
              </button>
            </li>
          );
        })}
      </ol>
    </nav>
  );
}

type Panel = { kind: "folder" } | { kind: "file" } | { kind: "rename"; entry: FileEntry } | { kind: "delete"; entry: FileEntry } | null;

function DirectoryView({
  serverId,
  dir,
  can,
  openDir,
  openFile,
}: {
  serverId: string;
  dir: string;
  can: (node: string) => boolean;
  openDir: (p: string) => void;
  openFile: (p: string) => void;
}) {
  const queryClient = useQueryClient();
  const list = useInfiniteQuery({
    queryKey: qk.files(serverId, dir),
    queryFn: ({ pageParam }) => api.listFiles(serverId, dir, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next,
  });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.files(serverId, dir) });
  const [panel, setPanel] = useState<Panel>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [rowError, setRowError] = useState<{ name: string; message: string } | null>(null);

  const download = useMutation({
    mutationFn: (entry: FileEntry) => api.downloadFile(serverId, joinPath(dir, entry.name)),
    onMutate: () => setRowError(null),
    onSuccess: (res, entry) => startDownload(res.url, entry.name),
    onError: (err, entry) => setRowError({ name: entry.name, message: errorMessage(err) }),
  });

  const entries = (list.data?.pages ?? []).flatMap((p) => p.entries);
  const sorted = [...entries].sort((a, b) =>
    a.type === b.type ? a.name.localeCompare(b.name) : a.type === "directory" ? -1 : b.type === "directory" ? 1 : 0,
  );
  const notFound = list.error instanceof ApiError && list.error.status === 404;

  return (
    <section aria-labelledby="files-heading" className="space-y-4">
      <h2 id="files-heading" className="sr-only">
        Files
      </h2>
      <div className="flex flex-wrap items-center justify-between gap-3">
        <Breadcrumbs dir={dir} openDir={openDir} />
        <div className="flex flex-wrap gap-2">
          {can("file.create") && (
            <>
              <Button data-testid="new-folder" onClick={() => setPanel({ kind: "folder" })}>
                New folder
              </Button>
              <Button data-testid="new-file" onClick={() => setPanel({ kind: "file" })}>
                New file
              </Button>
              <UploadButton serverId={serverId} dir={dir} onDone={(n) => { setNotice(n); void refresh(); }} />
            </>
          )}
          <Button variant="ghost" onClick={() => void refresh()} aria-label="Refresh the file list">
            Refresh
          </Button>
        </div>
      </div>

      {notice && <Notice testId="files-notice">{notice}</Notice>}

      {panel?.kind === "folder" && (
        <NameForm
          id="new-folder-name"
          taken={entries.map((e) => e.name)}
          label="New folder name"
          submit="Create folder"
          onCancel={() => setPanel(null)}
          action={(name) => api.createDirectory(serverId, joinPath(dir, name))}
          onDone={(name) => {
            setPanel(null);
            setNotice(`Folder “${name}” created.`);
            void refresh();
          }}
        />
      )}
      {panel?.kind === "file" && (
        <NameForm
          id="new-file-name"
          taken={entries.map((e) => e.name)}
          label="New file name"
          submit="Create file"
          onCancel={() => setPanel(null)}
          action={(name) => api.writeFile(serverId, joinPath(dir, name), "")}
          onDone={(name) => {
            setPanel(null);
            void refresh();
            openFile(joinPath(dir, name));
          }}
        />
      )}
      {panel?.kind === "rename" && (
        <NameForm
          id="rename-name"
          taken={entries.map((e) => e.name)}
          label={`Rename “${panel.entry.name}” to`}
          submit="Rename"
          initial={panel.entry.name}
          onCancel={() => setPanel(null)}
          action={(name) =>
            api.renameFile(serverId, joinPath(dir, panel.entry.name), joinPath(dir, name))
          }
          onDone={(name) => {
            setPanel(null);
            setNotice(`Renamed to “${name}”.`);
            void refresh();
          }}
        />
      )}
      {panel?.kind === "delete" && (
        <DeleteConfirm
          serverId={serverId}
          path={joinPath(dir, panel.entry.name)}
          entry={panel.entry}
          onCancel={() => setPanel(null)}
          onDone={() => {
            setNotice(`“${panel.entry.name}” deleted.`);
            setPanel(null);
            void refresh();
          }}
        />
      )}

      {list.isPending && <Spinner label="Loading files" />}
      {list.isError && (
        <ErrorBox testId="files-error">
          {notFound ? "This folder doesn't exist." : errorMessage(list.error)}
        </ErrorBox>
      )}

      {list.isSuccess && (
        <Card className="overflow-hidden">
          <ul className="divide-y divide-zinc-800" data-testid="file-list">
            {dir !== "/" && (
              <li>
                <button
                  type="button"
                  className="flex w-full items-center gap-3 px-4 py-2.5 text-left text-sm text-zinc-300 hover:bg-zinc-800/60 focus-visible:outline-2 focus-visible:-outline-offset-2 focus-visible:outline-indigo-400"
                  onClick={() => openDir(parentOf(dir))}
                  data-testid="file-up"
                >
                  <span aria-hidden="true">↑</span> Parent folder
                </button>
              </li>
            )}
            {sorted.length === 0 && (
              <li className="px-4 py-6 text-center text-sm text-zinc-500">This folder is empty.</li>
            )}
            {sorted.map((e) => (
              <li
                key={e.name}
                data-testid="file-row"
                data-name={e.name}
                data-type={e.type}
                className="flex flex-col gap-2 px-4 py-2.5 sm:flex-row sm:items-center"
              >
                <button
                  type="button"
                  data-testid="file-open"
                  className="flex min-w-0 flex-1 items-center gap-3 rounded text-left text-sm text-zinc-100 hover:text-indigo-200 focus-visible:outline-2 focus-visible:outline-indigo-400 disabled:cursor-default disabled:hover:text-zinc-100"
                  disabled={e.type !== "directory" && (e.type !== "file" || !can("file.read-content"))}
                  onClick={() =>
                    e.type === "directory" ? openDir(joinPath(dir, e.name)) : openFile(joinPath(dir, e.name))
                  }
                >
                  <span aria-hidden="true" className="w-4 text-center text-zinc-500">
                    {e.type === "directory" ? "▸" : e.type === "symlink" ? "↪" : "·"}
                  </span>
                  <span className="truncate font-mono">
                    {e.name}
                    {e.type === "directory" ? "/" : ""}
                  </span>
                  <span className="sr-only">({e.type})</span>
                </button>
                <div className="flex flex-wrap items-center gap-x-3 gap-y-1 pl-7 sm:pl-0">
                  <span className="font-mono text-xs text-zinc-500">
                    {e.type === "file" ? formatBytes(e.size) : ""}
                  </span>
                  <span className="hidden font-mono text-xs text-zinc-500 sm:inline">{e.mode}</span>
                  {e.type === "file" && can("file.read-content") && (
                    <Button
                      variant="ghost"
                      className="px-2 py-1 text-xs"
                      data-testid="file-download"
                      aria-label={`Download ${e.name}`}
                      disabled={download.isPending}
                      onClick={() => download.mutate(e)}
                    >
                      Download
                    </Button>
                  )}
                  {can("file.update") && (
                    <Button
                      variant="ghost"
                      className="px-2 py-1 text-xs"
                      data-testid="file-rename"
                      aria-label={`Rename ${e.name}`}
                      onClick={() => setPanel({ kind: "rename", entry: e })}
                    >
                      Rename
                    </Button>
                  )}
                  {can("file.delete") && (
                    <Button
                      variant="ghost"
                      className="px-2 py-1 text-xs text-rose-300"
                      data-testid="file-delete"
                      aria-label={`Delete ${e.name}`}
                      onClick={() => setPanel({ kind: "delete", entry: e })}
                    >
                      Delete
                    </Button>
                  )}
                </div>
                {rowError?.name === e.name && (
                  <p className="text-sm text-rose-300 sm:basis-full" role="alert" data-testid="file-row-error">
                    {rowError.message}
                  </p>
                )}
              </li>
            ))}
          </ul>
          {list.hasNextPage && (
            <div className="border-t border-zinc-800 p-3 text-center">
              <Button
                onClick={() => void list.fetchNextPage()}
                disabled={list.isFetchingNextPage}
                data-testid="files-more"
              >
                {list.isFetchingNextPage ? "Loading…" : "Show more"}
              </Button>
            </div>
          )}
        </Card>
      )}
    </section>
  );
}

function NameForm({
  id,
  label,
  submit,
  initial = "",
  taken = [],
  action,
  onDone,
  onCancel,
}: {
  id: string;
  label: string;
  submit: string;
  initial?: string;
  /** Names already in the folder (creating over one would replace it). */
  taken?: readonly string[];
  action: (name: string) => Promise<unknown>;
  onDone: (name: string) => void;
  onCancel: () => void;
}) {
  const [name, setName] = useState(initial);
  const [error, setError] = useState<string | null>(null);
  const m = useMutation({
    mutationFn: (n: string) => action(n),
    onMutate: () => setError(null),
    onSuccess: (_res, n) => onDone(n),
    onError: (err) => {
      const { fields, general } = splitErrors(err, ["path", "target"]);
      setError(fields.path ?? fields.target ?? general);
    },
  });
  const onSubmit = (ev: FormEvent) => {
    ev.preventDefault();
    const problem = validName(name);
    if (problem) return setError(problem);
    if (name.trim() !== initial && taken.includes(name.trim()))
      return setError("Something with this name is already in this folder.");
    m.mutate(name.trim());
  };
  return (
    <Card className="p-4">
      <form onSubmit={onSubmit} className="flex flex-col gap-3 sm:flex-row sm:items-start" noValidate>
        <div className="flex-1">
          <TextField
            id={id}
            label={label}
            value={name}
            autoFocus
            autoComplete="off"
            spellCheck={false}
            error={error ?? undefined}
            onChange={(ev) => setName(ev.target.value)}
            onKeyDown={(ev) => ev.key === "Escape" && onCancel()}
          />
        </div>
        <div className="flex gap-2 sm:pt-7">
          <Button type="submit" variant="primary" disabled={m.isPending} data-testid={`${id}-submit`}>
            {m.isPending ? "Working…" : submit}
          </Button>
          <Button variant="ghost" onClick={onCancel}>
            Cancel
          </Button>
        </div>
      </form>
    </Card>
  );
}

function DeleteConfirm({
  serverId,
  path,
  entry,
  onDone,
  onCancel,
}: {
  serverId: string;
  path: string;
  entry: FileEntry;
  onDone: () => void;
  onCancel: () => void;
}) {
  const m = useMutation({ mutationFn: () => api.deleteFiles(serverId, [path]), onSuccess: onDone });
  return (
    <div
      role="alertdialog"
      aria-labelledby="file-delete-text"
      className="space-y-3 rounded-md border border-rose-500/30 bg-rose-500/10 p-3"
    >
      <p id="file-delete-text" className="text-sm text-rose-100">
        Delete <strong className="font-mono">{entry.name}</strong>
        {entry.type === "directory" ? " and everything in it" : ""}? This can't be undone.
      </p>
      {m.isError && (
        <p className="text-sm text-rose-300" role="alert" data-testid="file-delete-error">
          {errorMessage(m.error)}
        </p>
      )}
      <div className="flex gap-2">
        <Button variant="danger" autoFocus data-testid="file-delete-confirm" disabled={m.isPending} onClick={() => m.mutate()}>
          {m.isPending ? "Deleting…" : "Yes, delete"}
        </Button>
        <Button variant="ghost" data-testid="file-delete-cancel" disabled={m.isPending} onClick={onCancel}>
          Cancel
        </Button>
      </div>
    </div>
  );
}

function UploadButton({ serverId, dir, onDone }: { serverId: string; dir: string; onDone: (notice: string) => void }) {
  const [error, setError] = useState<string | null>(null);
  const m = useMutation({
    mutationFn: async (file: File) => {
      const target = joinPath(dir, file.name);
      if (file.size <= INLINE_UPLOAD_BYTES) return api.writeFileB64(serverId, target, await fileToB64(file));
      const slot = await api.uploadUrl(serverId);
      let res: Response;
      try {
        res = await fetch(slot.url, { method: "PUT", body: file });
      } catch {
        throw new Error("The upload could not reach storage.");
      }
      if (!res.ok) throw new Error(`The upload failed (${res.status}).`);
      return api.pullUpload(serverId, slot.key, target);
    },
    onMutate: () => setError(null),
    onSuccess: (_res, file) => onDone(`Uploaded “${file.name}”.`),
    onError: (err) => setError(errorMessage(err)),
  });
  return (
    <div className="flex flex-col">
      <label
        className={`inline-flex cursor-pointer items-center justify-center rounded-md bg-zinc-800 px-3 py-2 text-sm font-medium text-zinc-100 ring-1 ring-inset ring-zinc-700 hover:bg-zinc-700 has-[:focus-visible]:outline-2 has-[:focus-visible]:outline-offset-2 has-[:focus-visible]:outline-indigo-400 ${m.isPending ? "opacity-60" : ""}`}
      >
        {m.isPending ? "Uploading…" : "Upload"}
        <input
          id="file-upload"
          data-testid="file-upload"
          type="file"
          className="sr-only"
          disabled={m.isPending}
          aria-describedby={error ? "file-upload-error" : undefined}
          onChange={(ev) => {
            const f = ev.target.files?.[0];
            ev.target.value = "";
            if (f) m.mutate(f);
          }}
        />
      </label>
      {error && (
        <p id="file-upload-error" data-testid="error-file-upload" role="alert" className="mt-1 text-sm text-rose-300">
          {error}
        </p>
      )}
    </div>
  );
}

function FileEditor({
  serverId,
  path,
  canSave,
  onClose,
}: {
  serverId: string;
  path: string;
  canSave: boolean;
  onClose: () => void;
}) {
  const file = useQuery({
    queryKey: ["servers", serverId, "file", path],
    queryFn: () => api.readFile(serverId, path),
    gcTime: 0,
    staleTime: Infinity,
    retry: false,
  });
  const [text, setText] = useState<string | null>(null);
  const [savedAt, setSavedAt] = useState<Date | null>(null);
  const [savedText, setSavedText] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: (content: string) => api.writeFile(serverId, path, content),
    onSuccess: (_res, content) => {
      setSavedText(content);
      setSavedAt(new Date());
    },
  });
  const original = file.data ? b64ToText(file.data.content_b64) : null;
  const dirty = text !== null && text !== (savedText ?? original);
  const doSave = () => {
    if (canSave && text !== null && !save.isPending) save.mutate(text);
  };
  const name = path.split("/").pop() ?? path;

  return (
    <section aria-labelledby="editor-path" className="space-y-3">
      <div className="flex flex-wrap items-center justify-between gap-3">
        <div className="min-w-0">
          <h2 id="editor-path" className="truncate font-mono text-sm text-zinc-100" data-testid="editor-path">
            {path}
          </h2>
          <p className="text-xs text-zinc-500">
            {languageFor(path).name}
            {file.data ? ` · ${formatBytes(file.data.size)}` : ""}
            {dirty ? " · unsaved changes" : ""}
          </p>
        </div>
        <div className="flex gap-2">
          {canSave && (
            <Button
              variant="primary"
              data-testid="file-save"
              disabled={!dirty || save.isPending}
              onClick={doSave}
              title="Save (Ctrl+S)"
            >
              {save.isPending ? "Saving…" : "Save"}
            </Button>
          )}
          <Button data-testid="file-close" onClick={onClose}>
            Close
          </Button>
        </div>
      </div>
      {save.isError && <ErrorBox testId="file-save-error">{errorMessage(save.error)}</ErrorBox>}
      {savedAt && !dirty && !save.isPending && (
        <Notice testId="file-saved">Saved {name}.</Notice>
      )}
      {file.isPending && <Spinner label="Opening file" />}
      {file.isError && (
        <ErrorBox testId="file-open-error">
          {file.error instanceof ApiError && file.error.status === 413
            ? "This file is too large to edit here; download it instead."
            : errorMessage(file.error)}
        </ErrorBox>
      )}
      {file.isSuccess && original === null && (
        <ErrorBox testId="file-binary">This looks like a binary file; download it instead.</ErrorBox>
      )}
      {file.isSuccess && original !== null && (
        <div className="overflow-hidden rounded-lg border border-zinc-800">
          <CodeEditor
            path={path}
            initial={original}
            readOnly={!canSave}
            labelledBy="editor-path"
            onChange={(t) => {
              setText(t);
              setSavedAt(null);
            }}
            onSave={doSave}
          />
        </div>
      )}
    </section>
  );
}
