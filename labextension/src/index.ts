/**
 * async-kernel for JupyterLab: a status bar item for the current kernel and a
 * "Kernel Callers" panel, fed by the async_kernel_server REST endpoints.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  ISessionContext,
  MainAreaWidget,
  WidgetTracker
} from '@jupyterlab/apputils';
import { IConsoleTracker } from '@jupyterlab/console';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { createFetcher } from './api';
import { AsyncKernelModel, DEFAULT_SETTINGS, IModelSettings } from './model';
import { CallersView, PANEL_ID } from './panel';
import { AsyncKernelStatus } from './status';

/** The plugin id; its settings are `async-kernel:plugin` (schema/plugin.json). */
export const PLUGIN_ID = 'async-kernel:plugin';

/** The status bar item's id. */
export const STATUS_ITEM_ID = 'async-kernel:status';

/** Command ids. */
export namespace CommandIDs {
  export const showCallers = 'async-kernel:show-callers';
}

/**
 * Follows the kernel of the current notebook or console into the model.
 *
 * Focusing the Kernel Callers panel itself keeps the kernel it shows; any other
 * widget without a kernel clears it (the status item hides).
 */
class CurrentKernelTracker {
  constructor(
    private _app: JupyterFrontEnd,
    private _model: AsyncKernelModel,
    private _notebooks: INotebookTracker | null,
    private _consoles: IConsoleTracker | null,
    private _labShell: ILabShell | null,
    private _isOwn: (widget: Widget) => boolean
  ) {
    const update = () => this._update();
    if (_labShell) {
      _labShell.currentChanged.connect(update);
    } else if (_app.shell.currentChanged) {
      _app.shell.currentChanged.connect(update);
    }
    _notebooks?.currentChanged.connect(update);
    _consoles?.currentChanged.connect(update);
    void _app.restored.then(update);
    update();
  }

  private _update(): void {
    const widget = this._app.shell.currentWidget;
    let context: ISessionContext | null | undefined;
    if (widget && this._notebooks?.has(widget)) {
      context = (widget as any).sessionContext as ISessionContext;
    } else if (widget && this._consoles?.has(widget)) {
      context = (widget as any).sessionContext as ISessionContext;
    } else if (widget && this._isOwn(widget)) {
      context = undefined; // keep the kernel shown
    } else if (this._labShell) {
      context = null;
    } else {
      // other shells (Notebook 7): the tracked notebook or console
      context =
        this._notebooks?.currentWidget?.sessionContext ??
        this._consoles?.currentWidget?.sessionContext ??
        null;
    }
    if (context !== undefined) {
      this._setContext(context);
    }
  }

  private _setContext(context: ISessionContext | null): void {
    if (context === this._context) {
      this._push();
      return;
    }
    if (this._context && !this._context.isDisposed) {
      this._context.kernelChanged.disconnect(this._push, this);
      this._context.sessionChanged.disconnect(this._push, this);
      this._context.disposed.disconnect(this._onDisposed, this);
    }
    this._context = context;
    if (context) {
      context.kernelChanged.connect(this._push, this);
      context.sessionChanged.connect(this._push, this);
      context.disposed.connect(this._onDisposed, this);
    }
    this._push();
  }

  private _onDisposed(): void {
    this._context = null;
    this._push();
  }

  private _push(): void {
    const kernel = this._context?.session?.kernel ?? null;
    this._model.setCurrentKernel(kernel?.id ?? null, kernel?.name ?? null);
  }

  private _context: ISessionContext | null = null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Shows the callers, queues and running work of async kernels: a status bar item and the Kernel Callers panel.',
  autoStart: true,
  optional: [
    IStatusBar,
    ILabShell,
    INotebookTracker,
    IConsoleTracker,
    ISettingRegistry,
    ICommandPalette,
    IMainMenu,
    ILayoutRestorer
  ],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    labShell: ILabShell | null,
    notebooks: INotebookTracker | null,
    consoles: IConsoleTracker | null,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    mainMenu: IMainMenu | null,
    restorer: ILayoutRestorer | null
  ) => {
    const model = new AsyncKernelModel({
      fetcher: createFetcher(app.serviceManager.serverSettings),
      settings: DEFAULT_SETTINGS
    });

    const tracker = new WidgetTracker<MainAreaWidget<CallersView>>({
      namespace: 'async-kernel'
    });
    let panel: MainAreaWidget<CallersView> | null = null;

    app.commands.addCommand(CommandIDs.showCallers, {
      label: 'Kernel Callers',
      caption:
        'Show the callers (event loops in threads), queues and running work of the kernels',
      execute: () => {
        if (!panel || panel.isDisposed) {
          const content = new CallersView(model);
          panel = new MainAreaWidget({ content });
          panel.id = PANEL_ID;
          panel.title.label = 'Kernel Callers';
          panel.title.caption = 'Callers, queues and running work of the kernels';
          panel.title.closable = true;
          panel.addClass('ak-CallersWidget');
          void tracker.add(panel);
        }
        if (!panel.isAttached) {
          const ref = app.shell.currentWidget;
          app.shell.add(panel, 'main', {
            mode: ref ? 'split-right' : undefined,
            ref: ref?.id
          } as any);
        }
        app.shell.activateById(panel.id);
        return panel;
      }
    });

    if (restorer) {
      void restorer.restore(tracker, {
        command: CommandIDs.showCallers,
        name: () => 'callers'
      });
    }

    new CurrentKernelTracker(
      app,
      model,
      notebooks,
      consoles,
      labShell,
      widget => widget.id === PANEL_ID
    );

    if (palette) {
      palette.addItem({ command: CommandIDs.showCallers, category: 'Kernel' });
    }
    if (mainMenu) {
      mainMenu.viewMenu.addGroup([{ command: CommandIDs.showCallers }], 100);
    }

    if (statusBar) {
      const item = new AsyncKernelStatus(model, () => {
        void app.commands.execute(CommandIDs.showCallers);
      });
      statusBar.registerStatusItem(STATUS_ITEM_ID, {
        item,
        align: 'left',
        rank: 4,
        isActive: () => item.isVisibleItem,
        activeStateChanged: item.activeStateChanged
      });
    }

    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings) => {
        const composite = settings.composite as Partial<IModelSettings>;
        model.configure({
          pollIntervalSeconds: composite.pollIntervalSeconds,
          warnAfterSeconds: composite.warnAfterSeconds
        });
      };
      Promise.all([settingRegistry.load(PLUGIN_ID), app.restored])
        .then(([settings]) => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error('async-kernel: could not load settings', reason);
        });
    }
  }
};

export default plugin;
