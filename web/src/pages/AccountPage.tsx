import { useState, type FormEvent, type ReactNode } from "react";
import { useMutation } from "@tanstack/react-query";
import { api, errorMessage } from "../lib/api";
import { useMe } from "../lib/queries";
import type { TotpSetup } from "../lib/types";
import { Button, Card, ErrorBox, Spinner } from "../components/ui";
import { Notice, splitErrors, TextField } from "../components/form";
import { QrCode } from "../components/QrCode";
import { MIN_PASSWORD } from "./SignUpPage";

/** The signed-in user's account: password, two-factor, sessions. */
export function AccountPage() {
  const me = useMe();
  return (
    <div className="mx-auto max-w-2xl space-y-6">
      <div className="space-y-1">
        <h1 className="text-xl font-semibold text-white">Account</h1>
        {me.isPending ? (
          <Spinner label="Loading account" />
        ) : me.data ? (
          <p className="text-sm text-zinc-400">
            Signed in as{" "}
            <span className="text-zinc-200" data-testid="account-email">
              {me.data.email}
            </span>
            {me.data.admin && (
              <span className="ml-2 rounded bg-indigo-500/15 px-1.5 py-0.5 text-xs text-indigo-300">
                admin
              </span>
            )}
          </p>
        ) : null}
      </div>
      <PasswordSection email={me.data?.email ?? ""} />
      <TwoFactorSection email={me.data?.email} />
      <SessionsSection />
    </div>
  );
}

function Section({
  id,
  title,
  description,
  children,
}: {
  id: string;
  title: string;
  description?: ReactNode;
  children: ReactNode;
}) {
  return (
    <Card className="p-4 sm:p-6">
      <section aria-labelledby={`${id}-title`} className="space-y-4" data-testid={`${id}-section`}>
        <div className="space-y-1">
          <h2 id={`${id}-title`} className="text-base font-semibold text-white">
            {title}
          </h2>
          {description && <div className="text-sm text-zinc-400">{description}</div>}
        </div>
        {children}
      </section>
    </Card>
  );
}

function PasswordSection({ email }: { email: string }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const change = useMutation({
    mutationFn: () => api.changePassword(current, next),
    onSuccess: () => {
      setCurrent("");
      setNext("");
    },
    onError: (err) => {
      const { fields, general } = splitErrors(err, ["current_password", "new_password"]);
      setFieldErrors(fields);
      setError(general);
    },
  });

  function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    change.reset();
    const local: Record<string, string> = {};
    if (!current) local.current_password = "Enter your current password";
    if (next.length < MIN_PASSWORD) local.new_password = `Use at least ${MIN_PASSWORD} characters`;
    setFieldErrors(local);
    if (!Object.keys(local).length) change.mutate();
  }

  return (
    <Section id="password" title="Password">
      <form onSubmit={submit} noValidate className="space-y-4">
        {change.isSuccess && <Notice testId="password-changed">Your password has been changed.</Notice>}
        {error && <ErrorBox testId="password-error">{error}</ErrorBox>}
        {/* Lets password managers tie the new password to the account. */}
        <input type="text" name="username" autoComplete="username" hidden readOnly value={email} />
        <div className="grid gap-4 sm:grid-cols-2">
          <TextField
            id="current-password"
            label="Current password"
            type="password"
            autoComplete="current-password"
            required
            value={current}
            onChange={(e) => setCurrent(e.target.value)}
            error={fieldErrors.current_password}
          />
          <TextField
            id="new-password"
            label="New password"
            type="password"
            autoComplete="new-password"
            required
            minLength={MIN_PASSWORD}
            value={next}
            onChange={(e) => setNext(e.target.value)}
            hint={`At least ${MIN_PASSWORD} characters.`}
            error={fieldErrors.new_password}
          />
        </div>
        <Button type="submit" variant="primary" disabled={change.isPending}>
          {change.isPending ? "Changing…" : "Change password"}
        </Button>
      </form>
    </Section>
  );
}

type TotpState = "unknown" | "on" | "off";

function TwoFactorSection({ email }: { email: string | undefined }) {
  // The API has no "is two-factor on?" question: we only know what was done on this page.
  const [state, setState] = useState<TotpState>("unknown");
  const [setup, setSetup] = useState<TotpSetup | null>(null);
  const [code, setCode] = useState("");
  const [codeError, setCodeError] = useState<string | undefined>();
  const [confirmOff, setConfirmOff] = useState(false);

  const start = useMutation({
    mutationFn: api.totpSetup,
    onSuccess: (data) => {
      setSetup(data);
      setCode("");
      setCodeError(undefined);
    },
  });
  const verify = useMutation({
    mutationFn: (c: string) => api.totpVerify(c),
    onSuccess: () => {
      setState("on");
      setSetup(null);
      setCode("");
    },
    onError: (err) => setCodeError(splitErrors(err, ["code"]).fields.code),
  });
  const disable = useMutation({
    mutationFn: api.totpDisable,
    onSuccess: () => {
      setState("off");
      setConfirmOff(false);
    },
  });

  function submitCode(e: FormEvent) {
    e.preventDefault();
    verify.reset();
    const clean = code.replace(/\s+/g, "");
    if (!/^[0-9]{6}$/.test(clean)) {
      setCodeError("Enter the 6-digit code your app shows");
      return;
    }
    setCodeError(undefined);
    verify.mutate(clean);
  }

  const verifyGeneral = verify.isError && !codeError ? errorMessage(verify.error) : null;

  return (
    <Section
      id="totp"
      title="Two-factor authentication"
      description={
        <p>
          With two-factor on, signing in also asks for a 6-digit code from an authenticator app
          (1Password, Google Authenticator, Aegis, …).
        </p>
      }
    >
      <p className="text-sm" data-testid="totp-status" data-state={state}>
        {state === "on" && (
          <span className="text-emerald-300">
            Two-factor is on. You'll be asked for a code each time you sign in.
          </span>
        )}
        {state === "off" && <span className="text-amber-300">Two-factor is off.</span>}
        {state === "unknown" && (
          <span className="text-zinc-400">
            The panel can't show whether two-factor is on for your account yet. Set it up to turn
            it on (or to move it to a new device), or turn it off.
          </span>
        )}
      </p>

      {setup ? (
        <div className="space-y-4 rounded-md border border-zinc-800 bg-zinc-950/40 p-4">
          <ol className="list-decimal space-y-1 pl-5 text-sm text-zinc-300">
            <li>Scan the QR code with your authenticator app, or type the key in.</li>
            <li>Enter the 6-digit code the app shows, then turn two-factor on.</li>
          </ol>
          <div className="flex flex-col items-start gap-4 sm:flex-row">
            <QrCode
              value={setup.otpauth_uri}
              label={`QR code to add StellarStack${email ? ` (${email})` : ""} to an authenticator app`}
              testId="totp-qr"
              className="size-44 shrink-0 p-1"
            />
            <div className="min-w-0 space-y-2">
              <p className="text-sm text-zinc-400" id="totp-secret-label">
                Setup key (for manual entry)
              </p>
              <code
                data-testid="totp-secret"
                aria-labelledby="totp-secret-label"
                className="block break-all rounded bg-zinc-900 px-2 py-1.5 font-mono text-sm text-zinc-100 select-all ring-1 ring-zinc-800"
              >
                {setup.secret}
              </code>
              <CopyButton text={setup.secret} />
            </div>
          </div>
          <form onSubmit={submitCode} noValidate className="space-y-3">
            {verifyGeneral && <ErrorBox testId="totp-error">{verifyGeneral}</ErrorBox>}
            <div className="max-w-xs">
              <TextField
                id="totp-verify-code"
                label="Code from the app"
                type="text"
                inputMode="numeric"
                autoComplete="one-time-code"
                pattern="[0-9]{6}"
                maxLength={7}
                required
                value={code}
                onChange={(e) => setCode(e.target.value)}
                error={codeError}
              />
            </div>
            <div className="flex flex-wrap gap-2">
              <Button type="submit" variant="primary" disabled={verify.isPending}>
                {verify.isPending ? "Turning on…" : "Turn on"}
              </Button>
              <Button variant="ghost" onClick={() => setSetup(null)} disabled={verify.isPending}>
                Cancel
              </Button>
            </div>
          </form>
        </div>
      ) : (
        <div className="flex flex-wrap gap-2">
          <Button variant="primary" onClick={() => start.mutate()} disabled={start.isPending}>
            {start.isPending ? "Setting up…" : "Set up two-factor"}
          </Button>
          {!confirmOff && (
            <Button
              variant="secondary"
              onClick={() => {
                disable.reset();
                setConfirmOff(true);
              }}
            >
              Turn off two-factor
            </Button>
          )}
        </div>
      )}
      {start.isError && <ErrorBox testId="totp-setup-error">{errorMessage(start.error)}</ErrorBox>}

      {confirmOff && !setup && (
        <div
          role="alertdialog"
          aria-labelledby="totp-off-text"
          className="space-y-3 rounded-md border border-amber-500/30 bg-amber-500/10 p-3"
        >
          <p id="totp-off-text" className="text-sm text-amber-100">
            Turn off two-factor? Signing in will only need your password.
          </p>
          {disable.isError && <p className="text-sm text-rose-300">{errorMessage(disable.error)}</p>}
          <div className="flex flex-wrap gap-2">
            <Button
              variant="danger"
              data-testid="totp-off-confirm"
              autoFocus
              disabled={disable.isPending}
              onClick={() => disable.mutate()}
            >
              {disable.isPending ? "Turning off…" : "Yes, turn off"}
            </Button>
            <Button variant="ghost" disabled={disable.isPending} onClick={() => setConfirmOff(false)}>
              Cancel
            </Button>
          </div>
        </div>
      )}
    </Section>
  );
}

function CopyButton({ text }: { text: string }) {
  const [copied, setCopied] = useState<"yes" | "no" | null>(null);
  if (!navigator.clipboard) return null; // not a secure context: the key is selectable anyway
  return (
    <div className="flex items-center gap-2">
      <Button
        variant="ghost"
        className="px-2 py-1 text-xs"
        onClick={() =>
          navigator.clipboard.writeText(text).then(
            () => setCopied("yes"),
            () => setCopied("no"),
          )
        }
      >
        Copy key
      </Button>
      <span role="status" className="text-xs text-zinc-500">
        {copied === "yes" ? "Copied" : copied === "no" ? "Couldn't copy: select the key instead" : ""}
      </span>
    </div>
  );
}

function SessionsSection() {
  const out = useMutation({ mutationFn: api.logoutEverywhere });
  return (
    <Section
      id="sessions"
      title="Sessions"
      description={
        <p>
          Signs you out in every browser and app, this one included. Use it if you signed in on a
          shared computer or think someone else has your password.
        </p>
      }
    >
      {out.isError && <ErrorBox testId="sign-out-everywhere-error">{errorMessage(out.error)}</ErrorBox>}
      <Button
        variant="danger"
        data-testid="sign-out-everywhere"
        disabled={out.isPending}
        onClick={() => out.mutate()}
      >
        {out.isPending ? "Signing out…" : "Sign out everywhere"}
      </Button>
    </Section>
  );
}
