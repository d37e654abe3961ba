import type { Server } from "./types";

export function serverAddress(server: Pick<Server, "ports">): string | null {
  const p = server.ports?.[0];
  if (!p) return null;
  const host = p.ip.includes(":") && !p.ip.startsWith("[") ? `[${p.ip}]` : p.ip;
  return `${host}:${p.port}`;
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(totalSeconds: number): string {
  if (!Number.isFinite(totalSeconds) || totalSeconds < 0) return "–";
  const s = Math.floor(totalSeconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${sec}s`;
  return `${sec}s`;
}

/** Payload timestamps may be epoch seconds, epoch ms or ISO strings. */
export function toDate(ts: number | string | undefined | null): Date {
  if (typeof ts === "number" && Number.isFinite(ts)) {
    return new Date(ts < 1e12 ? ts * 1000 : ts);
  }
  if (typeof ts === "string") {
    const d = new Date(ts);
    if (!Number.isNaN(d.getTime())) return d;
  }
  return new Date();
}

export function formatTime(d: Date): string {
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function statusLabel(status: string): string {
  switch (status) {
    case "install_failed":
      return "install failed";
    default:
      return status.replace(/_/g, " ");
  }
}
