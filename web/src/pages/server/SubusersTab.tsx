import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, errorMessage } from "../../lib/api";
import { qk } from "../../lib/queries";
import type { Subuser } from "../../lib/types";
import { PermissionPicker } from "../../components/PermissionPicker";
import { Notice, splitErrors, TextField } from "../../components/form";
import { Button, Card, ErrorBox, Spinner } from "../../components/ui";

export function SubusersTab({ serverId, can }: { serverId: string; can: (node: string) => boolean }) {
  const subusers = useQuery({ queryKey: qk.subusers(serverId), queryFn: () => api.subusers(serverId) });
  const [inviting, setInviting] = useState(false);
  const [editing, setEditing] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  return (
    <section aria-labelledby="subusers-heading" className="space-y-4">
      <div className="flex flex-wrap items-center justify-between gap-3">
        <div>
          <h2 id="subusers-heading" className="text-base font-semibold text-white">
            Subusers
          </h2>
          <p className="text-sm text-zinc-400">People who can use this server, with what each may do.</p>
        </div>
        {can("user.create") && !inviting && (
          <Button variant="primary" data-testid="invite-subuser" onClick={() => setInviting(true)}>
            Invite subuser
          </Button>
        )}
      </div>
      {notice && <Notice testId="subusers-notice">{notice}</Notice>}
      {inviting && (
        <InviteForm
          serverId={serverId}
          grantable={can}
          onCancel={() => setInviting(false)}
          onDone={(s) => {
            setInviting(false);
            setNotice(`${s.email} can now use this server.`);
          }}
        />
      )}
      {subusers.isPending && <Spinner label="Loading subusers" />}
      {subusers.isError && <ErrorBox testId="subusers-error">{errorMessage(subusers.error)}</ErrorBox>}
      {subusers.isSuccess && subusers.data.length === 0 && (
        <Card className="px-6 py-8 text-center text-sm text-zinc-400">No subusers yet.</Card>
      )}
      {subusers.isSuccess && subusers.data.length > 0 && (
        <ul className="space-y-2" data-testid="subuser-list">
          {subusers.data.map((s) => (
            <li key={s.user_id} data-testid="subuser-row" data-email={s.email}>
              <Card className="p-4">
                <div className="flex flex-wrap items-center justify-between gap-3">
                  <div className="min-w-0">
                    <div className="truncate text-sm font-medium text-white" data-testid="subuser-email">
                      {s.email}
                    </div>
                    <div className="text-xs text-zinc-500" data-testid="subuser-permissions">
                      {s.permissions.length} permission{s.permissions.length === 1 ? "" : "s"}:{" "}
                      <span className="font-mono">{s.permissions.join(", ") || "none"}</span>
                    </div>
                  </div>
                  <div className="flex gap-2">
                    {can("user.update") && editing !== s.user_id && (
                      <Button data-testid="subuser-edit" aria-label={`Edit ${s.email}`} onClick={() => setEditing(s.user_id)}>
                        Edit
                      </Button>
                    )}
                    {can("user.delete") && (
                      <RemoveButton serverId={serverId} subuser={s} onDone={() => setNotice(`${s.email} was removed.`)} />
                    )}
                  </div>
                </div>
                {editing === s.user_id && (
                  <EditForm
                    serverId={serverId}
                    subuser={s}
                    grantable={can}
                    onCancel={() => setEditing(null)}
                    onDone={() => {
                      setEditing(null);
                      setNotice(`Permissions of ${s.email} saved.`);
                    }}
                  />
                )}
              </Card>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function InviteForm({
  serverId,
  grantable,
  onDone,
  onCancel,
}: {
  serverId: string;
  grantable: (node: string) => boolean;
  onDone: (s: Subuser) => void;
  onCancel: () => void;
}) {
  const queryClient = useQueryClient();
  const [email, setEmail] = useState("");
  const [perms, setPerms] = useState<Set<string>>(new Set(["settings.read", "console.read", "console.history"]));
  const [errors, setErrors] = useState<{ email?: string; permissions?: string; general?: string | null }>({});
  const m = useMutation({
    mutationFn: () => api.inviteSubuser(serverId, email.trim(), [...perms]),
    onMutate: () => setErrors({}),
    onSuccess: async (s) => {
      await queryClient.invalidateQueries({ queryKey: qk.subusers(serverId) });
      onDone(s);
    },
    onError: (err) => {
      const { fields, general } = splitErrors(err, ["email", "permissions"]);
      setErrors({ ...fields, general });
    },
  });
  const onSubmit = (ev: FormEvent) => {
    ev.preventDefault();
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]{2,}$/.test(email.trim())) return setErrors({ email: "Enter an email address." });
    m.mutate();
  };
  return (
    <Card className="p-4">
      <form onSubmit={onSubmit} className="space-y-4" noValidate aria-labelledby="invite-heading">
        <h3 id="invite-heading" className="text-sm font-semibold text-zinc-200">
          Invite a subuser
        </h3>
        <TextField
          id="subuser-email"
          label="Email of their StellarStack account"
          type="email"
          autoComplete="off"
          autoFocus
          value={email}
          error={errors.email}
          onChange={(e) => setEmail(e.target.value)}
        />
        <PermissionPicker idPrefix="subuser" value={perms} onChange={setPerms} grantable={grantable} error={errors.permissions} />
        {errors.general && <ErrorBox testId="subuser-invite-error">{errors.general}</ErrorBox>}
        <div className="flex gap-2">
          <Button type="submit" variant="primary" data-testid="subuser-invite-submit" disabled={m.isPending}>
            {m.isPending ? "Inviting…" : "Invite"}
          </Button>
          <Button variant="ghost" onClick={onCancel}>
            Cancel
          </Button>
        </div>
      </form>
    </Card>
  );
}

function EditForm({
  serverId,
  subuser,
  grantable,
  onDone,
  onCancel,
}: {
  serverId: string;
  subuser: Subuser;
  grantable: (node: string) => boolean;
  onDone: () => void;
  onCancel: () => void;
}) {
  const queryClient = useQueryClient();
  const [perms, setPerms] = useState<Set<string>>(new Set(subuser.permissions));
  const [error, setError] = useState<string | null>(null);
  const m = useMutation({
    mutationFn: () => api.updateSubuser(serverId, subuser.user_id, [...perms]),
    onMutate: () => setError(null),
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: qk.subusers(serverId) });
      onDone();
    },
    onError: (err) => setError(errorMessage(err)),
  });
  return (
    <form
      className="mt-4 space-y-4 border-t border-zinc-800 pt-4"
      onSubmit={(e) => {
        e.preventDefault();
        m.mutate();
      }}
    >
      <PermissionPicker idPrefix="edit" value={perms} onChange={setPerms} grantable={grantable} error={error ?? undefined} />
      <div className="flex gap-2">
        <Button type="submit" variant="primary" data-testid="subuser-save" disabled={m.isPending}>
          {m.isPending ? "Saving…" : "Save permissions"}
        </Button>
        <Button variant="ghost" onClick={onCancel}>
          Cancel
        </Button>
      </div>
    </form>
  );
}

function RemoveButton({ serverId, subuser, onDone }: { serverId: string; subuser: Subuser; onDone: () => void }) {
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const m = useMutation({
    mutationFn: () => api.removeSubuser(serverId, subuser.user_id),
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: qk.subusers(serverId) });
      onDone();
    },
  });
  if (!confirming)
    return (
      <Button
        className="text-rose-300"
        data-testid="subuser-remove"
        aria-label={`Remove ${subuser.email}`}
        onClick={() => setConfirming(true)}
      >
        Remove
      </Button>
    );
  return (
    <div role="alertdialog" aria-label={`Remove ${subuser.email}?`} className="flex flex-wrap items-center gap-2">
      {m.isError && <span className="text-sm text-rose-300" role="alert">{errorMessage(m.error)}</span>}
      <Button variant="danger" autoFocus data-testid="subuser-remove-confirm" disabled={m.isPending} onClick={() => m.mutate()}>
        {m.isPending ? "Removing…" : "Yes, remove"}
      </Button>
      <Button variant="ghost" onClick={() => setConfirming(false)}>
        Cancel
      </Button>
    </div>
  );
}
