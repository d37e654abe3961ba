import { useEffect, useImperativeHandle, useRef, type Ref } from "react";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import type { ConsoleMessage } from "../lib/types";

export interface ConsoleHandle {
  write(msg: ConsoleMessage): void;
  notice(text: string): void;
}

const DIM = "\x1b[2m";
const YELLOW = "\x1b[33m";
const RESET = "\x1b[0m";

export function Console({ ref }: { ref?: Ref<ConsoleHandle> }) {
  const boxRef = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | null>(null);
  const wroteAny = useRef(false);
  const pending = useRef<string[]>([]);

  const writeLine = (line: string) => {
    const term = termRef.current;
    if (!term) {
      pending.current.push(line);
      return;
    }
    // Start each line on a new row, without leaving an empty row at the bottom.
    term.write((wroteAny.current ? "\r\n" : "") + line);
    wroteAny.current = true;
  };

  useImperativeHandle(
    ref,
    () => ({
      write(msg) {
        if (msg.dropped && msg.dropped > 0) {
          writeLine(`${DIM}[… ${msg.dropped} line${msg.dropped === 1 ? "" : "s"} dropped]${RESET}`);
        }
        for (const line of msg.lines) {
          writeLine(msg.source === "agent" ? `${YELLOW}${line}${RESET}` : line);
        }
      },
      notice(text) {
        writeLine(`${DIM}${text}${RESET}`);
      },
    }),
    [],
  );

  useEffect(() => {
    const box = boxRef.current;
    if (!box) return;
    const term = new Terminal({
      convertEol: true,
      disableStdin: true,
      cursorBlink: false,
      cursorStyle: "bar",
      cursorInactiveStyle: "none",
      scrollback: 5000,
      fontSize: 13,
      lineHeight: 1.2,
      fontFamily:
        'ui-monospace, SFMono-Regular, "JetBrains Mono", Menlo, Consolas, "Liberation Mono", monospace',
      theme: {
        background: "#09090b",
        foreground: "#e4e4e7",
        cursor: "#09090b",
        selectionBackground: "#4f46e580",
        black: "#18181b",
        brightBlack: "#71717a",
      },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(box);
    termRef.current = term;

    const doFit = () => {
      try {
        if (box.clientWidth > 0 && box.clientHeight > 0) fit.fit();
      } catch {
        /* not laid out yet */
      }
    };
    doFit();
    const ro = new ResizeObserver(() => doFit());
    ro.observe(box);

    for (const line of pending.current.splice(0)) writeLine(line);

    return () => {
      ro.disconnect();
      termRef.current = null;
      wroteAny.current = false;
      term.dispose();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  return (
    <div
      ref={boxRef}
      data-testid="console"
      className="h-[55vh] min-h-64 max-h-[640px] w-full overflow-hidden"
      aria-label="Server console output"
      role="log"
    />
  );
}
