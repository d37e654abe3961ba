import { api } from "../../lib/api";
import { qk } from "../../lib/queries";
import { ActivityList } from "../../components/ActivityList";

export function ActivityTab({ serverId }: { serverId: string }) {
  return (
    <section aria-labelledby="activity-heading" className="space-y-4">
      <div>
        <h2 id="activity-heading" className="text-base font-semibold text-white">
          Activity
        </h2>
        <p className="text-sm text-zinc-400">Everything done on this server, newest first.</p>
      </div>
      <ActivityList queryKey={qk.activity(serverId)} fetchPage={(c) => api.activity(serverId, c)} />
    </section>
  );
}
