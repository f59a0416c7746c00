/**
 * The shapes of the async-kernel REST answers (docs/rest.md) and of the
 * `caller_state_reply` content they carry (async_kernel/wire.py).
 *
 * Kernels may add fields; every type here lists only what the extension reads,
 * and readers tolerate missing counters (a kernel of another version).
 */

/** One kind of shell request the kernel queues (`shell.queues[]`). */
export interface IShellQueueRow {
  msg_type: string;
  subshell_id: string | null;
  pending: number;
  running: boolean;
  /** Seconds the running request has run; null when idle. */
  running_for: number | null;
}

/** The kernel's shell (`caller_state_reply.shell`). */
export interface IShellState {
  queues: IShellQueueRow[];
}

/** One open `Caller.queue_call` queue of a caller (`callers[].queues[]`). */
export interface ICallerQueueRow {
  function: string;
  pending: number;
  running: boolean;
  /** Not in the wire contract (v1); read when a kernel adds it. */
  running_for?: number | null;
}

/** One caller: an event loop in a thread of the kernel (`callers[]`). */
export interface ICallerRow {
  name: string;
  thread_id: number | null;
  thread_name?: string | null;
  backend: string;
  running: boolean;
  state?: string;
  protected: boolean;
  parent: string | null;
  children: string[];
  worker: boolean;
  idle_workers: number;
  scheduled: number;
  active: number;
  queues: ICallerQueueRow[];
}

/** The snapshot endpoint's answer: `caller_state_reply` content plus identity. */
export interface ISnapshot {
  status: 'ok';
  version: number;
  pid: number;
  backend: string;
  started: string;
  execution_count: number;
  shell: IShellState;
  callers: ICallerRow[];
  working?: boolean;
  kernel_id: string;
  kernel_name: string;
  execution_state: string;
  last_activity?: string | null;
  fetched_at: string;
}

/** One row of the list endpoint (`kernels[]`). */
export interface IKernelRow {
  kernel_id: string;
  kernel_name: string;
  execution_state: string;
  last_activity?: string | null;
  working?: boolean;
  async_kernel: boolean;
  backend?: string;
  pid?: number;
  callers?: number;
  pending?: number;
  /** Only when this kernel's snapshot failed: `"Reason: message"`. */
  error?: string;
}

/** The list endpoint's answer. */
export interface IKernelListReply {
  kernels: IKernelRow[];
}
