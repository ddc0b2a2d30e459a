/**
 * A textarea for a template field (a prompt, a plan task, a tool argument) with completion:
 * typing `{{` or `{%` lists what the template may read there (src/templateCompletion.ts);
 * ArrowUp / ArrowDown choose, Enter or Tab inserts, Escape closes, a click inserts too.
 * ARIA combobox: the textarea owns a listbox whose active option it names.
 */
import { useId, useLayoutEffect, useRef, useState, type KeyboardEvent, type TextareaHTMLAttributes } from "react";
import { filterOptions, insertCompletion, type CompletionContext, type TemplateCompletion } from "./templateCompletion";

/** The most options shown at once (the list scrolls). */
const SHOWN = 60;

export interface TemplateTextareaProps extends Omit<TextareaHTMLAttributes<HTMLTextAreaElement>, "onChange" | "value"> {
  value: string;
  onText(value: string): void;
  /** The completion for a template's text up to the caret (null: none there). */
  complete(textBefore: string): CompletionContext | null;
}

interface Open {
  from: number;
  to: number;
  options: TemplateCompletion[];
  active: number;
}

export function TemplateTextarea({ value, onText, complete, onKeyDown, onBlur, ...rest }: TemplateTextareaProps) {
  const ref = useRef<HTMLTextAreaElement>(null);
  const listId = useId();
  const [open, setOpen] = useState<Open | null>(null);
  const caret = useRef<number | null>(null);

  useLayoutEffect(() => {
    if (caret.current !== null && ref.current) {
      ref.current.setSelectionRange(caret.current, caret.current);
      caret.current = null;
    }
  });

  const refresh = (text: string, at: number) => {
    const found = complete(text.slice(0, at));
    const options = found ? filterOptions(found.options, found.typed).slice(0, SHOWN) : [];
    setOpen(found && options.length ? { from: found.from, to: at, options, active: 0 } : null);
  };

  const accept = (option: TemplateCompletion) => {
    if (!open) return;
    const { text, caret: at } = insertCompletion(value, open.from, open.to, option);
    caret.current = at;
    setOpen(null);
    onText(text);
  };

  const keys = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (open) {
      const n = open.options.length;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        setOpen({ ...open, active: (open.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n });
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        accept(open.options[open.active]);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        setOpen(null);
        return;
      }
    } else if (e.key === " " && e.ctrlKey) {
      // Ctrl+Space asks for the list again.
      e.preventDefault();
      refresh(value, e.currentTarget.selectionStart);
      return;
    }
    onKeyDown?.(e);
  };

  const optionId = (i: number) => `${listId}-${i}`;
  return (
    <div className="lke-complete">
      <textarea
        {...rest}
        ref={ref}
        value={value}
        role="combobox"
        aria-autocomplete="list"
        aria-expanded={open !== null}
        aria-controls={open ? listId : undefined}
        aria-activedescendant={open ? optionId(open.active) : undefined}
        onChange={(e) => {
          onText(e.target.value);
          refresh(e.target.value, e.target.selectionStart);
        }}
        onKeyDown={keys}
        onBlur={(e) => {
          setOpen(null);
          onBlur?.(e);
        }}
      />
      {open && (
        <ul className="lke-complete-list" id={listId} role="listbox" aria-label="Template completions" data-testid="template-completions">
          {open.options.map((option, i) => (
            <li
              key={option.label}
              id={optionId(i)}
              role="option"
              aria-selected={i === open.active}
              className={i === open.active ? "lke-complete-active" : undefined}
              title={option.info}
              // mousedown, not click: the textarea keeps the focus (a blur would close the list).
              onMouseDown={(e) => {
                e.preventDefault();
                accept(option);
              }}
              ref={i === open.active ? (el) => el?.scrollIntoView({ block: "nearest" }) : undefined}
            >
              <code>{option.label}</code> <small>{option.detail}</small>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
