import { useState, type FormEvent } from "react";
import { api } from "../lib/api";
import { href, navigate, paths, queryParams, usePath, withQuery } from "../lib/router";
import { Button, ErrorBox } from "../components/ui";
import { AuthShell, linkClass, Notice, splitErrors, TextField } from "../components/form";

export const MIN_PASSWORD = 10;

/** Create an account, confirm it with the emailed code when the pool asks for one, sign in. */
export function SignUpPage({ onSignedIn }: { onSignedIn: () => void }) {
  const query = queryParams(usePath());
  const [email, setEmail] = useState(() => query.get("email") ?? "");
  const [password, setPassword] = useState("");
  const [confirming, setConfirming] = useState<string | null>(null); // email awaiting its code
  const [code, setCode] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [pending, setPending] = useState(false);

  function fail(err: unknown, shown: readonly string[]) {
    const { fields, general } = splitErrors(err, shown);
    setFieldErrors(fields);
    setError(general);
    setPending(false);
  }

  async function signIn(who: string) {
    const challenge = await api.login(who, password);
    if (challenge) navigate(withQuery(paths.login, { email: who }), { replace: true });
    else onSignedIn();
  }

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    const who = email.trim();
    const local: Record<string, string> = {};
    if (!who) local.email = "Enter your email address";
    if (password.length < MIN_PASSWORD) local.password = `Use at least ${MIN_PASSWORD} characters`;
    setFieldErrors(local);
    if (Object.keys(local).length) return;
    setPending(true);
    try {
      const res = await api.signUp(who, password);
      if (res.confirmed) await signIn(who);
      else {
        setConfirming(who);
        setPending(false);
      }
    } catch (err) {
      fail(err, ["email", "password"]);
    }
  }

  async function submitCode(e: FormEvent) {
    e.preventDefault();
    if (!confirming) return;
    setError(null);
    const clean = code.trim();
    if (!clean) {
      setFieldErrors({ code: "Enter the code from the email" });
      return;
    }
    setFieldErrors({});
    setPending(true);
    try {
      await api.confirmSignUp(confirming, clean);
      await signIn(confirming);
    } catch (err) {
      fail(err, ["code"]);
    }
  }

  if (confirming) {
    return (
      <AuthShell title="Confirm your email" titleId="confirm-title">
        <form onSubmit={submitCode} noValidate className="space-y-5">
          <Notice testId="confirm-sent">
            We sent a confirmation code to <strong>{confirming}</strong>.
          </Notice>
          {error && <ErrorBox testId="signup-error">{error}</ErrorBox>}
          <TextField
            id="confirm-code"
            label="Confirmation code"
            type="text"
            inputMode="numeric"
            autoComplete="one-time-code"
            maxLength={16}
            required
            autoFocus
            value={code}
            onChange={(e) => setCode(e.target.value)}
            error={fieldErrors.code}
          />
          <Button type="submit" variant="primary" className="w-full" disabled={pending}>
            Confirm
          </Button>
        </form>
      </AuthShell>
    );
  }

  return (
    <AuthShell
      title="Create your account"
      titleId="signup-title"
      footer={
        <p>
          Already have an account?{" "}
          <a className={linkClass} href={href(withQuery(paths.login, { email: email.trim() }))}>
            Sign in
          </a>
        </p>
      }
    >
      <form onSubmit={submit} noValidate className="space-y-5">
        {error && <ErrorBox testId="signup-error">{error}</ErrorBox>}
        <TextField
          id="signup-email"
          label="Email"
          type="email"
          autoComplete="email"
          required
          autoFocus
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          error={fieldErrors.email}
        />
        <TextField
          id="signup-password"
          label="Password"
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
          {pending ? "Creating account…" : "Create account"}
        </Button>
      </form>
    </AuthShell>
  );
}
