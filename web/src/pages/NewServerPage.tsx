import { useMemo, useState, type FormEvent, type ReactNode } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, errorMessage } from "../lib/api";
import { qk, useBlueprints, useLocations } from "../lib/queries";
import { href, navigate, paths } from "../lib/router";
import type { Blueprint, Server } from "../lib/types";
import { Button, Card, ErrorBox, Spinner, inputClass } from "../components/ui";

type FieldErrors = Record<string, string>;

export function NewServerPage() {
  const blueprints = useBlueprints();
  const locations = useLocations();
  const queryClient = useQueryClient();

  const [name, setName] = useState("");
  const [chosenBlueprint, setBlueprintId] = useState("");
  const [chosenLocation, setLocationId] = useState("");
  // Until the user picks, the first blueprint / location is preselected.
  const blueprintId = chosenBlueprint || blueprints.data?.[0]?.id || "";
  const locationId = chosenLocation || locations.data?.[0]?.id || "";
  // Values the user typed, per blueprint; untouched variables fall back to their default.
  const [edits, setEdits] = useState<Record<string, Record<string, string>>>({});
  const [fieldErrors, setFieldErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);


  const blueprint: Blueprint | undefined = useMemo(
    () => blueprints.data?.find((b) => b.id === blueprintId),
    [blueprints.data, blueprintId],
  );
  const editable = useMemo(
    () => (blueprint?.variables ?? []).filter((v) => v.user_editable),
    [blueprint],
  );

  const varValue = (env: string, def: string): string => edits[blueprintId]?.[env] ?? def ?? "";
  const setVar = (env: string, value: string) =>
    setEdits((prev) => ({ ...prev, [blueprintId]: { ...prev[blueprintId], [env]: value } }));

  const create = useMutation({
    mutationFn: api.createServer,
    onSuccess: async (server: Server) => {
      queryClient.setQueryData(qk.server(server.id), server);
      await queryClient.invalidateQueries({ queryKey: qk.servers, exact: true });
      navigate(paths.server(server.id));
    },
    onError: (err) => {
      if (err instanceof ApiError && Object.keys(err.fields).length > 0) {
        setFieldErrors(err.fields);
        setFormError(err.message);
      } else {
        setFieldErrors({});
        setFormError(errorMessage(err));
      }
    },
  });

  function submit(e: FormEvent) {
    e.preventDefault();
    setFieldErrors({});
    setFormError(null);
    const variables: Record<string, string> = {};
    for (const v of editable) variables[v.env] = varValue(v.env, v.default);
    create.mutate({ name: name.trim(), blueprint_id: blueprintId, location_id: locationId, variables });
  }

  // Field keys the API might use for a variable.
  const varError = (env: string): string | undefined =>
    fieldErrors[`variables.${env}`] ?? fieldErrors[`variables[${env}]`] ?? fieldErrors[env];
  const knownKeys = new Set<string>(["name", "blueprint_id", "location_id"]);
  for (const v of editable) {
    knownKeys.add(`variables.${v.env}`);
    knownKeys.add(`variables[${v.env}]`);
    knownKeys.add(v.env);
  }
  const otherFieldErrors = Object.entries(fieldErrors).filter(([k]) => !knownKeys.has(k));

  if (blueprints.isPending || locations.isPending) return <Spinner label="Loading form" />;
  if (blueprints.isError || locations.isError) {
    return (
      <ErrorBox>Couldn't load the form: {errorMessage(blueprints.error ?? locations.error)}</ErrorBox>
    );
  }

  return (
    <div className="mx-auto max-w-2xl space-y-6">
      <div>
        <a href={href(paths.servers)} className="text-sm text-zinc-400 hover:text-zinc-200">
          ← Servers
        </a>
        <h1 className="mt-1 text-xl font-semibold text-white">New server</h1>
      </div>
      <Card className="p-5 sm:p-6">
        <form onSubmit={submit} noValidate className="space-y-5" data-testid="create-form">
          {formError && <ErrorBox testId="create-error">{formError}</ErrorBox>}
          {otherFieldErrors.length > 0 && (
            <ul className="list-inside list-disc text-sm text-rose-300">
              {otherFieldErrors.map(([k, msg]) => (
                <li key={k}>
                  <code>{k}</code>: {msg}
                </li>
              ))}
            </ul>
          )}

          <Field id="create-name" label="Name" error={fieldErrors.name} errorTestId="error-name">
            <input
              id="create-name"
              data-testid="create-name"
              className={inputClass}
              value={name}
              onChange={(e) => setName(e.target.value)}
              autoComplete="off"
              aria-invalid={fieldErrors.name ? true : undefined}
              aria-describedby={fieldErrors.name ? "create-name-error" : undefined}
              placeholder="My survival world"
            />
          </Field>

          <div className="grid gap-5 sm:grid-cols-2">
            <Field
              id="create-blueprint"
              label="Blueprint"
              error={fieldErrors.blueprint_id}
              errorTestId="error-blueprint_id"
              hint={blueprint?.description}
            >
              <select
                id="create-blueprint"
                data-testid="create-blueprint"
                className={inputClass}
                value={blueprintId}
                onChange={(e) => setBlueprintId(e.target.value)}
                aria-invalid={fieldErrors.blueprint_id ? true : undefined}
                aria-describedby={fieldErrors.blueprint_id ? "create-blueprint-error" : undefined}
              >
                {blueprints.data.length === 0 && <option value="">No blueprints available</option>}
                {groupByCategory(blueprints.data).map(([category, items]) => (
                  <optgroup key={category} label={category}>
                    {items.map((b) => (
                      <option key={b.id} value={b.id}>
                        {b.name}
                      </option>
                    ))}
                  </optgroup>
                ))}
              </select>
            </Field>

            <Field
              id="create-location"
              label="Location"
              error={fieldErrors.location_id}
              errorTestId="error-location_id"
            >
              <select
                id="create-location"
                data-testid="create-location"
                className={inputClass}
                value={locationId}
                onChange={(e) => setLocationId(e.target.value)}
                aria-invalid={fieldErrors.location_id ? true : undefined}
                aria-describedby={fieldErrors.location_id ? "create-location-error" : undefined}
              >
                {locations.data.length === 0 && <option value="">No locations available</option>}
                {locations.data.map((l) => (
                  <option key={l.id} value={l.id}>
                    {l.name}
                  </option>
                ))}
              </select>
            </Field>
          </div>

          {editable.length > 0 && (
            <fieldset className="space-y-4 border-t border-zinc-800 pt-5">
              <legend className="mb-1 text-sm font-semibold text-zinc-200">Startup variables</legend>
              {editable.map((v) => {
                const id = `var-${v.env}`;
                const err = varError(v.env);
                return (
                  <Field
                    key={v.env}
                    id={id}
                    label={v.name}
                    error={err}
                    errorTestId={`error-var-${v.env}`}
                    hint={v.description}
                    meta={v.env}
                  >
                    <input
                      id={id}
                      data-testid={id}
                      name={v.env}
                      className={`${inputClass} font-mono`}
                      value={varValue(v.env, v.default)}
                      onChange={(e) => setVar(v.env, e.target.value)}
                      autoComplete="off"
                      spellCheck={false}
                      aria-invalid={err ? true : undefined}
                      aria-describedby={[v.description ? `${id}-hint` : "", err ? `${id}-error` : ""]
                        .filter(Boolean)
                        .join(" ") || undefined}
                    />
                  </Field>
                );
              })}
            </fieldset>
          )}

          <div className="flex flex-col-reverse gap-2 border-t border-zinc-800 pt-5 sm:flex-row sm:justify-end">
            <Button variant="ghost" onClick={() => navigate(paths.servers)}>
              Cancel
            </Button>
            <Button
              type="submit"
              variant="primary"
              data-testid="create-submit"
              disabled={create.isPending}
            >
              {create.isPending ? "Creating…" : "Create server"}
            </Button>
          </div>
        </form>
      </Card>
    </div>
  );
}

function Field({
  id,
  label,
  error,
  errorTestId,
  hint,
  meta,
  children,
}: {
  id: string;
  label: string;
  error?: string;
  errorTestId: string;
  hint?: string;
  meta?: string;
  children: ReactNode;
}) {
  return (
    <div className="space-y-1.5">
      <div className="flex items-baseline justify-between gap-2">
        <label htmlFor={id} className="block text-sm font-medium text-zinc-300">
          {label}
        </label>
        {meta && <code className="text-xs text-zinc-500">{meta}</code>}
      </div>
      {children}
      {hint && (
        <p id={`${id}-hint`} className="text-xs text-zinc-500">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} data-testid={errorTestId} className="text-sm text-rose-300" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

function groupByCategory(list: Blueprint[]): [string, Blueprint[]][] {
  const groups = new Map<string, Blueprint[]>();
  for (const b of list) {
    const key = b.category || "Other";
    const arr = groups.get(key) ?? [];
    arr.push(b);
    groups.set(key, arr);
  }
  return [...groups.entries()];
}
