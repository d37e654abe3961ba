import { useRef, useState, type KeyboardEvent } from "react";
import { api, errorMessage } from "../lib/api";

const MAX_HISTORY = 50;

export function CommandInput({ serverId }: { serverId: string }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const history = useRef<string[]>([]);
  /** Position while browsing history; history.length means "the line being typed". */
  const cursor = useRef(0);
  const draft = useRef("");

  async function send(line: string) {
    setError(null);
    try {
      await api.command(serverId, line);
    } catch (err) {
      setError(errorMessage(err));
    }
  }

  function onKeyDown(e: KeyboardEvent<HTMLInputElement>) {
    const h = history.current;
    if (e.key === "Enter") {
      e.preventDefault();
      const line = value;
      if (!line.trim()) return;
      if (h[h.length - 1] !== line) {
        h.push(line);
        if (h.length > MAX_HISTORY) h.shift();
      }
      cursor.current = h.length;
      draft.current = "";
      setValue("");
      void send(line);
    } else if (e.key === "ArrowUp") {
      if (h.length === 0) return;
      e.preventDefault();
      if (cursor.current === h.length) draft.current = value;
      cursor.current = Math.max(0, cursor.current - 1);
      setValue(h[cursor.current] ?? "");
    } else if (e.key === "ArrowDown") {
      if (cursor.current >= h.length) return;
      e.preventDefault();
      cursor.current += 1;
      setValue(cursor.current === h.length ? draft.current : (h[cursor.current] ?? ""));
    }
  }

  return (
    <div>
      <div className="flex items-center gap-2 border-t border-zinc-800 bg-zinc-950 px-3 py-2">
        <span className="font-mono text-sm text-indigo-400" aria-hidden="true">
          ›
        </span>
        <label htmlFor="console-input" className="sr-only">
          Console command
        </label>
        <input
          id="console-input"
          data-testid="console-input"
          className="min-w-0 flex-1 bg-transparent font-mono text-sm text-zinc-100 placeholder:text-zinc-600 focus:outline-none"
          placeholder="Type a command and press Enter"
          autoComplete="off"
          autoCapitalize="off"
          spellCheck={false}
          value={value}
          onChange={(e) => {
            setValue(e.target.value);
            cursor.current = history.current.length;
          }}
          onKeyDown={onKeyDown}
          aria-describedby={error ? "console-input-error" : undefined}
        />
      </div>
      {error && (
        <p
          id="console-input-error"
          data-testid="console-input-error"
          role="alert"
          className="border-t border-rose-500/30 bg-rose-500/10 px-3 py-1.5 text-sm text-rose-200"
        >
          Command not sent: {error}
        </p>
      )}
    </div>
  );
}
