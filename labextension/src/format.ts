/**
 * Pure formatting of snapshots for the status item and the panel.
 *
 * No JupyterLab imports, so the unit tests load it as is.
 */
import { classifyRowError, IErrorInfo, isNoAnswer } from './errors';
import { IKernelRow, ISnapshot } from './wire';

/**
 * Seconds as people read them: `12 s`, `3 min 4 s`, `1 h 2 min`.
 *
 * Whole units, rounded down; zero trailing parts are left out (`3 min`, `1 h`).
 */
export function formatDuration(seconds: number | null | undefined): string {
  const total =
    typeof seconds === 'number' && isFinite(seconds) && seconds > 0
      ? Math.floor(seconds)
      : 0;
  if (total < 60) {
    return `${total} s`;
  }
  if (total < 3600) {
    const m = Math.floor(total / 60);
    const s = total % 60;
    return s ? `${m} min ${s} s` : `${m} min`;
  }
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  return m ? `${h} h ${m} min` : `${h} h`;
}

/** The first 8 characters of a kernel id. */
export function shortId(kernelId: string): string {
  return kernelId.slice(0, 8);
}

function count(value: unknown): number {
  const n = Number(value);
  return isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/** The parts of a snapshot's waiting work. */
export interface IPendingParts {
  /** The `pending` of every shell queue. */
  shell: number;
  /** Every caller's `scheduled`. */
  scheduled: number;
  /** The `pending` of every caller queue. */
  queued: number;
  /** All of it: the list row's `pending`. */
  total: number;
}

/**
 * The waiting work of a snapshot, exactly as the list row's `pending` counts it
 * (docs/rest.md; `async_kernel.wire.pending_total`): the shell queues' `pending`,
 * plus every caller's `scheduled`, plus every caller queue's `pending`.
 */
export function pendingParts(snapshot: Partial<ISnapshot>): IPendingParts {
  let shell = 0;
  let scheduled = 0;
  let queued = 0;
  for (const q of snapshot.shell?.queues ?? []) {
    shell += count(q?.pending);
  }
  for (const caller of snapshot.callers ?? []) {
    scheduled += count(caller?.scheduled);
    for (const q of caller?.queues ?? []) {
      queued += count(q?.pending);
    }
  }
  return { shell, scheduled, queued, total: shell + scheduled + queued };
}

/** Total waiting work of a snapshot (the list row's `pending`). */
export function pendingTotal(snapshot: Partial<ISnapshot>): number {
  return pendingParts(snapshot).total;
}

/** How many callers a snapshot has (the list row's `callers`). */
export function callerCount(snapshot: Partial<ISnapshot>): number {
  return (snapshot.callers ?? []).length;
}

/** Seconds the running cell has run, or null when no cell runs. */
export function cellRunningFor(snapshot: Partial<ISnapshot>): number | null {
  let longest: number | null = null;
  for (const q of snapshot.shell?.queues ?? []) {
    if (
      q &&
      q.msg_type === 'execute_request' &&
      q.running &&
      typeof q.running_for === 'number'
    ) {
      longest = longest === null ? q.running_for : Math.max(longest, q.running_for);
    }
  }
  return longest;
}

/** Something of a snapshot that runs now, with how long it has run. */
export interface IRunningItem {
  what: string;
  seconds: number;
}

/**
 * Everything in a snapshot that runs and carries a duration: the running shell
 * requests (`running_for`), and caller queue items when the kernel adds
 * `running_for` to them (not in wire contract v1).
 */
export function runningItems(snapshot: Partial<ISnapshot>): IRunningItem[] {
  const items: IRunningItem[] = [];
  for (const q of snapshot.shell?.queues ?? []) {
    if (q && q.running && typeof q.running_for === 'number') {
      const where = q.subshell_id ? ` (subshell ${q.subshell_id})` : '';
      const what = q.msg_type === 'execute_request' ? 'cell' : q.msg_type;
      items.push({ what: `${what}${where}`, seconds: q.running_for });
    }
  }
  for (const caller of snapshot.callers ?? []) {
    for (const q of caller?.queues ?? []) {
      if (q && q.running && typeof q.running_for === 'number') {
        items.push({
          what: `${caller.name}: ${q.function}`,
          seconds: q.running_for
        });
      }
    }
  }
  return items;
}

/** The longest running item of a snapshot, or null. */
export function longestRunning(
  snapshot: Partial<ISnapshot>
): IRunningItem | null {
  let best: IRunningItem | null = null;
  for (const item of runningItems(snapshot)) {
    if (!best || item.seconds > best.seconds) {
      best = item;
    }
  }
  return best;
}

/** Whether a duration is past the warning threshold. */
export function isOverThreshold(
  seconds: number | null | undefined,
  warnAfterSeconds: number
): boolean {
  return (
    typeof seconds === 'number' &&
    isFinite(warnAfterSeconds) &&
    warnAfterSeconds >= 0 &&
    seconds > warnAfterSeconds
  );
}

/** Whether something in the snapshot has run longer than `warnAfterSeconds`. */
export function hasLongRunning(
  snapshot: Partial<ISnapshot>,
  warnAfterSeconds: number
): boolean {
  const longest = longestRunning(snapshot);
  return !!longest && isOverThreshold(longest.seconds, warnAfterSeconds);
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The status item's text for a snapshot: `⚙ 5 callers · 3 pending · cell 12 s`. */
export function statusText(snapshot: Partial<ISnapshot>): string {
  const parts = [
    plural(callerCount(snapshot), 'caller', 'callers'),
    `${pendingTotal(snapshot)} pending`
  ];
  const cell = cellRunningFor(snapshot);
  if (cell !== null) {
    parts.push(`cell ${formatDuration(cell)}`);
  }
  return `⚙ ${parts.join(' · ')}`;
}

/** A time of the wire (ISO 8601, UTC) as a local clock time, or the text itself. */
export function formatClock(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  if (isNaN(date.getTime())) {
    return iso;
  }
  return date.toLocaleTimeString();
}

/** How the status item looks. */
export type StatusMod = 'hidden' | 'loading' | 'async' | 'warning' | 'other';

/** Everything the status item shows. */
export interface IStatusView {
  /** False: no kernel, the item is hidden. */
  visible: boolean;
  text: string;
  /** `ak-mod-warning`, `ak-mod-other`, `ak-mod-loading` or none. */
  className: string;
  mod: StatusMod;
  /** The tooltip. */
  title: string;
}

/** What the status item knows about the current kernel. */
export interface IStatusInput {
  kernelId: string | null;
  kernelName?: string | null;
  snapshot: ISnapshot | null;
  error: IErrorInfo | null;
  warnAfterSeconds: number;
}

const CLICK_HINT = 'Click for the Kernel Callers panel.';

/**
 * The status item for the current kernel: hidden without a kernel; `no answer`
 * (warning) when the kernel or the server does not answer; `not an async kernel`
 * (dim) for other kernels; else `⚙ N callers · N pending[ · cell N s]`, with the
 * warning look when something has run longer than `warnAfterSeconds`.
 */
export function statusView(input: IStatusInput): IStatusView {
  const { kernelId, snapshot, error, warnAfterSeconds } = input;
  if (!kernelId) {
    return { visible: false, text: '', className: '', mod: 'hidden', title: '' };
  }
  const name = input.kernelName || snapshot?.kernel_name || 'kernel';
  const who = `${name} (${shortId(kernelId)})`;
  if (error && error.kind === 'not-async') {
    return {
      visible: true,
      text: 'not an async kernel',
      className: 'ak-mod-other',
      mod: 'other',
      title: `Kernel ${who} is not an async kernel: it does not report its callers.`
    };
  }
  if (error && isNoAnswer(error.kind)) {
    const last = snapshot
      ? `\nLast answer: ${statusText(snapshot)} at ${formatClock(snapshot.fetched_at)}.`
      : '';
    return {
      visible: true,
      text: 'no answer',
      className: 'ak-mod-warning',
      mod: 'warning',
      title: `Kernel ${who} did not answer (${error.reason}): ${error.message}${last}\n${CLICK_HINT}`
    };
  }
  if (error && !snapshot) {
    return {
      visible: true,
      text: error.label,
      className: error.kind === 'unknown-kernel' ? 'ak-mod-other' : 'ak-mod-warning',
      mod: error.kind === 'unknown-kernel' ? 'other' : 'warning',
      title: `Kernel ${who}: ${error.reason}: ${error.message}\n${CLICK_HINT}`
    };
  }
  if (!snapshot) {
    return {
      visible: true,
      text: '⚙ …',
      className: 'ak-mod-loading',
      mod: 'loading',
      title: `Asking kernel ${who} for its callers…`
    };
  }
  const parts = pendingParts(snapshot);
  const longest = longestRunning(snapshot);
  const warn = !!longest && isOverThreshold(longest.seconds, warnAfterSeconds);
  const lines = [
    `Async kernel ${who} · ${snapshot.backend} · pid ${snapshot.pid}`,
    `${plural(callerCount(snapshot), 'caller', 'callers')}: ${(snapshot.callers ?? [])
      .map(c => c.name)
      .join(', ')}`,
    `${parts.total} pending (shell ${parts.shell}, scheduled ${parts.scheduled}, in caller queues ${parts.queued})`
  ];
  if (longest) {
    lines.push(
      `Running longest: ${longest.what}, ${formatDuration(longest.seconds)}` +
        (warn ? ` (over ${formatDuration(warnAfterSeconds)})` : '')
    );
  }
  if (error) {
    lines.push(`Last request failed: ${error.reason}: ${error.message}`);
  }
  lines.push(`Fetched at ${formatClock(snapshot.fetched_at)}.`, CLICK_HINT);
  return {
    visible: true,
    text: statusText(snapshot),
    className: warn || error ? 'ak-mod-warning' : '',
    mod: warn || error ? 'warning' : 'async',
    title: lines.join('\n')
  };
}

/** What a list row shows in its note cell, and how. */
export interface IRowNote {
  /** `no answer`, `not alive`, `not an async kernel`, ... or `''`. */
  text: string;
  /** `error` (the row gets `ak-mod-error`), `other` (`ak-mod-other`) or `''`. */
  mod: 'error' | 'other' | '';
  /** The full error message, for the cell's tooltip. */
  title: string;
}

/** The note of a list row: its error, or that it is not an async kernel. */
export function rowNote(row: IKernelRow): IRowNote {
  if (row.error) {
    const info = classifyRowError(row.error);
    return { text: info.label, mod: 'error', title: row.error };
  }
  if (!row.async_kernel) {
    return {
      text: 'not an async kernel',
      mod: 'other',
      title: 'This kernel does not report its callers.'
    };
  }
  return { text: '', mod: '', title: '' };
}

/** A count of a row as the list reports it (`''` when the row has none). */
export function rowCount(value: number | undefined): string {
  return typeof value === 'number' ? String(value) : '';
}
