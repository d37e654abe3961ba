import { useInfiniteQuery } from "@tanstack/react-query";
import { errorMessage, type PageOf } from "../lib/api";
import { toDate } from "../lib/format";
import { useMe } from "../lib/queries";
import type { ActivityEntry } from "../lib/types";
import { Button, Card, ErrorBox, Spinner } from "./ui";

/** An activity log, newest first, a page at a time ("Show older"). */
export function ActivityList({
  queryKey,
  fetchPage,
  showServer = false,
}: {
  queryKey: readonly unknown[];
  fetchPage: (cursor: string | null) => Promise<PageOf<ActivityEntry>>;
  showServer?: boolean;
}) {
  const me = useMe();
  const q = useInfiniteQuery({
    queryKey,
    queryFn: ({ pageParam }) => fetchPage(pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next,
  });
  if (q.isPending) return <Spinner label="Loading activity" />;
  if (q.isError) return <ErrorBox testId="activity-error">{errorMessage(q.error)}</ErrorBox>;
  const entries = q.data.pages.flatMap((p) => p.items);
  return (
    <div className="space-y-3">
      {entries.length === 0 ? (
        <Card className="px-6 py-8 text-center text-sm text-zinc-400">Nothing has happened yet.</Card>
      ) : (
        <Card className="overflow-hidden">
          <ol className="divide-y divide-zinc-800" data-testid="activity-list">
            {entries.map((e) => {
              const at = toDate(e.ts);
              const details = Object.entries(e.details ?? {}).filter(([, v]) => v !== "" && v !== null);
              return (
                <li key={e.id} data-testid="activity-row" data-action={e.action} className="space-y-1 px-4 py-3">
                  <div className="flex flex-wrap items-baseline justify-between gap-2">
                    <span className="font-mono text-sm text-zinc-100" data-testid="activity-action">
                      {e.action}
                    </span>
                    <time dateTime={at.toISOString()} className="text-xs text-zinc-500">
                      {at.toLocaleString()}
                    </time>
                  </div>
                  <div className="flex flex-wrap gap-x-3 gap-y-0.5 text-xs text-zinc-400">
                    <span>
                      by{" "}
                      <span className="font-mono">{me.data && me.data.id === e.actor_id ? "you" : e.actor_id}</span>
                    </span>
                    {showServer && e.server_id && <span className="font-mono">server {e.server_id}</span>}
                    {e.target && <span className="font-mono">{e.target}</span>}
                    {e.source_ip && <span>from {e.source_ip}</span>}
                  </div>
                  {details.length > 0 && (
                    <dl className="flex flex-wrap gap-x-3 text-xs text-zinc-500">
                      {details.map(([k, v]) => (
                        <div key={k} className="flex gap-1">
                          <dt>{k}:</dt>
                          <dd className="break-all font-mono">{String(v)}</dd>
                        </div>
                      ))}
                    </dl>
                  )}
                </li>
              );
            })}
          </ol>
        </Card>
      )}
      {q.hasNextPage && (
        <Button data-testid="activity-more" disabled={q.isFetchingNextPage} onClick={() => void q.fetchNextPage()}>
          {q.isFetchingNextPage ? "Loading…" : "Show older"}
        </Button>
      )}
    </div>
  );
}
