import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, errorMessage } from "../../lib/api";
import { qk } from "../../lib/queries";
import type { StartupVariable, StartupView } from "../../lib/types";
import { Notice, splitErrors, TextField } from "../../components/form";
import { Button, Card, ErrorBox, inputClass, Spinner } from "../../components/ui";

/** Startup: the command, the image (startup.docker-image) and the variables (startup.update). */
export function StartupTab({ serverId, can }: { serverId: string; can: (node: string) => boolean }) {
  const startup = useQuery({ queryKey: qk.startup(serverId), queryFn: () => api.startup(serverId) });
  // Lives here: the variables form is re-keyed (reset) by the values a save returns.
  const [saved, setSaved] = useState<string[] | null>(null);

  return (
    <section aria-labelledby="startup-heading" className="space-y-4">
      <div>
        <h2 id="startup-heading" className="text-base font-semibold text-white">
          Startup
        </h2>
        <p className="text-sm text-zinc-400">Changes apply the next time the server starts.</p>
      </div>
      {startup.isPending && <Spinner label="Loading startup settings" />}
      {startup.isError && <ErrorBox testId="startup-error">{errorMessage(startup.error)}</ErrorBox>}
      {startup.isSuccess && (
        <>
          <Card className="p-4">
            <h3 className="mb-2 text-sm font-semibold text-zinc-200">Startup command</h3>
            <code
              className="block overflow-x-auto rounded bg-zinc-950 px-3 py-2 font-mono text-xs text-zinc-300"
              data-testid="startup-command"
            >
              {startup.data.startup}
            </code>
          </Card>
          <ImageForm serverId={serverId} view={startup.data} canChange={can("startup.docker-image")} />
          {/* Keyed by the saved values so that a save (or another's change) resets the form. */}
          <VariablesForm
            key={startup.data.variables.map((v) => `${v.env}=${v.value}`).join("\n")}
            serverId={serverId}
            variables={startup.data.variables}
            canUpdate={can("startup.update")}
            saved={saved}
            onSaved={setSaved}
          />
        </>
      )}
    </section>
  );
}

function ImageForm({ serverId, view, canChange }: { serverId: string; view: StartupView; canChange: boolean }) {
  const queryClient = useQueryClient();
  const names = Object.keys(view.images);
  const current = names.find((n) => view.images[n] === view.image) ?? view.image;
  const [choice, setChoice] = useState(current);
  const [saved, setSaved] = useState(false);
  const m = useMutation({
    mutationFn: () => api.setImage(serverId, choice),
    onMutate: () => setSaved(false),
    onSuccess: async () => {
      setSaved(true);
      await queryClient.invalidateQueries({ queryKey: qk.startup(serverId), exact: true });
    },
  });
  const err = m.isError ? splitErrors(m.error, ["image"]) : null;

  return (
    <Card className="p-4">
      <form
        className="space-y-2"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          m.mutate();
        }}
      >
        <label htmlFor="startup-image" className="block text-sm font-semibold text-zinc-200">
          Image
        </label>
        <div className="flex flex-wrap gap-2">
          <select
            id="startup-image"
            data-testid="startup-image"
            className={`${inputClass} min-w-0 flex-1`}
            value={choice}
            disabled={!canChange || names.length < 2}
            aria-invalid={err?.fields.image ? true : undefined}
            aria-describedby={err?.fields.image ? "startup-image-error" : undefined}
            onChange={(e) => setChoice(e.target.value)}
          >
            {!names.includes(current) && <option value={current}>{current}</option>}
            {names.map((n) => (
              <option key={n} value={n}>
                {n} ({view.images[n]})
              </option>
            ))}
          </select>
          {canChange && names.length > 1 && (
            <Button type="submit" data-testid="startup-image-save" disabled={m.isPending || choice === current}>
              {m.isPending ? "Saving…" : "Use image"}
            </Button>
          )}
        </div>
        {err?.fields.image && (
          <p id="startup-image-error" data-testid="error-startup-image" className="text-sm text-rose-300" role="alert">
            {err.fields.image}
          </p>
        )}
        {err?.general && <ErrorBox testId="startup-image-error">{err.general}</ErrorBox>}
        {saved && <Notice testId="startup-image-saved">Image changed; it is used at the next start.</Notice>}
      </form>
    </Card>
  );
}

function ruleHint(v: StartupVariable): string {
  const parts: string[] = [];
  if (v.description) parts.push(v.description);
  const r = v.rules;
  if (r["required"]) parts.push("Required.");
  if (typeof r["regex"] === "string") parts.push(`Must match ${r["regex"]}.`);
  if (Array.isArray(r["in"])) parts.push(`One of: ${(r["in"] as unknown[]).join(", ")}.`);
  if (v.default) parts.push(`Default: ${v.default}.`);
  return parts.join(" ");
}

function VariablesForm({
  serverId,
  variables,
  canUpdate,
  saved,
  onSaved,
}: {
  serverId: string;
  variables: StartupVariable[];
  canUpdate: boolean;
  saved: string[] | null;
  onSaved: (names: string[] | null) => void;
}) {
  const queryClient = useQueryClient();
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(variables.map((v) => [v.env, v.value])),
  );
  const changed = variables.filter((v) => v.editable && values[v.env] !== v.value);
  const m = useMutation({
    mutationFn: () =>
      api.updateStartup(serverId, Object.fromEntries(changed.map((v) => [v.env, values[v.env] ?? ""]))),
    onMutate: () => onSaved(null),
    onSuccess: (view) => {
      onSaved(changed.map((v) => v.env));
      queryClient.setQueryData(qk.startup(serverId), view);
    },
  });
  const shownNotice = saved;
  const err = m.isError ? splitErrors(m.error, variables.map((v) => `variables.${v.env}`)) : null;

  if (variables.length === 0) {
    return <Card className="px-6 py-8 text-center text-sm text-zinc-400">This blueprint has no variables to show.</Card>;
  }
  return (
    <Card className="p-4">
      <form
        className="space-y-4"
        data-testid="startup-form"
        noValidate
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          if (changed.length === 0) {
            onSaved([]);
            return;
          }
          m.mutate();
        }}
      >
        <h3 className="text-sm font-semibold text-zinc-200">Variables</h3>
        <div className="grid gap-4 sm:grid-cols-2">
          {variables.map((v) => (
            <TextField
              key={v.env}
              id={`startup-var-${v.env}`}
              data-testid={`startup-var-${v.env}`}
              label={`${v.name} (${v.env})`}
              value={values[v.env] ?? ""}
              maxLength={v.max_length ?? undefined}
              readOnly={!canUpdate || !v.editable}
              hint={ruleHint(v) + (v.editable ? "" : " Not editable.")}
              error={err?.fields[`variables.${v.env}`]}
              onChange={(e) => setValues((s) => ({ ...s, [v.env]: e.target.value }))}
            />
          ))}
        </div>
        {err?.general && <ErrorBox testId="startup-save-error">{err.general}</ErrorBox>}
        {shownNotice && (
          <Notice testId="startup-saved">
            {shownNotice.length ? `Saved ${shownNotice.join(", ")}; used at the next start.` : "Nothing changed."}
          </Notice>
        )}
        {canUpdate && (
          <Button type="submit" variant="primary" data-testid="startup-save" disabled={m.isPending}>
            {m.isPending ? "Saving…" : "Save variables"}
          </Button>
        )}
      </form>
    </Card>
  );
}
