import { ICallerRow, ISnapshot } from '../wire';

export function caller(name: string, extra: Partial<ICallerRow> = {}): ICallerRow {
  return {
    name,
    thread_id: 1,
    backend: 'asyncio',
    running: true,
    protected: false,
    parent: null,
    children: [],
    worker: false,
    idle_workers: 0,
    scheduled: 0,
    active: 0,
    queues: [],
    ...extra
  };
}

/** The abridged answer of docs/rest.md (a cell ran time.sleep(3), a worker queue). */
export function snapshot(extra: Partial<ISnapshot> = {}): ISnapshot {
  return {
    status: 'ok',
    version: 1,
    pid: 8426,
    backend: 'asyncio',
    started: '2026-11-25T02:32:39.164735Z',
    execution_count: 1,
    shell: {
      queues: [
        { msg_type: 'execute_request', subshell_id: null, pending: 0, running: true, running_for: 1.007338 },
        { msg_type: 'comm_msg', subshell_id: null, pending: 0, running: false, running_for: null }
      ]
    },
    callers: [
      caller('MainThread', {
        protected: true,
        children: ['ControlThread', 'ShellChannel', 'IOPub'],
        active: 1,
        queues: [{ function: 'async_kernel._kernel.execute.Executor.execute_request', pending: 0, running: true }]
      }),
      caller('ControlThread', { protected: true, parent: 'MainThread' }),
      caller('ShellChannel', { protected: true, parent: 'MainThread' }),
      caller('IOPub', { protected: true, parent: 'MainThread' }),
      caller('worker', {
        scheduled: 3,
        active: 1,
        queues: [{ function: '__main__.handler', pending: 3, running: true }]
      })
    ],
    kernel_id: 'fb7765ee-1aa0-41e4-8ec9-c75bccc90d33',
    kernel_name: 'async',
    execution_state: 'busy',
    fetched_at: '2026-11-25T02:32:40.424934Z',
    ...extra
  };
}

/** A promise with its resolve/reject outside. */
export class Deferred<T> {
  promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (reason: unknown) => void;
  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}
