/**
 * Text output of `exitgate demo`: colours (only on a TTY, never with NO_COLOR) and the aligned
 * attempt table, printed row by row as the attempts happen.
 */
import type { AttemptResult } from './demo-run';

export interface Style {
  enabled: boolean;
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

/** https://no-color.org: NO_COLOR present and non-empty disables colour; so does a non-TTY. */
export function colorWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return stream.isTTY === true;
}

export function makeStyle(enabled: boolean): Style {
  const sgr = (open: number, close: number) => (s: string) => (enabled ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return {
    enabled,
    bold: sgr(1, 22),
    dim: sgr(2, 22),
    green: sgr(32, 39),
    red: sgr(31, 39),
    yellow: sgr(33, 39),
    cyan: sgr(36, 39),
  };
}

export const PASS = '✔';
export const FAIL = '✘';
/** A caveat under an attempt: neither a pass nor a failure. */
export const NOTE = '!';

/** Pads plain text to width (before any colour is applied, so escapes never skew alignment). */
function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

const COL = { n: 3, expected: 8, said: 22, verdict: 9 };
const GAP = '  ';

/** Renders table rows; the attempt column is as wide as the longest attempt label. */
export class AttemptTable {
  private readonly attemptWidth: number;

  constructor(
    private readonly style: Style,
    labels: string[],
  ) {
    this.attemptWidth = Math.max('attempt (what the agent tried)'.length, ...labels.map((l) => l.length));
  }

  header(): string {
    const s = this.style;
    const line = [
      pad(' #', COL.n),
      pad('attempt (what the agent tried)', this.attemptWidth),
      pad('expected', COL.expected),
      pad('envoy said (status)', COL.said),
      pad('verdict', COL.verdict),
      'rule/reason (exitgate check)',
    ].join(GAP);
    const rule = '─'.repeat(line.length + 8);
    return `${s.bold(line)}\n${s.dim(rule)}`;
  }

  /** A divider inside the table, e.g. where the policy file was edited. */
  divider(text: string): string {
    const width = COL.n + this.attemptWidth + COL.expected + COL.said + COL.verdict + 5 * GAP.length + 36;
    const label = `── ${text} `;
    return this.style.yellow(label + '─'.repeat(Math.max(4, width - label.length)));
  }

  row(r: AttemptResult): string {
    const s = this.style;
    const mark = r.ok ? s.green(PASS) : s.red(FAIL);
    const verdictText = r.observed.verdict;
    const paint = verdictText === 'allow' ? s.green : verdictText === 'deny' ? s.yellow : s.red;
    const verdictCell = `${paint(verdictText)} ${mark}${' '.repeat(Math.max(0, COL.verdict - verdictText.length - 2))}`;
    const cells = [
      pad(String(r.n).padStart(2), COL.n),
      pad(r.label, this.attemptWidth),
      pad(r.spec.expect, COL.expected),
      pad(clip(r.observed.said, COL.said), COL.said),
      verdictCell,
      r.ruleText,
    ];
    const lines = [cells.join(GAP)];
    const indent = ' '.repeat(COL.n + GAP.length);
    lines.push(s.dim(`${indent}↳ ${r.spec.story}`));
    for (const f of r.findings) {
      const text = `${indent}  ${f.note ? NOTE : f.ok ? PASS : FAIL} ${f.text}`;
      lines.push(f.note ? s.yellow(text) : f.ok ? s.dim(text) : s.red(s.bold(text)));
    }
    return lines.join('\n');
  }
}
