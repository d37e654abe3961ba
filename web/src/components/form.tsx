import type { InputHTMLAttributes, ReactNode } from "react";
import { ApiError, errorMessage } from "../lib/api";
import { Logo } from "./Logo";
import { inputClass } from "./ui";

/**
 * A labelled input with its hint and its error underneath (`data-testid="error-<id>"`),
 * wired for screen readers (aria-invalid, aria-describedby).
 */
export function TextField({
  id,
  label,
  error,
  hint,
  aside,
  ...input
}: Omit<InputHTMLAttributes<HTMLInputElement>, "id"> & {
  id: string;
  label: string;
  error?: string | undefined;
  hint?: ReactNode;
  aside?: ReactNode;
}) {
  const described = [hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return (
    <div className="space-y-1.5">
      <div className="flex items-baseline justify-between gap-2">
        <label htmlFor={id} className="block text-sm font-medium text-zinc-300">
          {label}
        </label>
        {aside}
      </div>
      <input
        id={id}
        name={id}
        className={inputClass}
        aria-invalid={error ? true : undefined}
        aria-describedby={described || undefined}
        {...input}
      />
      {hint && (
        <p id={`${id}-hint`} className="text-xs text-zinc-500">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} data-testid={`error-${id}`} className="text-sm text-rose-300" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

export interface SplitErrors {
  /** Field errors keyed by the API's field name, for the fields this form shows. */
  fields: Record<string, string>;
  /** What is left for the form-level message (null when every error has a field). */
  general: string | null;
}

/** Put an API error next to the fields it concerns; the rest becomes the form's message. */
export function splitErrors(err: unknown, shown: readonly string[]): SplitErrors {
  if (!(err instanceof ApiError)) return { fields: {}, general: errorMessage(err) };
  const fields: Record<string, string> = {};
  const others: string[] = [];
  for (const [k, v] of Object.entries(err.fields)) {
    if (shown.includes(k)) fields[k] = capitalize(v);
    else others.push(`${k}: ${v}`);
  }
  if (Object.keys(fields).length === 0) return { fields, general: capitalize(err.message) };
  return { fields, general: others.length ? others.join("; ") : null };
}

function capitalize(s: string): string {
  return s ? s.charAt(0).toUpperCase() + s.slice(1) : s;
}

/** A success or information line (role=status, announced politely). */
export function Notice({
  children,
  testId,
  tone = "success",
}: {
  children: ReactNode;
  testId?: string;
  tone?: "success" | "info";
}) {
  const colours =
    tone === "success"
      ? "border-emerald-500/30 bg-emerald-500/10 text-emerald-200"
      : "border-indigo-400/30 bg-indigo-500/10 text-indigo-100";
  return (
    <div role="status" data-testid={testId} className={`rounded-md border px-3 py-2 text-sm ${colours}`}>
      {children}
    </div>
  );
}

/** The centred card the signed-out pages (sign in, sign up, password reset) share. */
export function AuthShell({
  title,
  titleId,
  children,
  footer,
}: {
  title: string;
  titleId: string;
  children: ReactNode;
  footer?: ReactNode;
}) {
  return (
    <main className="flex min-h-dvh items-center justify-center px-4 py-12">
      <div className="w-full max-w-sm">
        <div className="mb-8 flex items-center justify-center gap-2">
          <Logo />
          <span className="text-xl font-semibold tracking-tight text-white">StellarStack</span>
        </div>
        <section
          aria-labelledby={titleId}
          className="space-y-5 rounded-lg border border-zinc-800 bg-zinc-900/60 p-6 shadow-xl shadow-black/30"
        >
          <h1 id={titleId} className="text-lg font-semibold text-white">
            {title}
          </h1>
          {children}
        </section>
        {footer && <div className="mt-6 space-y-2 text-center text-sm text-zinc-400">{footer}</div>}
      </div>
    </main>
  );
}

export const linkClass =
  "rounded text-indigo-300 hover:text-indigo-200 hover:underline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-400";
