/**
 * The "Kernel Callers" panel: the server's kernels, and for the selected one its
 * callers as a tree, its shell queues and its snapshot as JSON.
 */
import { Clipboard } from '@jupyterlab/apputils';
import { IDisposable } from '@lumino/disposable';
import { Message } from '@lumino/messaging';
import { h, VirtualDOM, VirtualElement } from '@lumino/virtualdom';
import { Widget } from '@lumino/widgets';

import {
  callerCount,
  formatClock,
  formatDuration,
  isOverThreshold,
  pendingParts,
  rowCount,
  rowNote,
  shortId
} from './format';
import { AsyncKernelModel, IKernelView } from './model';
import { buildCallerTree, ICallerNode } from './tree';
import { ICallerQueueRow, IKernelRow, ISnapshot } from './wire';

/** The panel's widget id. */
export const PANEL_ID = 'async-kernel-callers';

/** Classes on many elements at once. */
function cls(...names: Array<string | false | null | undefined>): string {
  return names.filter(Boolean).join(' ');
}

function seconds(value: number | null | undefined): string {
  return typeof value === 'number' ? `${value.toFixed(3)} s` : '';
}

/**
 * The panel's content. It polls (through the model) only while it is visible.
 */
export class CallersView extends Widget {
  constructor(model: AsyncKernelModel) {
    super();
    this._model = model;
    this.addClass('ak-CallersPanel');
    model.changed.connect(this._onChanged, this);
    this._render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._setActive(false);
    if (this._copiedTimer) {
      clearTimeout(this._copiedTimer);
    }
    this._model.changed.disconnect(this._onChanged, this);
    super.dispose();
  }

  /** Copy the selected kernel's last snapshot to the clipboard, as JSON. */
  copyJson(): boolean {
    const snapshot = this._model.selected?.snapshot;
    if (!snapshot) {
      return false;
    }
    Clipboard.copyToSystem(JSON.stringify(snapshot, null, 2));
    this._copied = true;
    if (this._copiedTimer) {
      clearTimeout(this._copiedTimer);
    }
    this._copiedTimer = setTimeout(() => {
      this._copied = false;
      this._copiedTimer = null;
      this.update();
    }, 2000);
    this.update();
    return true;
  }

  protected onAfterAttach(msg: Message): void {
    this._setActive(this.isVisible);
    this.update();
  }

  protected onBeforeDetach(msg: Message): void {
    this._setActive(false);
  }

  protected onAfterShow(msg: Message): void {
    this._setActive(true);
    this.update();
  }

  protected onAfterHide(msg: Message): void {
    this._setActive(false);
  }

  protected onUpdateRequest(msg: Message): void {
    this._render();
  }

  private _setActive(active: boolean): void {
    if (active && !this._lease) {
      this._lease = this._model.acquire('panel');
    } else if (!active && this._lease) {
      this._lease.dispose();
      this._lease = null;
    }
  }

  private _onChanged(): void {
    if (this.isVisible) {
      this.update();
    }
  }

  private _render(): void {
    VirtualDOM.render(
      [this._renderToolbar(), this._renderList(), this._renderSelected()],
      this.node
    );
  }

  private _renderToolbar(): VirtualElement {
    const model = this._model;
    const snapshot = model.selected?.snapshot ?? null;
    const following = !model.explicitSelection;
    return h.div(
      { className: 'ak-Toolbar' },
      h.button(
        {
          className: 'jp-Button jp-mod-styled jp-mod-reject ak-Refresh',
          title: 'Ask the kernels now',
          onclick: () => void model.refresh()
        },
        'Refresh'
      ),
      h.button(
        {
          className: 'jp-Button jp-mod-styled jp-mod-accept ak-CopyJson',
          title: snapshot
            ? 'Copy the selected kernel’s snapshot (caller_state_reply) as JSON'
            : 'No snapshot to copy',
          ...(snapshot ? {} : { disabled: 'disabled' }),
          onclick: () => void this.copyJson()
        },
        'Copy JSON'
      ),
      this._copied ? h.span({ className: 'ak-CopyStatus' }, 'Copied') : null,
      following
        ? null
        : h.button(
            {
              className: 'jp-Button jp-mod-styled jp-mod-reject ak-FollowCurrent',
              title: 'Show the kernel of the current notebook or console',
              onclick: () => model.select(null)
            },
            'Follow current'
          ),
      h.span(
        { className: 'ak-PollInfo' },
        `polls every ${model.settings.pollIntervalSeconds} s · warns after ${formatDuration(model.warnAfterSeconds)}`
      )
    );
  }

  private _renderList(): VirtualElement {
    const model = this._model;
    const list = model.list;
    const selectedId = model.selectedKernelId;
    const currentId = model.currentKernelId;
    const rows = list.rows ?? [];
    const body =
      list.rows === null
        ? [
            h.tr(
              { className: 'ak-mod-empty' },
              h.td({ colspan: '7' }, list.error ? '' : 'Loading…')
            )
          ]
        : rows.length === 0
          ? [h.tr({ className: 'ak-mod-empty' }, h.td({ colspan: '7' }, 'No running kernels'))]
          : rows.map(row => this._renderRow(row, row.kernel_id === selectedId, row.kernel_id === currentId));
    return h.section(
      { className: 'ak-Section' },
      h.h3({ className: 'ak-SectionTitle' }, 'Kernels'),
      list.error
        ? h.div(
            {
              className: 'ak-ListError',
              title: `${list.error.reason}: ${list.error.message}`
            },
            `Kernel list: ${list.error.label} — ${list.error.message}` +
              (list.rows ? ' (showing the last answer)' : '')
          )
        : null,
      h.table(
        { className: cls('ak-KernelList', list.error && list.rows && 'ak-mod-stale') },
        h.thead(
          h.tr(
            h.th('Kernel'),
            h.th('Id'),
            h.th('State'),
            h.th('Working'),
            h.th({ className: 'ak-mod-number' }, 'Callers'),
            h.th({ className: 'ak-mod-number' }, 'Pending'),
            h.th('')
          )
        ),
        h.tbody(body)
      )
    );
  }

  private _renderRow(row: IKernelRow, selected: boolean, current: boolean): VirtualElement {
    const note = rowNote(row);
    return h.tr(
      {
        key: row.kernel_id,
        className: cls(
          'ak-KernelRow',
          selected && 'ak-mod-selected',
          current && 'ak-mod-current',
          note.mod === 'error' && 'ak-mod-error',
          note.mod === 'other' && 'ak-mod-other'
        ),
        dataset: { 'kernel-id': row.kernel_id },
        title: `${row.kernel_id}${current ? ' (current notebook or console)' : ''}`,
        onclick: () => this._model.select(row.kernel_id)
      },
      h.td({ className: 'ak-KernelName' }, row.kernel_name + (current ? ' ●' : '')),
      h.td({ className: 'ak-KernelId' }, h.code(shortId(row.kernel_id))),
      h.td({ className: 'ak-KernelState' }, row.execution_state ?? ''),
      h.td({ className: 'ak-KernelWorking' }, row.async_kernel ? (row.working ? 'yes' : 'no') : ''),
      h.td({ className: 'ak-mod-number ak-KernelCallers' }, rowCount(row.callers)),
      h.td({ className: 'ak-mod-number ak-KernelPending' }, rowCount(row.pending)),
      note.mod === 'error'
        ? h.td({ className: 'ak-KernelError', title: note.title }, note.text)
        : h.td({ className: 'ak-KernelNote', title: note.title }, note.text)
    );
  }

  private _renderSelected(): VirtualElement {
    const model = this._model;
    const id = model.selectedKernelId;
    if (!id) {
      return h.section(
        { className: 'ak-Section ak-Selected' },
        h.div(
          { className: 'ak-SnapshotNote' },
          'No kernel selected: open a notebook or console, or click a kernel above.'
        )
      );
    }
    const view = model.selected;
    const row = model.row(id);
    const name = view?.snapshot?.kernel_name ?? row?.kernel_name ??
      (id === model.currentKernelId ? model.currentKernelName : null) ?? 'kernel';
    const notAsync = view?.error?.kind === 'not-async';
    return h.section(
      {
        className: cls('ak-Section ak-Selected', view?.stale && 'ak-mod-stale'),
        dataset: { 'kernel-id': id }
      },
      h.h3({ className: 'ak-SectionTitle' }, `${name} `, h.code(shortId(id))),
      notAsync
        ? h.div(
            { className: 'ak-SnapshotNote ak-mod-other' },
            'not an async kernel: it does not report its callers.'
          )
        : this._renderSnapshot(view)
    );
  }

  private _renderSnapshot(view: IKernelView | null): VirtualElement {
    const snapshot = view?.snapshot ?? null;
    const error = view?.error ?? null;
    const children: Array<VirtualElement | null> = [];
    if (snapshot) {
      children.push(this._renderHeader(snapshot));
    }
    if (error) {
      const stale = snapshot
        ? ` Showing the snapshot fetched at ${formatClock(snapshot.fetched_at)}.`
        : '';
      children.push(
        h.div(
          {
            className: cls('ak-SnapshotError', `ak-mod-${error.kind}`),
            title: `${error.reason}: ${error.message}`
          },
          h.strong(error.label),
          ` — ${error.reason}: ${error.message}.${stale}`
        )
      );
    }
    if (!snapshot) {
      if (!error) {
        children.push(h.div({ className: 'ak-SnapshotNote' }, 'Asking the kernel…'));
      }
      return h.div({ className: 'ak-Snapshot' }, children);
    }
    children.push(
      h.h4({ className: 'ak-SubTitle' }, 'Shell queues'),
      this._renderShellQueues(snapshot),
      h.h4({ className: 'ak-SubTitle' }, `Callers (${callerCount(snapshot)})`),
      h.ul({ className: 'ak-CallerTree' }, buildCallerTree(snapshot.callers ?? []).map(n => this._renderCaller(n)))
    );
    return h.div({ className: 'ak-Snapshot' }, children);
  }

  private _renderHeader(snapshot: ISnapshot): VirtualElement {
    const pending = pendingParts(snapshot);
    const parts = [
      `backend ${snapshot.backend}`,
      `pid ${snapshot.pid}`,
      `execution count ${snapshot.execution_count}`,
      `${snapshot.execution_state ?? ''}`,
      typeof snapshot.working === 'boolean' ? (snapshot.working ? 'working' : 'not working') : '',
      `${pending.total} pending`
    ].filter(Boolean);
    return h.div(
      { className: 'ak-SnapshotHeader' },
      h.span({ className: 'ak-SnapshotFacts' }, parts.join(' · ')),
      h.span(
        { className: 'ak-FetchedAt', title: `fetched_at ${snapshot.fetched_at}; kernel started ${snapshot.started}` },
        ` · fetched ${formatClock(snapshot.fetched_at)}`
      )
    );
  }

  private _renderShellQueues(snapshot: ISnapshot): VirtualElement {
    const warnAfter = this._model.warnAfterSeconds;
    const queues = snapshot.shell?.queues ?? [];
    return h.table(
      { className: 'ak-ShellQueues' },
      h.thead(
        h.tr(
          h.th('Request'),
          h.th('Subshell'),
          h.th({ className: 'ak-mod-number' }, 'Pending'),
          h.th('Running'),
          h.th({ className: 'ak-mod-number' }, 'Running for')
        )
      ),
      h.tbody(
        queues.length
          ? queues.map(q => {
              const warn = q.running && isOverThreshold(q.running_for, warnAfter);
              return h.tr(
                {
                  className: cls('ak-ShellQueue', q.running && 'ak-mod-running', warn && 'ak-mod-warning'),
                  dataset: { 'msg-type': q.msg_type }
                },
                h.td(h.code(q.msg_type)),
                h.td(q.subshell_id ?? 'main'),
                h.td({ className: 'ak-mod-number' }, String(q.pending ?? 0)),
                h.td(q.running ? 'running' : 'idle'),
                h.td(
                  { className: 'ak-mod-number ak-RunningFor', title: seconds(q.running_for) },
                  q.running && typeof q.running_for === 'number' ? formatDuration(q.running_for) : ''
                )
              );
            })
          : [h.tr(h.td({ colspan: '5' }, 'No shell queues'))]
      )
    );
  }

  private _renderCaller(node: ICallerNode): VirtualElement {
    const c = node.row;
    const flags: string[] = [];
    if (c.protected) {
      flags.push('protected');
    }
    if (c.worker) {
      flags.push('worker');
    }
    const state = c.state ?? (c.running ? 'running' : 'not running');
    const thread =
      c.thread_id === null || c.thread_id === undefined
        ? 'no thread'
        : `thread ${c.thread_id}` +
          (c.thread_name && c.thread_name !== c.name ? ` (${c.thread_name})` : '');
    return h.li(
      {
        key: c.name,
        className: cls(
          'ak-Caller',
          node.orphan && 'ak-mod-orphan',
          !c.running && 'ak-mod-stopped'
        ),
        dataset: { 'caller-name': c.name },
        title: node.orphan ? `parent ${c.parent} is not in the snapshot` : ''
      },
      h.div(
        { className: 'ak-CallerRow' },
        h.span({ className: 'ak-CallerName' }, c.name),
        h.span({ className: 'ak-CallerThread' }, thread),
        h.span({ className: 'ak-CallerBackend' }, c.backend),
        h.span({ className: cls('ak-CallerState', `ak-mod-${state}`) }, state),
        flags.map(f => h.span({ className: cls('ak-Flag', `ak-mod-${f}`) }, f)),
        h.span(
          { className: 'ak-CallerCounts' },
          `scheduled ${c.scheduled ?? 0} · active ${c.active ?? 0} · idle workers ${c.idle_workers ?? 0}`
        )
      ),
      (c.queues ?? []).map(q => this._renderQueue(q)),
      node.children.length ? h.ul(node.children.map(k => this._renderCaller(k))) : null
    );
  }

  private _renderQueue(q: ICallerQueueRow): VirtualElement {
    const runningFor = typeof q.running_for === 'number' ? q.running_for : null;
    const warn = q.running && isOverThreshold(runningFor, this._model.warnAfterSeconds);
    return h.div(
      {
        className: cls('ak-CallerQueue', q.running && 'ak-mod-running', warn && 'ak-mod-warning'),
        dataset: { function: q.function }
      },
      h.span({ className: 'ak-QueueLabel' }, 'queue_call'),
      h.code({ className: 'ak-QueueFunction' }, q.function),
      h.span({ className: 'ak-QueuePending' }, `pending ${q.pending ?? 0}`),
      h.span(
        { className: 'ak-QueueRunning' },
        q.running ? (runningFor !== null ? `running ${formatDuration(runningFor)}` : 'running') : 'idle'
      )
    );
  }

  private _model: AsyncKernelModel;
  private _lease: IDisposable | null = null;
  private _copied = false;
  private _copiedTimer: ReturnType<typeof setTimeout> | null = null;
}
