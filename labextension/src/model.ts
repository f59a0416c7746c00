/**
 * The view model: what the status item and the Kernel Callers panel show, kept
 * fresh by polls. Pure TypeScript: no DOM and no JupyterLab imports (only
 * Lumino), and its fetching is injected, so the unit tests drive it with fakes.
 */
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { classifyError, IErrorInfo, isRetryable } from './errors';
import { IKernelListReply, IKernelRow, ISnapshot } from './wire';

/** How the model asks the server (the REST endpoints of docs/rest.md). */
export interface IFetcher {
  /** `GET api/async-kernel/kernels`. Rejects with an `ApiError` or a network error. */
  list(): Promise<IKernelListReply>;
  /** `GET api/async-kernel/kernels/{id}`. Rejects with an `ApiError` or a network error. */
  snapshot(kernelId: string): Promise<ISnapshot>;
}

/** What the model knows about one kernel it is asked about. */
export interface IKernelView {
  readonly kernelId: string;
  /** The last good snapshot (kept when a later request fails). */
  readonly snapshot: ISnapshot | null;
  /** The error of the last request; null after a good answer. */
  readonly error: IErrorInfo | null;
  /** A snapshot is shown but the last request failed: it is out of date. */
  readonly stale: boolean;
  /** `Date.now()` of the last answer applied (good or not), or null. */
  readonly updatedAt: number | null;
}

/** What the model knows about the server's kernels. */
export interface IListView {
  /** The rows of the last good answer; null before the first. */
  readonly rows: ReadonlyArray<IKernelRow> | null;
  /** The error of the last request; null after a good answer. */
  readonly error: IErrorInfo | null;
  readonly updatedAt: number | null;
}

/** Who needs the model to poll. */
export type Consumer = 'status' | 'panel';

/** Settings the model applies live. */
export interface IModelSettings {
  /** Seconds between polls (at least 0.5). */
  pollIntervalSeconds: number;
  /** Durations past this many seconds get the warning look. */
  warnAfterSeconds: number;
}

/** Default settings (schema/plugin.json says the same). */
export const DEFAULT_SETTINGS: IModelSettings = {
  pollIntervalSeconds: 2,
  warnAfterSeconds: 30
};

/** The smallest poll interval, in seconds. */
export const MIN_POLL_INTERVAL = 0.5;

/** Options of the model. */
export interface IModelOptions {
  fetcher: IFetcher;
  settings?: Partial<IModelSettings>;
  /**
   * Whether the model runs its own polls (default true). Without them nothing is
   * fetched until `refresh()` is called (the unit tests drive it so).
   */
  poll?: boolean;
  /** The polls' standby (default `'when-hidden'`). */
  standby?: Poll.Standby;
  /** The clock (default `Date.now`). */
  now?: () => number;
}

class KernelState implements IKernelView {
  constructor(readonly kernelId: string) {}
  snapshot: ISnapshot | null = null;
  error: IErrorInfo | null = null;
  updatedAt: number | null = null;
  /** The sequence number of the newest request whose answer was applied. */
  appliedSeq = 0;
  get stale(): boolean {
    return !!this.snapshot && !!this.error;
  }
}

/** The outcome of one request, for the polls (reject → back off). */
type Outcome = 'ok' | 'dropped' | 'retryable' | 'final';

/**
 * The view model of the extension.
 *
 * - `setCurrentKernel()` says which kernel the current notebook or console has;
 *   `select()` picks another one for the panel (null: follow the current one).
 * - `acquire('status')` makes it poll the snapshot of the current kernel;
 *   `acquire('panel')` adds the kernel list and the selected kernel's snapshot.
 *   Nothing is polled without a consumer.
 * - An answer is applied only while its kernel is still wanted and no newer
 *   answer for it was applied: a late answer for a kernel the user moved away
 *   from is dropped, even if they came back to it meanwhile.
 * - Kernels that answered 409 (not an async kernel) are not asked again.
 */
export class AsyncKernelModel implements IDisposable {
  constructor(options: IModelOptions) {
    this._fetcher = options.fetcher;
    this._now = options.now ?? Date.now;
    this._settings = normalizeSettings({
      ...DEFAULT_SETTINGS,
      ...(options.settings ?? {})
    });
    if (options.poll ?? true) {
      const standby = options.standby ?? 'when-hidden';
      this._snapshotPoll = new Poll({
        name: 'async-kernel:snapshots',
        auto: false,
        factory: () => this._pollSnapshots(),
        frequency: this._frequency(),
        standby
      });
      this._listPoll = new Poll({
        name: 'async-kernel:list',
        auto: false,
        factory: () => this._pollList(),
        frequency: this._frequency(),
        standby
      });
    }
  }

  /** Emitted whenever anything shown may have changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  get settings(): Readonly<IModelSettings> {
    return this._settings;
  }

  get warnAfterSeconds(): number {
    return this._settings.warnAfterSeconds;
  }

  /** Apply settings now (the polls take the new interval at once). */
  configure(settings: Partial<IModelSettings>): void {
    const given: Partial<IModelSettings> = {};
    for (const key of ['pollIntervalSeconds', 'warnAfterSeconds'] as const) {
      if (settings[key] !== undefined && settings[key] !== null) {
        given[key] = settings[key];
      }
    }
    const next = normalizeSettings({ ...this._settings, ...given });
    const intervalChanged =
      next.pollIntervalSeconds !== this._settings.pollIntervalSeconds;
    this._settings = next;
    if (intervalChanged) {
      const frequency = this._frequency();
      if (this._snapshotPoll) {
        this._snapshotPoll.frequency = frequency;
      }
      if (this._listPoll) {
        this._listPoll.frequency = frequency;
      }
    }
    this._emit();
  }

  /** The kernel of the current notebook or console, or null. */
  get currentKernelId(): string | null {
    return this._current;
  }

  /** The current kernel's name, as the session knows it (before any answer). */
  get currentKernelName(): string | null {
    return this._currentName;
  }

  setCurrentKernel(kernelId: string | null, kernelName?: string | null): void {
    const id = kernelId || null;
    this._currentName = id ? kernelName ?? null : null;
    if (id === this._current) {
      this._emit();
      return;
    }
    this._current = id;
    this._wantedChanged();
  }

  /** The kernel chosen in the panel; null when the panel follows the current one. */
  get explicitSelection(): string | null {
    return this._selected;
  }

  /** The kernel the panel shows: the chosen one, else the current one. */
  get selectedKernelId(): string | null {
    return this._selected ?? this._current;
  }

  /** Show `kernelId` in the panel; null: follow the current kernel. */
  select(kernelId: string | null): void {
    const id = kernelId || null;
    if (id === this._selected) {
      return;
    }
    this._selected = id;
    this._wantedChanged();
  }

  /** What is known about a wanted kernel, or null. */
  kernel(kernelId: string | null): IKernelView | null {
    return kernelId ? this._states.get(kernelId) ?? null : null;
  }

  /** What is known about the current kernel (null without one, or without a consumer). */
  get current(): IKernelView | null {
    return this.kernel(this._current);
  }

  /** What is known about the selected kernel. */
  get selected(): IKernelView | null {
    return this.kernel(this.selectedKernelId);
  }

  /** The kernel list (only polled while the panel needs it). */
  get list(): IListView {
    return this._list;
  }

  /** The list row of a kernel, if the list has it. */
  row(kernelId: string | null): IKernelRow | null {
    if (!kernelId) {
      return null;
    }
    return this._list.rows?.find(r => r.kernel_id === kernelId) ?? null;
  }

  /** Whether a consumer holds the model. */
  isWanted(consumer: Consumer): boolean {
    return this._consumers[consumer] > 0;
  }

  /**
   * Make the model poll for `consumer` until the returned disposable is disposed.
   */
  acquire(consumer: Consumer): IDisposable {
    this._consumers[consumer] += 1;
    this._wantedChanged();
    let released = false;
    return new DisposableDelegate(() => {
      if (released || this._isDisposed) {
        return;
      }
      released = true;
      this._consumers[consumer] -= 1;
      this._wantedChanged();
    });
  }

  /** The kernels whose snapshots are polled now. */
  wantedKernels(): string[] {
    const ids: string[] = [];
    if (this._consumers.status > 0 && this._current) {
      ids.push(this._current);
    }
    const selected = this.selectedKernelId;
    if (this._consumers.panel > 0 && selected && !ids.includes(selected)) {
      ids.push(selected);
    }
    return ids;
  }

  /**
   * Ask now: the snapshots of the wanted kernels and, for the panel, the list.
   * Resolves when the answers are in (and applied, unless out of date).
   */
  async refresh(): Promise<void> {
    await Promise.all([this.refreshSnapshots(), this.refreshList()]);
  }

  /** One round of snapshot requests for the wanted kernels. */
  async refreshSnapshots(): Promise<Outcome[]> {
    const ids = this.wantedKernels().filter(id => !this._notAsync.has(id));
    return Promise.all(ids.map(id => this._fetchSnapshot(id)));
  }

  /** One list request, if the panel needs the list. */
  async refreshList(): Promise<Outcome> {
    if (this._isDisposed || this._consumers.panel <= 0) {
      return 'dropped';
    }
    const seq = ++this._seq;
    let reply: IKernelListReply | null = null;
    let error: IErrorInfo | null = null;
    try {
      reply = await this._fetcher.list();
    } catch (e) {
      error = classifyError(e);
    }
    if (
      this._isDisposed ||
      this._consumers.panel <= 0 ||
      seq <= this._listAppliedSeq
    ) {
      return 'dropped';
    }
    this._listAppliedSeq = seq;
    if (error) {
      this._list = { ...this._list, error, updatedAt: this._now() };
      this._emit();
      return isRetryable(error.kind) ? 'retryable' : 'final';
    }
    const rows = Array.isArray(reply?.kernels) ? reply!.kernels : [];
    this._list = { rows, error: null, updatedAt: this._now() };
    let wantedChanged = false;
    for (const row of rows) {
      if (row && row.async_kernel === false && !row.error) {
        this._markNotAsync(row.kernel_id);
      }
    }
    // a chosen kernel that is gone: follow the current kernel again
    if (this._selected && !rows.some(r => r.kernel_id === this._selected)) {
      this._selected = null;
      wantedChanged = true;
    }
    if (wantedChanged) {
      this._wantedChanged();
    } else {
      this._emit();
    }
    return 'ok';
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._snapshotPoll?.dispose();
    this._listPoll?.dispose();
    this._states.clear();
    Signal.clearData(this);
  }

  private async _fetchSnapshot(kernelId: string): Promise<Outcome> {
    const state = this._states.get(kernelId);
    if (!state || this._isDisposed) {
      return 'dropped';
    }
    const seq = ++this._seq;
    let snapshot: ISnapshot | null = null;
    let error: IErrorInfo | null = null;
    try {
      snapshot = await this._fetcher.snapshot(kernelId);
    } catch (e) {
      error = classifyError(e);
    }
    // Out of date: the kernel is no longer wanted (its state was dropped, maybe
    // recreated since), or a newer answer for it was applied already.
    if (
      this._isDisposed ||
      this._states.get(kernelId) !== state ||
      seq <= state.appliedSeq
    ) {
      return 'dropped';
    }
    state.appliedSeq = seq;
    state.updatedAt = this._now();
    if (error) {
      state.error = error;
      if (error.kind === 'not-async') {
        state.snapshot = null;
        this._notAsync.add(kernelId);
      }
      this._emit();
      return isRetryable(error.kind) ? 'retryable' : 'final';
    }
    if (snapshot && snapshot.kernel_id && snapshot.kernel_id !== kernelId) {
      // an answer for another kernel: never show it as this one's
      return 'dropped';
    }
    state.snapshot = snapshot;
    state.error = null;
    this._emit();
    return 'ok';
  }

  private _markNotAsync(kernelId: string): void {
    if (this._notAsync.has(kernelId)) {
      return;
    }
    this._notAsync.add(kernelId);
    const state = this._states.get(kernelId);
    if (state && !state.snapshot) {
      state.error = {
        kind: 'not-async',
        status: 409,
        reason: 'NotAnAsyncKernel',
        message: 'the kernel does not answer caller_state_request',
        label: 'not an async kernel'
      };
      state.updatedAt = this._now();
    }
  }

  /** The wanted kernels (or consumers) changed: keep only their states, ask at once. */
  private _wantedChanged(): void {
    if (this._isDisposed) {
      return;
    }
    const wanted = this.wantedKernels();
    for (const id of Array.from(this._states.keys())) {
      if (!wanted.includes(id)) {
        this._states.delete(id);
      }
    }
    for (const id of wanted) {
      if (!this._states.has(id)) {
        const state = new KernelState(id);
        if (this._notAsync.has(id)) {
          state.error = {
            kind: 'not-async',
            status: 409,
            reason: 'NotAnAsyncKernel',
            message: 'the kernel does not answer caller_state_request',
            label: 'not an async kernel'
          };
        }
        this._states.set(id, state);
      }
    }
    if (this._consumers.panel <= 0 && this._list.rows !== null) {
      this._list = { rows: null, error: null, updatedAt: null };
    }
    this._syncPolls();
    this._emit();
  }

  /** Run each poll only while someone needs it; ask at once on a change. */
  private _syncPolls(): void {
    const snapshots = this._snapshotPoll;
    if (snapshots) {
      if (this._consumers.status > 0 || this._consumers.panel > 0) {
        if (snapshots.state.phase === 'constructed' || snapshots.state.phase === 'stopped') {
          void snapshots.start();
        } else {
          void snapshots.refresh();
        }
      } else if (snapshots.state.phase !== 'stopped') {
        void snapshots.stop();
      }
    }
    const list = this._listPoll;
    if (list) {
      if (this._consumers.panel > 0) {
        if (list.state.phase === 'constructed' || list.state.phase === 'stopped') {
          void list.start();
        }
      } else if (list.state.phase !== 'constructed' && list.state.phase !== 'stopped') {
        void list.stop();
      }
    }
  }

  private async _pollSnapshots(): Promise<void> {
    const outcomes = await this.refreshSnapshots();
    if (outcomes.includes('retryable')) {
      throw new Error('a kernel did not answer'); // the poll backs off
    }
  }

  private async _pollList(): Promise<void> {
    if ((await this.refreshList()) === 'retryable') {
      throw new Error('the kernel list failed'); // the poll backs off
    }
  }

  private _frequency() {
    const interval = this._settings.pollIntervalSeconds * 1000;
    return {
      interval,
      backoff: true,
      max: Math.max(interval, 30 * 1000)
    };
  }

  private _emit(): void {
    if (!this._isDisposed) {
      this._changed.emit();
    }
  }

  private _fetcher: IFetcher;
  private _now: () => number;
  private _settings: IModelSettings;
  private _snapshotPoll: Poll | null = null;
  private _listPoll: Poll | null = null;
  private _changed = new Signal<this, void>(this);
  private _isDisposed = false;
  private _current: string | null = null;
  private _currentName: string | null = null;
  private _selected: string | null = null;
  private _states = new Map<string, KernelState>();
  private _notAsync = new Set<string>();
  private _list: IListView = { rows: null, error: null, updatedAt: null };
  private _listAppliedSeq = 0;
  private _seq = 0;
  private _consumers: { [C in Consumer]: number } = { status: 0, panel: 0 };
}

/** Settings with their bounds applied (bad values fall back to the defaults). */
export function normalizeSettings(settings: Partial<IModelSettings>): IModelSettings {
  const interval = Number(settings.pollIntervalSeconds);
  const warn = Number(settings.warnAfterSeconds);
  return {
    pollIntervalSeconds: isFinite(interval)
      ? Math.max(MIN_POLL_INTERVAL, interval)
      : DEFAULT_SETTINGS.pollIntervalSeconds,
    warnAfterSeconds:
      isFinite(warn) && warn >= 0 ? warn : DEFAULT_SETTINGS.warnAfterSeconds
  };
}
