import { useState, type FormEvent } from "react";
import { api } from "../lib/api";
import { href, navigate, paths, queryParams, usePath, withQuery } from "../lib/router";
import { Button, ErrorBox } from "../components/ui";
import { AuthShell, linkClass, Notice, splitErrors, TextField } from "../components/form";
import { MIN_PASSWORD } from "./SignUpPage";

function BackToSignIn({ email }: { email: string }) {
  return (
    <p>
      <a className={linkClass} href={href(withQuery(paths.login, { email: email.trim() }))}>
        Back to sign in
      </a>
    </p>
  );
}

/** Ask for a reset code by email. The answer is the same whether or not the account exists. */
export function ForgotPasswordPage() {
  const query = queryParams(usePath());
  const [email, setEmail] = useState(() => query.get("email") ?? "");
  const [error, setError] = useState<string | null>(null);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [pending, setPending] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    const who = email.trim();
    if (!who) {
      setFieldErrors({ email: "Enter your email address" });
      return;
    }
    setFieldErrors({});
    setPending(true);
    try {
      await api.forgotPassword(who);
      navigate(withQuery(paths.reset, { email: who, sent: "1" }));
    } catch (err) {
      const { fields, general } = splitErrors(err, ["email"]);
      setFieldErrors(fields);
      setError(general);
      setPending(false);
    }
  }

  return (
    <AuthShell title="Reset your password" titleId="forgot-title" footer={<BackToSignIn email={email} />}>
      <form onSubmit={submit} noValidate className="space-y-5">
        <p className="text-sm text-zinc-400">
          Enter your account's email address and we'll send you a code to set a new password.
        </p>
        {error && <ErrorBox testId="forgot-error">{error}</ErrorBox>}
        <TextField
          id="forgot-email"
          label="Email"
          type="email"
          autoComplete="email"
          required
          autoFocus
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          error={fieldErrors.email}
        />
        <Button type="submit" variant="primary" className="w-full" disabled={pending}>
          Send reset code
        </Button>
        <p className="text-center text-sm">
          <a className={linkClass} href={href(withQuery(paths.reset, { email: email.trim() }))}>
            I already have a code
          </a>
        </p>
      </form>
    </AuthShell>
  );
}

/** Set a new password with the emailed code, then sign in with it. */
export function ResetPasswordPage() {
  const query = queryParams(usePath());
  const [email, setEmail] = useState(() => query.get("email") ?? "");
  const [code, setCode] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [pending, setPending] = useState(false);
  const sent = query.get("sent") === "1";

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    const who = email.trim();
    const clean = code.trim();
    const local: Record<string, string> = {};
    if (!who) local.email = "Enter your email address";
    if (!clean) local.code = "Enter the code from the email";
    if (password.length < MIN_PASSWORD) local.password = `Use at least ${MIN_PASSWORD} characters`;
    setFieldErrors(local);
    if (Object.keys(local).length) return;
    setPending(true);
    try {
      await api.resetPassword(who, clean, password);
      navigate(withQuery(paths.login, { email: who, reset: "1" }), { replace: true });
    } catch (err) {
      const { fields, general } = splitErrors(err, ["email", "code", "password"]);
      setFieldErrors(fields);
      setError(general);
      setPending(false);
    }
  }

  return (
    <AuthShell title="Set a new password" titleId="reset-title" footer={<BackToSignIn email={email} />}>
      <form onSubmit={submit} noValidate className="space-y-5">
        {sent && (
          <Notice testId="reset-sent">
            If an account exists for that address, a reset code is on its way.
          </Notice>
        )}
        {error && <ErrorBox testId="reset-error">{error}</ErrorBox>}
        <TextField
          id="reset-email"
          label="Email"
          type="email"
          autoComplete="username"
          required
          autoFocus={!email}
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          error={fieldErrors.email}
        />
        <TextField
          id="reset-code"
          label="Reset code"
          type="text"
          inputMode="numeric"
          autoComplete="one-time-code"
          maxLength={16}
          required
          autoFocus={!!email}
          value={code}
          onChange={(e) => setCode(e.target.value)}
          error={fieldErrors.code}
        />
        <TextField
          id="reset-password"
          label="New password"
          type="password"
          autoComplete="new-password"
          required
          minLength={MIN_PASSWORD}
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          hint={`At least ${MIN_PASSWORD} characters.`}
          error={fieldErrors.password}
        />
        <Button type="submit" variant="primary" className="w-full" disabled={pending}>
          Set new password
        </Button>
      </form>
    </AuthShell>
  );
}
