import { useState, type FormEvent, type ReactNode } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, errorMessage } from "../../lib/api";
import { qk, useMe } from "../../lib/queries";
import { ADMIN_SECTIONS, href, paths, type AdminSection } from "../../lib/router";
import { toDate } from "../../lib/format";
import type { AdminNode, AdminUser, BlueprintImport, Enrollment } from "../../lib/types";
import { ActivityList } from "../../components/ActivityList";
import { Notice, splitErrors, TextField } from "../../components/form";
import { Button, Card, ErrorBox, inputClass, Spinner } from "../../components/ui";

const LABELS: Record<AdminSection, string> = {
  nodes: "Nodes",
  locations: "Locations",
  users: "Users",
  blueprints: "Blueprints",
  activity: "Activity",
};

export function AdminPage({ section }: { section: AdminSection }) {
  const me = useMe();
  if (me.isPending) return <Spinner label="Loading" />;
  if (!me.data?.admin) {
    return <ErrorBox testId="admin-denied">This area is for administrators.</ErrorBox>;
  }
  return (
    <div className="space-y-5">
      <h1 className="text-xl font-semibold text-white">Admin</h1>
      <nav aria-label="Admin sections" className="-mx-4 overflow-x-auto px-4 sm:mx-0 sm:px-0">
        <ul className="flex gap-1 border-b border-zinc-800">
          {ADMIN_SECTIONS.map((s) => (
            <li key={s}>
              <a
                href={href(paths.admin(s))}
                data-testid={`admin-tab-${s}`}
                aria-current={s === section ? "page" : undefined}
                className="-mb-px block whitespace-nowrap border-b-2 border-transparent px-3 py-2 text-sm font-medium text-zinc-400 hover:text-zinc-100 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-400 aria-[current=page]:border-indigo-400 aria-[current=page]:text-white"
              >
                {LABELS[s]}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      {section === "nodes" && <NodesSection />}
      {section === "locations" && <LocationsSection />}
      {section === "users" && <UsersSection />}
      {section === "blueprints" && <BlueprintsSection />}
      {section === "activity" && (
        <ActivityList queryKey={qk.adminActivity} fetchPage={(c) => api.adminActivity(c)} showServer />
      )}
    </div>
  );
}

function SectionHead({ title, text, children }: { title: string; text: string; children?: ReactNode }) {
  return (
    <div className="flex flex-wrap items-center justify-between gap-3">
      <div>
        <h2 className="text-base font-semibold text-white">{title}</h2>
        <p className="text-sm text-zinc-400">{text}</p>
      </div>
      {children}
    </div>
  );
}

function ago(epochS: number | null): string {
  if (!epochS) return "never";
  const s = Math.max(0, Math.round(Date.now() / 1000 - epochS));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return toDate(epochS).toLocaleString();
}

// ---- nodes ---------------------------------------------------------------------------

function NodesSection() {
  const nodes = useQuery({ queryKey: qk.adminNodes, queryFn: api.adminNodes, refetchInterval: 10_000 });
  const [creating, setCreating] = useState(false);
  return (
    <section className="space-y-4" aria-label="Nodes">
      <SectionHead title="Nodes" text="Machines that run game servers. Online while their heartbeats arrive.">
        {!creating && (
          <Button variant="primary" data-testid="node-new" onClick={() => setCreating(true)}>
            New node
          </Button>
        )}
      </SectionHead>
      {creating && <NodeForm onDone={() => setCreating(false)} />}
      {nodes.isPending && <Spinner label="Loading nodes" />}
      {nodes.isError && <ErrorBox testId="nodes-error">{errorMessage(nodes.error)}</ErrorBox>}
      {nodes.isSuccess && nodes.data.length === 0 && (
        <Card className="px-6 py-8 text-center text-sm text-zinc-400">No nodes yet.</Card>
      )}
      {nodes.isSuccess && nodes.data.length > 0 && (
        <ul className="space-y-2" data-testid="node-list">
          {nodes.data.map((n) => (
            <NodeRow key={n.id} node={n} />
          ))}
        </ul>
      )}
    </section>
  );
}

function NodeRow({ node }: { node: AdminNode }) {
  const [enrollment, setEnrollment] = useState<Enrollment | null>(null);
  const enroll = useMutation({ mutationFn: () => api.nodeEnrollment(node.id), onSuccess: setEnrollment });
  const online = node.status === "online";
  return (
    <li data-testid="node-row" data-node-id={node.id}>
      <Card className="space-y-3 p-4">
        <div className="flex flex-wrap items-center justify-between gap-3">
          <div className="min-w-0">
            <div className="flex flex-wrap items-center gap-2">
              <span className="truncate font-medium text-white" data-testid="node-name">
                {node.name}
              </span>
              <span
                data-testid="node-status"
                data-status={node.status}
                className={`inline-flex items-center gap-1.5 rounded-full px-2 py-0.5 text-xs ring-1 ring-inset ${online ? "bg-emerald-500/10 text-emerald-300 ring-emerald-500/30" : "bg-zinc-500/10 text-zinc-400 ring-zinc-500/30"}`}
              >
                <span className={`size-1.5 rounded-full ${online ? "bg-emerald-400" : "bg-zinc-500"}`} aria-hidden="true" />
                {node.status}
              </span>
            </div>
            <div className="mt-1 flex flex-wrap gap-x-3 gap-y-0.5 text-xs text-zinc-400">
              <span className="font-mono">{node.id}</span>
              <span>{node.address}</span>
              <span>location {node.location_id}</span>
              <span>
                ports {node.port_start}–{node.port_end}
              </span>
              <span>
                {node.memory_mb} MiB · {node.disk_mb} MiB disk
              </span>
              <span data-testid="node-last-seen">last seen {ago(node.last_seen)}</span>
              {node.runtime && <span>{node.runtime}{node.isolated === false ? " (unisolated)" : ""}</span>}
            </div>
          </div>
          <Button data-testid="node-enroll" disabled={enroll.isPending} onClick={() => enroll.mutate()}>
            {enroll.isPending ? "Creating…" : enrollment ? "New enrollment command" : "Enrollment command"}
          </Button>
        </div>
        {enroll.isError && <ErrorBox testId="enroll-error">{errorMessage(enroll.error)}</ErrorBox>}
        {enrollment && <EnrollmentBox enrollment={enrollment} />}
      </Card>
    </li>
  );
}

function EnrollmentBox({ enrollment }: { enrollment: Enrollment }) {
  const [copied, setCopied] = useState<"yes" | "no" | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(enrollment.command);
      setCopied("yes");
    } catch {
      setCopied("no");
    }
  };
  return (
    <div className="space-y-2 rounded-md border border-indigo-400/30 bg-indigo-500/10 p-3" data-testid="enrollment">
      <p className="text-sm text-indigo-100">
        Run this on the new machine. The token works once, until {toDate(enrollment.expires_at).toLocaleString()}; a new
        command replaces it.
      </p>
      <pre className="overflow-x-auto rounded bg-zinc-950 p-2 text-xs text-zinc-100" tabIndex={0} aria-label="Enrollment command">
        <code data-testid="enroll-command">{enrollment.command}</code>
      </pre>
      <div className="flex flex-wrap items-center gap-2">
        <Button data-testid="enroll-copy" onClick={() => void copy()}>
          Copy command
        </Button>
        <span role="status" className="text-xs text-zinc-400">
          {copied === "yes" ? "Copied." : copied === "no" ? "Couldn't copy: select the command and copy it." : ""}
        </span>
      </div>
    </div>
  );
}

function NumberField(props: Parameters<typeof TextField>[0]) {
  return <TextField type="number" inputMode="numeric" {...props} />;
}

function NodeForm({ onDone }: { onDone: () => void }) {
  const queryClient = useQueryClient();
  const locations = useQuery({ queryKey: qk.adminLocations, queryFn: api.adminLocations });
  const [f, setF] = useState({
    name: "",
    location_id: "",
    address: "",
    memory_mb: "4096",
    disk_mb: "20480",
    port_start: "25565",
    port_end: "25665",
  });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<string | null>(null);
  const shown = Object.keys(f);
  const m = useMutation({
    mutationFn: () =>
      api.createNode({
        name: f.name.trim(),
        location_id: f.location_id,
        address: f.address.trim(),
        memory_mb: Number(f.memory_mb),
        disk_mb: Number(f.disk_mb),
        port_start: Number(f.port_start),
        port_end: Number(f.port_end),
      }),
    onMutate: () => {
      setErrors({});
      setGeneral(null);
    },
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: qk.adminNodes });
      await queryClient.invalidateQueries({ queryKey: qk.adminLocations });
      onDone();
    },
    onError: (err) => {
      const s = splitErrors(err, shown);
      setErrors(s.fields);
      setGeneral(s.general);
    },
  });
  const set = (k: keyof typeof f) => (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value });
  const submit = (ev: FormEvent) => {
    ev.preventDefault();
    const local: Record<string, string> = {};
    if (!f.name.trim()) local.name = "Enter a name.";
    if (!f.location_id) local.location_id = "Choose a location.";
    if (!f.address.trim()) local.address = "Enter the address players connect to.";
    if (Object.keys(local).length) return setErrors(local);
    m.mutate();
  };
  return (
    <Card className="p-4">
      <form onSubmit={submit} noValidate className="space-y-4" aria-label="New node">
        <div className="grid gap-4 sm:grid-cols-2">
          <TextField id="node-name" label="Name" value={f.name} onChange={set("name")} error={errors.name} autoFocus />
          <div className="space-y-1.5">
            <label htmlFor="node-location" className="block text-sm font-medium text-zinc-300">
              Location
            </label>
            <select
              id="node-location"
              className={inputClass}
              value={f.location_id}
              onChange={set("location_id")}
              aria-invalid={errors.location_id ? true : undefined}
              aria-describedby={errors.location_id ? "node-location-error" : undefined}
            >
              <option value="">Choose…</option>
              {(locations.data ?? []).map((l) => (
                <option key={l.id} value={l.id}>
                  {l.name} ({l.id})
                </option>
              ))}
            </select>
            {errors.location_id && (
              <p id="node-location-error" data-testid="error-node-location" role="alert" className="text-sm text-rose-300">
                {errors.location_id}
              </p>
            )}
          </div>
          <TextField
            id="node-address"
            label="Public address"
            hint="The IP or host name players connect to."
            value={f.address}
            onChange={set("address")}
            error={errors.address}
          />
          <NumberField id="node-memory" label="Memory (MiB)" value={f.memory_mb} onChange={set("memory_mb")} error={errors.memory_mb} />
          <NumberField id="node-disk" label="Disk (MiB)" value={f.disk_mb} onChange={set("disk_mb")} error={errors.disk_mb} />
          <div className="grid grid-cols-2 gap-3">
            <NumberField id="node-port-start" label="First port" value={f.port_start} onChange={set("port_start")} error={errors.port_start} />
            <NumberField id="node-port-end" label="Last port" value={f.port_end} onChange={set("port_end")} error={errors.port_end} />
          </div>
        </div>
        {general && <ErrorBox testId="node-error">{general}</ErrorBox>}
        <div className="flex gap-2">
          <Button type="submit" variant="primary" data-testid="node-create" disabled={m.isPending}>
            {m.isPending ? "Creating…" : "Create node"}
          </Button>
          <Button variant="ghost" onClick={onDone}>
            Cancel
          </Button>
        </div>
      </form>
    </Card>
  );
}

// ---- locations -----------------------------------------------------------------------

function LocationsSection() {
  const queryClient = useQueryClient();
  const locations = useQuery({ queryKey: qk.adminLocations, queryFn: api.adminLocations });
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<string | null>(null);
  const m = useMutation({
    mutationFn: () => api.createLocation({ name: name.trim(), ...(id.trim() ? { id: id.trim() } : {}) }),
    onMutate: () => {
      setErrors({});
      setGeneral(null);
    },
    onSuccess: async () => {
      setId("");
      setName("");
      await queryClient.invalidateQueries({ queryKey: qk.adminLocations });
      await queryClient.invalidateQueries({ queryKey: qk.locations });
    },
    onError: (err) => {
      const s = splitErrors(err, ["id", "name"]);
      setErrors(s.fields);
      setGeneral(s.general);
    },
  });
  return (
    <section className="space-y-4" aria-label="Locations">
      <SectionHead title="Locations" text="Where nodes are; users pick a location for a new server." />
      <Card className="p-4">
        <form
          noValidate
          aria-label="New location"
          className="grid gap-4 sm:grid-cols-[1fr_1fr_auto] sm:items-start"
          onSubmit={(e) => {
            e.preventDefault();
            if (!name.trim()) return setErrors({ name: "Enter a name." });
            m.mutate();
          }}
        >
          <TextField id="location-name" label="Name" value={name} onChange={(e) => setName(e.target.value)} error={errors.name} />
          <TextField
            id="location-id"
            label="ID (optional)"
            hint="Lowercase, e.g. eu-west"
            value={id}
            onChange={(e) => setId(e.target.value)}
            error={errors.id}
          />
          <Button type="submit" variant="primary" className="sm:mt-7" data-testid="location-create" disabled={m.isPending}>
            {m.isPending ? "Creating…" : "Create location"}
          </Button>
        </form>
        {general && (
          <div className="mt-3">
            <ErrorBox testId="location-error">{general}</ErrorBox>
          </div>
        )}
      </Card>
      {locations.isPending && <Spinner label="Loading locations" />}
      {locations.isError && <ErrorBox>{errorMessage(locations.error)}</ErrorBox>}
      {locations.isSuccess && (
        <Card className="overflow-hidden">
          <ul className="divide-y divide-zinc-800" data-testid="location-list">
            {locations.data.length === 0 && <li className="px-4 py-6 text-center text-sm text-zinc-500">No locations yet.</li>}
            {locations.data.map((l) => (
              <li key={l.id} data-testid="location-row" data-location-id={l.id} className="flex items-center justify-between gap-3 px-4 py-2.5 text-sm">
                <span className="text-zinc-100">{l.name}</span>
                <span className="flex gap-3 text-xs text-zinc-500">
                  <span className="font-mono">{l.id}</span>
                  <span>
                    {l.nodes ?? 0} node{l.nodes === 1 ? "" : "s"}
                  </span>
                </span>
              </li>
            ))}
          </ul>
        </Card>
      )}
    </section>
  );
}

// ---- users ---------------------------------------------------------------------------

function UsersSection() {
  const [users, setUsers] = useState<AdminUser[]>([]);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [admin, setAdmin] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<string | null>(null);
  const [lookup, setLookup] = useState("");
  const create = useMutation({
    mutationFn: () => api.createUser({ email: email.trim(), admin, ...(password ? { password } : {}) }),
    onMutate: () => {
      setErrors({});
      setGeneral(null);
    },
    onSuccess: (u) => {
      setUsers((prev) => [u, ...prev.filter((p) => p.id !== u.id)]);
      setEmail("");
      setPassword("");
      setAdmin(false);
    },
    onError: (err) => {
      const s = splitErrors(err, ["email", "password"]);
      setErrors(s.fields);
      setGeneral(s.general);
    },
  });
  const find = useMutation({
    mutationFn: () => api.adminUser(lookup.trim()),
    onSuccess: (u) => setUsers((prev) => [u, ...prev.filter((p) => p.id !== u.id)]),
  });
  return (
    <section className="space-y-4" aria-label="Users">
      <SectionHead title="Users" text="Create accounts (with a password, or invite by email) and look them up." />
      <Card className="p-4">
        <form
          noValidate
          aria-label="New user"
          className="space-y-4"
          onSubmit={(e) => {
            e.preventDefault();
            if (!/^[^@\s]+@[^@\s]+\.[^@\s]{2,}$/.test(email.trim())) return setErrors({ email: "Enter an email address." });
            create.mutate();
          }}
        >
          <div className="grid gap-4 sm:grid-cols-2">
            <TextField id="user-email" label="Email" type="email" autoComplete="off" value={email} onChange={(e) => setEmail(e.target.value)} error={errors.email} />
            <TextField
              id="user-password"
              label="Password (optional)"
              type="password"
              autoComplete="new-password"
              hint="Leave empty to send an invitation email with a temporary password."
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              error={errors.password}
            />
          </div>
          <label className="inline-flex items-center gap-2 text-sm text-zinc-300">
            <input id="user-admin" type="checkbox" className="size-4 accent-indigo-500" checked={admin} onChange={(e) => setAdmin(e.target.checked)} />
            Administrator
          </label>
          {general && <ErrorBox testId="user-error">{general}</ErrorBox>}
          <div>
            <Button type="submit" variant="primary" data-testid="user-create" disabled={create.isPending}>
              {create.isPending ? "Creating…" : "Create user"}
            </Button>
          </div>
        </form>
      </Card>
      <Card className="p-4">
        <form
          className="flex flex-col gap-3 sm:flex-row sm:items-start"
          aria-label="Find a user"
          onSubmit={(e) => {
            e.preventDefault();
            if (lookup.trim()) find.mutate();
          }}
        >
          <div className="flex-1">
            <TextField
              id="user-lookup"
              label="Find a user by ID"
              value={lookup}
              onChange={(e) => setLookup(e.target.value)}
              error={find.isError ? errorMessage(find.error) : undefined}
            />
          </div>
          <Button type="submit" className="sm:mt-7" disabled={find.isPending}>
            Find
          </Button>
        </form>
      </Card>
      {users.length > 0 && (
        <Card className="overflow-hidden">
          <ul className="divide-y divide-zinc-800" data-testid="user-list">
            {users.map((u) => (
              <li key={u.id} data-testid="user-row" data-user-id={u.id} className="flex flex-wrap items-center justify-between gap-2 px-4 py-2.5 text-sm">
                <span className="text-zinc-100" data-testid="user-row-email">{u.email}</span>
                <span className="flex flex-wrap gap-3 text-xs text-zinc-500">
                  {u.admin && <span className="text-indigo-300">admin</span>}
                  {u.suspended && <span className="text-rose-300">suspended</span>}
                  <span className="font-mono">{u.id}</span>
                </span>
              </li>
            ))}
          </ul>
        </Card>
      )}
    </section>
  );
}

// ---- blueprints ----------------------------------------------------------------------

function BlueprintsSection() {
  const [content, setContent] = useState("");
  const [filename, setFilename] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<BlueprintImport | null>(null);
  const [save, setSave] = useState(false);
  const m = useMutation({
    mutationFn: () => api.importBlueprint(content, filename, save),
    onMutate: () => {
      setError(null);
      setResult(null);
    },
    onSuccess: setResult,
    onError: (err) => {
      const s = splitErrors(err, ["content", "filename"]);
      setError(s.fields.content ?? s.fields.filename ?? s.general);
    },
  });
  return (
    <section className="space-y-4" aria-label="Blueprints">
      <SectionHead
        title="Import a blueprint"
        text="Paste or choose a Pterodactyl/Pelican egg (or a StellarStack blueprint); see how it converts."
      />
      <Card className="p-4">
        <form
          noValidate
          className="space-y-3"
          aria-label="Import an egg"
          onSubmit={(e) => {
            e.preventDefault();
            if (!content.trim()) return setError("Paste an egg or choose a file.");
            m.mutate();
          }}
        >
          <div className="space-y-1.5">
            <label htmlFor="egg-file" className="block text-sm font-medium text-zinc-300">
              Egg file (JSON or YAML)
            </label>
            <input
              id="egg-file"
              data-testid="egg-file"
              type="file"
              accept=".json,.yaml,.yml,application/json"
              className="block w-full text-sm text-zinc-400 file:mr-3 file:rounded-md file:border-0 file:bg-zinc-800 file:px-3 file:py-2 file:text-sm file:text-zinc-100 hover:file:bg-zinc-700"
              onChange={async (e) => {
                const f = e.target.files?.[0];
                if (!f) return;
                setFilename(f.name);
                setContent(await f.text());
              }}
            />
          </div>
          <div className="space-y-1.5">
            <label htmlFor="egg-content" className="block text-sm font-medium text-zinc-300">
              …or paste it
            </label>
            <textarea
              id="egg-content"
              className={`${inputClass} h-48 font-mono text-xs`}
              spellCheck={false}
              value={content}
              aria-invalid={error ? true : undefined}
              aria-describedby={error ? "egg-content-error" : undefined}
              onChange={(e) => {
                setContent(e.target.value);
                setFilename(undefined);
              }}
            />
            {error && (
              <p id="egg-content-error" data-testid="error-egg-content" role="alert" className="text-sm text-rose-300">
                {error}
              </p>
            )}
          </div>
          <label className="flex items-center gap-2 text-sm text-zinc-300">
            <input id="egg-save" type="checkbox" className="size-4 accent-indigo-500" checked={save} onChange={(e) => setSave(e.target.checked)} />
            Also add it to the blueprint catalogue (a new immutable version)
          </label>
          <Button type="submit" variant="primary" data-testid="egg-import" disabled={m.isPending}>
            {m.isPending ? "Importing…" : "Import"}
          </Button>
        </form>
      </Card>
      {result && (
        <Card className="space-y-3 p-4" >
          <div data-testid="import-result" className="space-y-3">
            <h3 className="text-sm font-semibold text-zinc-200">
              {String(result.blueprint.name ?? "Blueprint")}{" "}
              <span className="font-normal text-zinc-500">
                from <span data-testid="import-format">{result.source_format}</span>
              </span>
            </h3>
            {result.version !== undefined && (
              <Notice testId="import-saved">Saved to the catalogue as version {String(result.version)}.</Notice>
            )}
            {result.warnings.length > 0 ? (
              <div className="rounded-md border border-amber-500/30 bg-amber-500/10 p-3">
                <p className="text-sm font-medium text-amber-200">
                  {result.warnings.length} warning{result.warnings.length === 1 ? "" : "s"}
                </p>
                <ul className="mt-1 list-disc space-y-1 pl-5 text-sm text-amber-100" data-testid="import-warnings">
                  {result.warnings.map((w, i) => (
                    <li key={i} data-testid="import-warning">
                      {w}
                    </li>
                  ))}
                </ul>
              </div>
            ) : (
              <Notice testId="import-clean">Converted without warnings.</Notice>
            )}
            <pre className="max-h-[32rem] overflow-auto rounded bg-zinc-950 p-3 text-xs text-zinc-200" data-testid="import-json" tabIndex={0} aria-label="The resulting blueprint as JSON">
              {JSON.stringify(result.blueprint, null, 2)}
            </pre>
          </div>
        </Card>
      )}
    </section>
  );
}
