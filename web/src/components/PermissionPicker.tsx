import { useEffect, useRef } from "react";
import { usePermissionCatalogue } from "../lib/queries";
import { errorMessage } from "../lib/api";
import { ErrorBox, Spinner } from "./ui";

const GROUP_LABELS: Record<string, string> = {
  control: "Power and commands",
  console: "Console",
  stats: "Stats",
  file: "Files",
  backup: "Backups",
  schedule: "Schedules",
  user: "Subusers",
  startup: "Startup",
  settings: "Settings",
  allocation: "Ports",
  activity: "Activity",
  database: "Databases",
};

function GroupCheckbox({
  id,
  checked,
  indeterminate,
  disabled,
  onChange,
  label,
}: {
  id: string;
  checked: boolean;
  indeterminate: boolean;
  disabled: boolean;
  onChange: (on: boolean) => void;
  label: string;
}) {
  const ref = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (ref.current) ref.current.indeterminate = indeterminate;
  }, [indeterminate]);
  return (
    <label className="inline-flex items-center gap-2 text-xs text-zinc-400">
      <input
        ref={ref}
        id={id}
        data-testid={id}
        type="checkbox"
        className="size-4 accent-indigo-500"
        checked={checked}
        disabled={disabled}
        onChange={(e) => onChange(e.target.checked)}
      />
      {label}
    </label>
  );
}

/**
 * Permission nodes grouped as in the catalogue, each with its description. Nodes the editor
 * doesn't hold can't be granted (the API refuses it too) and are shown disabled.
 */
export function PermissionPicker({
  idPrefix,
  value,
  onChange,
  grantable,
  error,
}: {
  idPrefix: string;
  value: ReadonlySet<string>;
  onChange: (next: Set<string>) => void;
  grantable: (node: string) => boolean;
  error?: string | undefined;
}) {
  const catalogue = usePermissionCatalogue();
  if (catalogue.isPending) return <Spinner label="Loading permissions" />;
  if (catalogue.isError) return <ErrorBox>{errorMessage(catalogue.error)}</ErrorBox>;

  const toggle = (keys: string[], on: boolean) => {
    const next = new Set(value);
    for (const k of keys) if (grantable(k)) (on ? next.add(k) : next.delete(k));
    onChange(next);
  };

  return (
    <div
      className="space-y-3"
      role="group"
      aria-label="Permissions"
      aria-describedby={error ? `error-${idPrefix}-permissions` : undefined}
      aria-invalid={error ? true : undefined}
    >
      <p className="text-xs text-zinc-500">
        “View server details” is needed to open the server at all. Permissions you don't hold yourself
        can't be granted.
      </p>
      <div className="grid gap-3 md:grid-cols-2">
        {catalogue.data.groups.map(({ group, permissions }) => {
          const keys = permissions.map((p) => p.key).filter(grantable);
          const selected = keys.filter((k) => value.has(k)).length;
          return (
            <fieldset key={group} className="rounded-md border border-zinc-800 p-3" data-testid={`perm-group-${group}`}>
              <legend className="flex w-full items-center justify-between gap-3 px-1 text-sm font-medium text-zinc-200">
                <span>{GROUP_LABELS[group] ?? group}</span>
              </legend>
              <div className="mb-2">
                <GroupCheckbox
                  id={`${idPrefix}-all-${group}`}
                  label="All in this group"
                  checked={keys.length > 0 && selected === keys.length}
                  indeterminate={selected > 0 && selected < keys.length}
                  disabled={keys.length === 0}
                  onChange={(on) => toggle(keys, on)}
                />
              </div>
              <ul className="space-y-1.5">
                {permissions.map((p) => {
                  const id = `${idPrefix}-perm-${p.key.replace(/\./g, "-")}`;
                  const can = grantable(p.key);
                  return (
                    <li key={p.key} className="flex items-start gap-2">
                      <input
                        id={id}
                        data-testid={`perm-${p.key}`}
                        type="checkbox"
                        className="mt-0.5 size-4 shrink-0 accent-indigo-500"
                        checked={value.has(p.key)}
                        disabled={!can}
                        onChange={(e) => toggle([p.key], e.target.checked)}
                      />
                      <label htmlFor={id} className={`text-sm ${can ? "text-zinc-300" : "text-zinc-600"}`}>
                        {p.description}
                        <span className="ml-1 font-mono text-xs text-zinc-500">{p.key}</span>
                        {p.danger && (
                          <span className="ml-1 rounded bg-amber-500/15 px-1 text-xs text-amber-300">sensitive</span>
                        )}
                      </label>
                    </li>
                  );
                })}
              </ul>
            </fieldset>
          );
        })}
      </div>
      {error && (
        <p id={`error-${idPrefix}-permissions`} data-testid={`error-${idPrefix}-permissions`} role="alert" className="text-sm text-rose-300">
          {error}
        </p>
      )}
    </div>
  );
}
