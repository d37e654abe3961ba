import { formatBytes } from "../lib/format";
import { STATS_WINDOW_MS, type StatsSample } from "../lib/useServerLive";

const W = 240;
const H = 60;

/** A polyline of (time, value) over the last window, scaled to [0, max]. */
function points(samples: StatsSample[], value: (s: StatsSample) => number, max: number, now: number): string {
  return samples
    .filter((s) => Number.isFinite(value(s)))
    .map((s) => {
      const x = W - ((now - s.at) / STATS_WINDOW_MS) * W;
      const y = H - (Math.min(Math.max(value(s), 0), max) / max) * (H - 2) - 1;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
}

function Chart({
  testId,
  title,
  current,
  scale,
  line,
  samples,
  value,
  max,
  now,
}: {
  testId: string;
  title: string;
  current: string;
  scale: string;
  line: string;
  samples: StatsSample[];
  value: (s: StatsSample) => number;
  max: number;
  now: number;
}) {
  const pts = points(samples, value, max, now);
  return (
    <figure className="min-w-0 flex-1" data-testid={testId} data-points={samples.length}>
      <figcaption className="flex items-baseline justify-between gap-2 text-xs text-zinc-400">
        <span>{title}</span>
        <span className="font-mono text-zinc-200">{current}</span>
      </figcaption>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        preserveAspectRatio="none"
        className="mt-1 h-16 w-full rounded bg-zinc-900"
        role="img"
        aria-label={`${title} over the last 2 minutes, now ${current}`}
      >
        {[0.25, 0.5, 0.75].map((f) => (
          <line key={f} x1="0" x2={W} y1={H * f} y2={H * f} stroke="#27272a" strokeWidth="1" vectorEffect="non-scaling-stroke" />
        ))}
        {pts && (
          <polyline
            points={pts}
            fill="none"
            stroke={line}
            strokeWidth="1.5"
            strokeLinejoin="round"
            vectorEffect="non-scaling-stroke"
          />
        )}
      </svg>
      <div className="mt-0.5 flex justify-between text-[10px] text-zinc-500">
        <span>−2 min</span>
        <span>max {scale}</span>
      </div>
    </figure>
  );
}

/** CPU % and memory over the last two minutes, from the live stats messages. */
export function StatsGraph({ samples }: { samples: StatsSample[] }) {
  const last = samples[samples.length - 1];
  if (!last) return null;
  const now = last.at;
  const cpuMax = Math.max(100, ...samples.map((s) => (Number.isFinite(s.cpu) ? s.cpu : 0)));
  const memPeak = Math.max(1, ...samples.map((s) => (Number.isFinite(s.mem) ? s.mem : 0)));
  const memMax = Number.isFinite(last.memLimit) && last.memLimit > 0 ? last.memLimit : memPeak * 1.25;
  return (
    <div className="flex flex-wrap gap-4 border-b border-zinc-800 px-3 py-2" data-testid="stats-graph">
      <Chart
        testId="stats-graph-cpu"
        title="CPU"
        current={Number.isFinite(last.cpu) ? `${last.cpu.toFixed(1)}%` : "–"}
        scale={`${cpuMax.toFixed(0)}%`}
        line="#818cf8"
        samples={samples}
        value={(s) => s.cpu}
        max={cpuMax}
        now={now}
      />
      <Chart
        testId="stats-graph-memory"
        title="Memory"
        current={Number.isFinite(last.mem) ? formatBytes(last.mem) : "–"}
        scale={formatBytes(memMax)}
        line="#34d399"
        samples={samples}
        value={(s) => s.mem}
        max={memMax}
        now={now}
      />
    </div>
  );
}
