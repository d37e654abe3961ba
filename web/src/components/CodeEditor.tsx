import { useEffect, useRef } from "react";
import { EditorState, type Extension } from "@codemirror/state";
import {
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { bracketMatching, StreamLanguage, syntaxHighlighting } from "@codemirror/language";
import { json } from "@codemirror/lang-json";
import { yaml } from "@codemirror/lang-yaml";
import { properties } from "@codemirror/legacy-modes/mode/properties";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { toml } from "@codemirror/legacy-modes/mode/toml";
import { oneDark, oneDarkHighlightStyle } from "@codemirror/theme-one-dark";

/** Syntax highlighting chosen by the file's extension; plain text otherwise. */
export function languageFor(path: string): { name: string; extension: Extension | null } {
  const name = path.toLowerCase().split("/").pop() ?? "";
  const ext = name.includes(".") ? name.slice(name.lastIndexOf(".") + 1) : "";
  if (ext === "json" || ext === "mcmeta") return { name: "JSON", extension: json() };
  if (ext === "yml" || ext === "yaml") return { name: "YAML", extension: yaml() };
  if (ext === "properties" || ext === "ini" || ext === "cfg" || ext === "conf" || ext === "env")
    return { name: "Properties", extension: StreamLanguage.define(properties) };
  if (ext === "sh" || ext === "bash") return { name: "Shell", extension: StreamLanguage.define(shell) };
  if (ext === "toml") return { name: "TOML", extension: StreamLanguage.define(toml) };
  return { name: "Plain text", extension: null };
}

/**
 * A CodeMirror 6 editor (uncontrolled: `initial` is read once; `onChange` reports every edit).
 * Tab indents; Escape then Tab leaves the editor (CodeMirror's keyboard escape hatch).
 */
export function CodeEditor({
  path,
  initial,
  onChange,
  onSave,
  readOnly = false,
  labelledBy,
}: {
  path: string;
  initial: string;
  onChange: (text: string) => void;
  onSave?: () => void;
  readOnly?: boolean;
  labelledBy?: string;
}) {
  const boxRef = useRef<HTMLDivElement>(null);
  const changeRef = useRef(onChange);
  const saveRef = useRef(onSave);
  changeRef.current = onChange;
  saveRef.current = onSave;

  useEffect(() => {
    const box = boxRef.current;
    if (!box) return;
    const lang = languageFor(path).extension;
    const view = new EditorView({
      parent: box,
      state: EditorState.create({
        doc: initial,
        extensions: [
          lineNumbers(),
          highlightActiveLineGutter(),
          highlightActiveLine(),
          drawSelection(),
          history(),
          bracketMatching(),
          oneDark,
          syntaxHighlighting(oneDarkHighlightStyle),
          keymap.of([
            {
              key: "Mod-s",
              preventDefault: true,
              run: () => {
                saveRef.current?.();
                return true;
              },
            },
            ...defaultKeymap,
            ...historyKeymap,
            indentWithTab,
          ]),
          EditorState.readOnly.of(readOnly),
          EditorView.contentAttributes.of({
            "data-testid": "file-editor-content",
            ...(labelledBy ? { "aria-labelledby": labelledBy } : {}),
          }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) changeRef.current(u.state.doc.toString());
          }),
          EditorView.theme({
            "&": { height: "100%", fontSize: "13px" },
            ".cm-scroller": { fontFamily: "var(--font-mono)" },
          }),
          ...(lang ? [lang] : []),
        ],
      }),
    });
    return () => view.destroy();
    // The editor is created once per file (the parent keys it by path).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  return <div ref={boxRef} data-testid="file-editor" className="h-[60vh] min-h-72 overflow-hidden" />;
}
