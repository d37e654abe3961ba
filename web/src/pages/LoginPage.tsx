import { useState, type FormEvent } from "react";
import { api } from "../lib/api";
import { sessionEndedReason } from "../lib/auth";
import { href, paths, queryParams, usePath, withQuery } from "../lib/router";
import { Button, ErrorBox } from "../components/ui";
import { AuthShell, linkClass, Notice, splitErrors, TextField } from "../components/form";

export { Logo } from "../components/Logo";

const CODE_RE = /^[0-9]{6}$/;

/** Sign in: email and password, then the authenticator code when two-factor is on. */
export function LoginPage({ onSignedIn }: { onSignedIn: () => void }) {
  const query = queryParams(usePath());
  const [email, setEmail] = useState(() => query.get("email") ?? "");
  const [password, setPassword] = useState("");
  const [challenge, setChallenge] = useState<{ email: string; session: string } | null>(null);
  const [code, setCode] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [pending, setPending] = useState(false);
  const [notice] = useState<{ text: string; tone: "success" | "info" } | null>(() => {
    if (query.get("reset") === "1") {
      return { text: "Your password has been changed. Sign in with the new one.", tone: "success" };
    }
    const ended = sessionEndedReason();
    return ended ? { text: ended, tone: "info" } : null;
  });

  function fail(err: unknown, shown: readonly string[]) {
    const { fields, general } = splitErrors(err, shown);
    setFieldErrors(fields);
    setError(general);
    setPending(false);
  }

  async function submitPassword(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setFieldErrors({});
    const who = email.trim();
    if (!who || !password) {
      setFieldErrors({
        ...(who ? {} : { email: "Enter your email address" }),
        ...(password ? {} : { password: "Enter your password" }),
      });
      return;
    }
    setPending(true);
    try {
      const answer = await api.login(who, password);
      if (answer) {
        setChallenge({ email: who, session: answer.session });
        setPassword("");
        setPending(false);
      } else {
        onSignedIn();
      }
    } catch (err) {
      fail(err, ["email", "password"]);
    }
  }

  async function submitCode(e: FormEvent) {
    e.preventDefault();
    if (!challenge) return;
    setError(null);
    setFieldErrors({});
    const clean = code.replace(/\s+/g, "");
    if (!CODE_RE.test(clean)) {
      setFieldErrors({ code: "Enter the 6-digit code from your authenticator app" });
      return;
    }
    setPending(true);
    try {
      await api.loginTotp(challenge.email, challenge.session, clean);
      onSignedIn();
    } catch (err) {
      fail(err, ["code"]);
    }
  }

  function startOver() {
    setChallenge(null);
    setCode("");
    setError(null);
    setFieldErrors({});
  }

  if (challenge) {
    return (
      <AuthShell title="Two-factor authentication" titleId="totp-title">
        <form onSubmit={submitCode} noValidate className="space-y-5">
          <p className="text-sm text-zinc-400">
            Enter the 6-digit code from your authenticator app for{" "}
            <span className="text-zinc-200">{challenge.email}</span>.
          </p>
          {error && <ErrorBox testId="login-error">{error}</ErrorBox>}
          <TextField
            id="totp-code"
            label="Authentication code"
            type="text"
            inputMode="numeric"
            autoComplete="one-time-code"
            pattern="[0-9]{6}"
            maxLength={7}
            required
            autoFocus
            value={code}
            onChange={(e) => setCode(e.target.value)}
            error={fieldErrors.code}
            className="block w-full rounded-md border-0 bg-zinc-900 px-3 py-2 font-mono text-lg tracking-[0.4em] text-zinc-100 ring-1 ring-inset ring-zinc-700 focus:ring-2 focus:ring-inset focus:ring-indigo-500 focus:outline-none aria-[invalid=true]:ring-rose-500"
          />
          <Button type="submit" variant="primary" className="w-full" disabled={pending}>
            Verify
          </Button>
          <Button variant="ghost" className="w-full" onClick={startOver} disabled={pending}>
            Use a different account
          </Button>
        </form>
      </AuthShell>
    );
  }

  return (
    <AuthShell
      title="Sign in to your panel"
      titleId="login-title"
      footer={
        <p>
          New here?{" "}
          <a className={linkClass} href={href(withQuery(paths.signup, { email: email.trim() }))}>
            Create account
          </a>
        </p>
      }
    >
      <form onSubmit={submitPassword} noValidate className="space-y-5">
        {notice && (
          <Notice testId="login-notice" tone={notice.tone}>
            {notice.text}
          </Notice>
        )}
        {error && <ErrorBox testId="login-error">{error}</ErrorBox>}
        <TextField
          id="email"
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
          id="password"
          label="Password"
          type="password"
          autoComplete="current-password"
          required
          autoFocus={!!email}
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          error={fieldErrors.password}
        />
        <Button type="submit" variant="primary" className="w-full" disabled={pending}>
          {pending ? "Signing in…" : "Sign in"}
        </Button>
        <p className="text-center text-sm">
          <a className={linkClass} href={href(withQuery(paths.forgot, { email: email.trim() }))}>
            Forgot password?
          </a>
        </p>
      </form>
    </AuthShell>
  );
}
