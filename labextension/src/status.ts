/**
 * The status bar item: the current kernel's callers, pending work and running cell.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IStatusView, statusView } from './format';
import { AsyncKernelModel } from './model';

const MOD_CLASSES = ['ak-mod-warning', 'ak-mod-other', 'ak-mod-loading'];

/**
 * `⚙ 5 callers · 3 pending · cell 12 s`, `no answer` or `not an async kernel`
 * for the kernel of the current notebook or console; hidden without one.
 */
export class AsyncKernelStatus extends Widget {
  constructor(model: AsyncKernelModel, onClick: () => void) {
    super();
    this._model = model;
    this.addClass('ak-StatusItem');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this._text = document.createElement('span');
    this._text.className = 'jp-StatusBar-TextItem ak-StatusItem-text';
    this.node.appendChild(this._text);
    this.node.addEventListener('click', () => onClick());
    this.node.addEventListener('keydown', (event: KeyboardEvent) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        onClick();
      }
    });
    this._lease = model.acquire('status');
    model.changed.connect(this._onChanged, this);
    this._view = this._compute();
    this._render();
  }

  /** Whether the item is shown (there is a current kernel). */
  get isVisibleItem(): boolean {
    return this._view.visible;
  }

  /** Emitted when the item is to be shown or hidden. */
  get activeStateChanged(): ISignal<this, void> {
    return this._activeStateChanged;
  }

  /** What the item shows now. */
  get view(): IStatusView {
    return this._view;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._lease.dispose();
    Signal.clearData(this);
    super.dispose();
  }

  protected onUpdateRequest(msg: Message): void {
    this._render();
  }

  private _compute(): IStatusView {
    const model = this._model;
    const current = model.current;
    return statusView({
      kernelId: model.currentKernelId,
      kernelName: model.currentKernelName,
      snapshot: current?.snapshot ?? null,
      error: current?.error ?? null,
      warnAfterSeconds: model.warnAfterSeconds
    });
  }

  private _onChanged(): void {
    const before = this._view.visible;
    this._view = this._compute();
    if (before !== this._view.visible) {
      this._activeStateChanged.emit();
    }
    this.update();
  }

  private _render(): void {
    const view = this._view;
    this._text.textContent = view.text;
    // the texts without the gear get it from CSS, outside the text
    this._text.dataset.icon = view.text.startsWith('⚙') ? 'text' : 'css';
    this.node.title = view.title;
    for (const cls of MOD_CLASSES) {
      this.node.classList.toggle(cls, view.className === cls);
    }
  }

  private _model: AsyncKernelModel;
  private _text: HTMLSpanElement;
  private _lease: IDisposable;
  private _view: IStatusView;
  private _activeStateChanged = new Signal<this, void>(this);
}
