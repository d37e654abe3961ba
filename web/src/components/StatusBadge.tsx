const STYLES: Record<string, string> = {
  running: "bg-emerald-500/15 text-emerald-300 ring-emerald-500/30",
  starting: "bg-amber-500/15 text-amber-300 ring-amber-500/30",
  stopping: "bg-amber-500/15 text-amber-300 ring-amber-500/30",
  installing: "bg-sky-500/15 text-sky-300 ring-sky-500/30",
  install_failed: "bg-rose-500/15 text-rose-300 ring-rose-500/30",
  offline: "bg-zinc-500/15 text-zinc-300 ring-zinc-500/30",
};

const DOTS: Record<string, string> = {
  running: "bg-emerald-400",
  starting: "bg-amber-400 animate-pulse",
  stopping: "bg-amber-400 animate-pulse",
  installing: "bg-sky-400 animate-pulse",
  install_failed: "bg-rose-400",
  offline: "bg-zinc-400",
};

export function StatusBadge({ status, testId }: { status: string; testId: string }) {
  const style = STYLES[status] ?? STYLES.offline;
  const dot = DOTS[status] ?? DOTS.offline;
  return (
    <span
      className={`inline-flex shrink-0 items-center gap-1.5 rounded-full px-2.5 py-0.5 text-xs font-medium ring-1 ring-inset ${style}`}
      title={`Status: ${status}`}
    >
      <span className={`size-1.5 rounded-full ${dot}`} aria-hidden="true" />
      {/* The text is the raw status so it can be read and matched exactly. */}
      <span data-testid={testId} data-status={status}>
        {status}
      </span>
    </span>
  );
}
