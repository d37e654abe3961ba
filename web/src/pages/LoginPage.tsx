import { useState, type FormEvent } from "react";
import { api, errorMessage } from "../lib/api";
import { Button, ErrorBox, inputClass } from "../components/ui";

export function LoginPage({ onSignedIn }: { onSignedIn: () => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [pending, setPending] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setPending(true);
    try {
      await api.login(email.trim(), password);
      onSignedIn();
    } catch (err) {
      setError(errorMessage(err));
      setPending(false);
    }
  }

  return (
    <main className="flex min-h-dvh items-center justify-center px-4 py-12">
      <div className="w-full max-w-sm">
        <div className="mb-8 flex items-center justify-center gap-2">
          <Logo />
          <span className="text-xl font-semibold tracking-tight text-white">StellarStack</span>
        </div>
        <form
          onSubmit={submit}
          noValidate
          className="space-y-5 rounded-lg border border-zinc-800 bg-zinc-900/60 p-6 shadow-xl shadow-black/30"
          aria-labelledby="login-title"
        >
          <h1 id="login-title" className="text-lg font-semibold text-white">
            Sign in to your panel
          </h1>
          {error && <ErrorBox testId="login-error">{error}</ErrorBox>}
          <div className="space-y-1.5">
            <label htmlFor="email" className="block text-sm font-medium text-zinc-300">
              Email
            </label>
            <input
              id="email"
              name="email"
              type="email"
              autoComplete="username"
              required
              autoFocus
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              className={inputClass}
            />
          </div>
          <div className="space-y-1.5">
            <label htmlFor="password" className="block text-sm font-medium text-zinc-300">
              Password
            </label>
            <input
              id="password"
              name="password"
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              className={inputClass}
            />
          </div>
          <Button type="submit" variant="primary" className="w-full" disabled={pending}>
            Sign in
          </Button>
        </form>
      </div>
    </main>
  );
}

export function Logo({ className = "size-7" }: { className?: string }) {
  return (
    <svg viewBox="0 0 32 32" className={className} aria-hidden="true">
      <circle cx="16" cy="16" r="14" fill="#312e81" />
      <path
        d="M16 5l2.6 7.4L26 15l-7.4 2.6L16 25l-2.6-7.4L6 15l7.4-2.6z"
        fill="#a5b4fc"
      />
    </svg>
  );
}
