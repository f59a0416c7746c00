import { ApiError } from '../errors';
import { AsyncKernelModel, IFetcher } from '../model';
import { IKernelListReply, ISnapshot } from '../wire';
import { Deferred, snapshot } from './fixtures';

const A = 'aaaaaaaa-0000-0000-0000-000000000001';
const B = 'bbbbbbbb-0000-0000-0000-000000000002';

/** A fetcher whose every answer the test gives by hand. */
class FakeFetcher implements IFetcher {
  snapshots: Array<{ kernelId: string; answer: Deferred<ISnapshot> }> = [];
  lists: Array<Deferred<IKernelListReply>> = [];

  snapshot(kernelId: string): Promise<ISnapshot> {
    const answer = new Deferred<ISnapshot>();
    this.snapshots.push({ kernelId, answer });
    return answer.promise;
  }

  list(): Promise<IKernelListReply> {
    const answer = new Deferred<IKernelListReply>();
    this.lists.push(answer);
    return answer.promise;
  }

  /** The pending request for a kernel (the last one made). */
  last(kernelId: string): Deferred<ISnapshot> {
    const found = this.snapshots.filter(s => s.kernelId === kernelId);
    if (!found.length) {
      throw new Error(`no request for ${kernelId}`);
    }
    return found[found.length - 1].answer;
  }

  calls(kernelId: string): number {
    return this.snapshots.filter(s => s.kernelId === kernelId).length;
  }
}

function snap(kernelId: string, callers = 5): ISnapshot {
  const s = snapshot({ kernel_id: kernelId });
  s.callers = s.callers.slice(0, callers);
  return s;
}

function setup(): { model: AsyncKernelModel; fetcher: FakeFetcher } {
  const fetcher = new FakeFetcher();
  const model = new AsyncKernelModel({ fetcher, poll: false });
  return { model, fetcher };
}

describe('AsyncKernelModel', () => {
  it('asks nothing without a consumer', async () => {
    const { model, fetcher } = setup();
    model.setCurrentKernel(A);
    await model.refresh();
    expect(fetcher.snapshots).toHaveLength(0);
    expect(fetcher.lists).toHaveLength(0);
    expect(model.current).toBeNull();
  });

  it('shows the current kernel’s snapshot for the status item', async () => {
    const { model, fetcher } = setup();
    model.acquire('status');
    model.setCurrentKernel(A, 'async');
    const done = model.refreshSnapshots();
    fetcher.last(A).resolve(snap(A));
    expect(await done).toEqual(['ok']);
    expect(model.current?.snapshot?.kernel_id).toBe(A);
    expect(model.current?.error).toBeNull();
    expect(fetcher.lists).toHaveLength(0); // the list is the panel's
  });

  it('drops a late answer for the previous kernel', async () => {
    const { model, fetcher } = setup();
    model.acquire('status');
    model.setCurrentKernel(A);
    const first = model.refreshSnapshots();
    let changes = 0;
    model.changed.connect(() => changes++);

    model.setCurrentKernel(B); // while A's request is in flight
    const second = model.refreshSnapshots();
    changes = 0;
    fetcher.last(A).resolve(snap(A));
    expect(await first).toEqual(['dropped']);
    expect(changes).toBe(0);
    expect(model.currentKernelId).toBe(B);
    expect(model.current?.kernelId).toBe(B);
    expect(model.current?.snapshot).toBeNull();
    expect(model.kernel(A)).toBeNull();

    fetcher.last(B).resolve(snap(B, 2));
    expect(await second).toEqual(['ok']);
    expect(model.current?.snapshot?.kernel_id).toBe(B);
    expect(model.current?.snapshot?.callers).toHaveLength(2);
  });

  it('drops a late error for the previous kernel too', async () => {
    const { model, fetcher } = setup();
    model.acquire('status');
    model.setCurrentKernel(A);
    const first = model.refreshSnapshots();
    model.setCurrentKernel(B);
    fetcher.last(A).reject(new ApiError(504, 'NoAnswerInTime', 'late'));
    expect(await first).toEqual(['dropped']);
    expect(model.current?.error).toBeNull();
  });

  it('drops a late answer after going A → B → A (it belongs to the first visit)', async () => {
    const { model, fetcher } = setup();
    model.acquire('status');
    model.setCurrentKernel(A);
    const old = model.refreshSnapshots();
    const oldRequest = fetcher.last(A);
    model.setCurrentKernel(B);
    model.setCurrentKernel(A);
    const fresh = model.refreshSnapshots();
    const freshRequest = fetcher.last(A);
    expect(freshRequest).not.toBe(oldRequest);

    oldRequest.resolve(snap(A, 1));
    expect(await old).toEqual(['dropped']);
    expect(model.current?.snapshot).toBeNull();

    freshRequest.resolve(snap(A, 3));
    expect(await fresh).toEqual(['ok']);
    expect(model.current?.snapshot?.callers).toHaveLength(3);
  });

  it('never lets an older answer overwrite a newer one for the same kernel', async () => {
    const { model, fetcher } = setup();
    model.acquire('status');
    model.setCurrentKernel(A);
    const first = model.refreshSnapshots();
    const firstRequest = fetcher.last(A);
    const second = model.refreshSnapshots();
    fetcher.last(A).resolve(snap(A, 4));
    expect(await second).toEqual(['ok']);
    firstRequest.resolve(snap(A, 1));
    expect(await first).toEqual(['dropped']);
    expect(model.current?.snapshot?.callers).toHaveLength(4);
  });

  it('ignores an answer that names another kernel', async () => {
    const { model, fetcher } = setup();
    model.acquire('status');
    model.setCurrentKernel(A);
    const done = model.refreshSnapshots();
    fetcher.last(A).resolve(snap(B));
    expect(await done).toEqual(['dropped']);
    expect(model.current?.snapshot).toBeNull();
  });

  it('keeps the last good snapshot, marked stale, when the kernel stops answering', async () => {
    const { model, fetcher } = setup();
    model.acquire('status');
    model.setCurrentKernel(A);
    let done = model.refreshSnapshots();
    fetcher.last(A).resolve(snap(A));
    await done;
    done = model.refreshSnapshots();
    fetcher.last(A).reject(new ApiError(504, 'NoAnswerInTime', 'did not answer within 5 s'));
    expect(await done).toEqual(['retryable']);
    expect(model.current?.snapshot?.kernel_id).toBe(A);
    expect(model.current?.error).toMatchObject({ kind: 'no-answer', label: 'no answer' });
    expect(model.current?.stale).toBe(true);

    done = model.refreshSnapshots();
    fetcher.last(A).resolve(snap(A));
    await done;
    expect(model.current?.stale).toBe(false);
    expect(model.current?.error).toBeNull();
  });

  it('maps a network failure to no answer', async () => {
    const { model, fetcher } = setup();
    model.acquire('status');
    model.setCurrentKernel(A);
    const done = model.refreshSnapshots();
    fetcher.last(A).reject(new TypeError('Failed to fetch'));
    expect(await done).toEqual(['retryable']);
    expect(model.current?.error).toMatchObject({ kind: 'network', label: 'no answer' });
  });

  it('stops asking a kernel that answered 409', async () => {
    const { model, fetcher } = setup();
    model.acquire('status');
    model.setCurrentKernel(A);
    const done = model.refreshSnapshots();
    fetcher.last(A).reject(new ApiError(409, 'NotAnAsyncKernel', 'not an async kernel'));
    expect(await done).toEqual(['final']);
    expect(model.current?.error).toMatchObject({ kind: 'not-async', label: 'not an async kernel' });
    await model.refreshSnapshots();
    expect(fetcher.calls(A)).toBe(1);

    // still known after moving away and back
    model.setCurrentKernel(B);
    model.setCurrentKernel(A);
    expect(model.current?.error?.kind).toBe('not-async');
    await model.refreshSnapshots();
    expect(fetcher.calls(A)).toBe(1);
  });

  it('learns from the list which kernels are not async', async () => {
    const { model, fetcher } = setup();
    model.acquire('panel');
    model.setCurrentKernel(B);
    const listed = model.refreshList();
    fetcher.lists[0].resolve({
      kernels: [
        { kernel_id: A, kernel_name: 'async', execution_state: 'idle', async_kernel: true, callers: 5, pending: 0 },
        { kernel_id: B, kernel_name: 'python3', execution_state: 'idle', async_kernel: false }
      ]
    });
    expect(await listed).toBe('ok');
    expect(model.list.rows).toHaveLength(2);
    expect(model.current?.error?.kind).toBe('not-async');
    await model.refreshSnapshots();
    expect(fetcher.calls(B)).toBe(0);
  });

  it('polls the list and the selected kernel for the panel only', async () => {
    const { model, fetcher } = setup();
    const status = model.acquire('status');
    model.setCurrentKernel(A);
    expect(model.wantedKernels()).toEqual([A]);
    const panel = model.acquire('panel');
    model.select(B);
    expect(model.selectedKernelId).toBe(B);
    expect(model.wantedKernels()).toEqual([A, B]);
    void model.refresh();
    expect(fetcher.lists).toHaveLength(1);
    expect(fetcher.calls(A)).toBe(1);
    expect(fetcher.calls(B)).toBe(1);

    panel.dispose();
    expect(model.wantedKernels()).toEqual([A]);
    expect(model.kernel(B)).toBeNull();
    expect(await model.refreshList()).toBe('dropped');
    expect(fetcher.lists).toHaveLength(1);

    status.dispose();
    status.dispose(); // twice is harmless
    expect(model.wantedKernels()).toEqual([]);
  });

  it('selects the current kernel by default, and follows it again when the chosen one is gone', async () => {
    const { model, fetcher } = setup();
    model.acquire('panel');
    model.setCurrentKernel(A);
    expect(model.selectedKernelId).toBe(A);
    model.select(B);
    expect(model.selectedKernelId).toBe(B);
    expect(model.explicitSelection).toBe(B);
    const listed = model.refreshList();
    fetcher.lists[0].resolve({
      kernels: [{ kernel_id: A, kernel_name: 'async', execution_state: 'idle', async_kernel: true }]
    });
    await listed;
    expect(model.explicitSelection).toBeNull();
    expect(model.selectedKernelId).toBe(A);
  });

  it('drops a late list answer once the panel is gone', async () => {
    const { model, fetcher } = setup();
    const panel = model.acquire('panel');
    const listed = model.refreshList();
    panel.dispose();
    fetcher.lists[0].resolve({ kernels: [] });
    expect(await listed).toBe('dropped');
    expect(model.list.rows).toBeNull();
  });

  it('keeps the last list when a list request fails', async () => {
    const { model, fetcher } = setup();
    model.acquire('panel');
    let listed = model.refreshList();
    fetcher.lists[0].resolve({
      kernels: [{ kernel_id: A, kernel_name: 'async', execution_state: 'idle', async_kernel: true }]
    });
    await listed;
    listed = model.refreshList();
    fetcher.lists[1].reject(new TypeError('Failed to fetch'));
    expect(await listed).toBe('retryable');
    expect(model.list.rows).toHaveLength(1);
    expect(model.list.error?.label).toBe('no answer');
  });

  it('drops every answer after dispose', async () => {
    const { model, fetcher } = setup();
    model.acquire('status');
    model.setCurrentKernel(A);
    const done = model.refreshSnapshots();
    let changes = 0;
    model.changed.connect(() => changes++);
    model.dispose();
    fetcher.last(A).resolve(snap(A));
    expect(await done).toEqual(['dropped']);
    expect(changes).toBe(0);
    expect(model.isDisposed).toBe(true);
  });

  it('applies settings with their bounds', () => {
    const { model } = setup();
    expect(model.settings).toEqual({ pollIntervalSeconds: 2, warnAfterSeconds: 30 });
    let changes = 0;
    model.changed.connect(() => changes++);
    model.configure({ warnAfterSeconds: 5, pollIntervalSeconds: 0.1 });
    expect(model.settings).toEqual({ pollIntervalSeconds: 0.5, warnAfterSeconds: 5 });
    expect(changes).toBe(1);
    model.configure({ warnAfterSeconds: NaN as any, pollIntervalSeconds: undefined });
    expect(model.settings).toEqual({ pollIntervalSeconds: 0.5, warnAfterSeconds: 30 });
  });
});

/** Wait until `condition` holds (polling every 10 ms), failing after `ms`. */
async function waitFor(condition: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) {
      throw new Error('timed out waiting');
    }
    await new Promise(r => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

describe('AsyncKernelModel with its polls', () => {
  it('polls while acquired, backs off on errors, stops when released and on dispose', async () => {
    let calls = 0;
    let fail = true;
    const fetcher: IFetcher = {
      list: async () => ({ kernels: [] }),
      snapshot: async (id: string) => {
        calls++;
        if (fail) {
          throw new ApiError(504, 'NoAnswerInTime', 'no');
        }
        return snap(id);
      }
    };
    const model = new AsyncKernelModel({
      fetcher,
      standby: 'never',
      settings: { pollIntervalSeconds: 0.5 }
    });
    try {
      model.setCurrentKernel(A);
      await sleep(100);
      expect(calls).toBe(0); // nobody needs it yet

      const lease = model.acquire('status');
      await waitFor(() => calls >= 1); // asked at once
      await waitFor(() => model.current?.error?.label === 'no answer');

      fail = false;
      await waitFor(() => model.current?.snapshot?.kernel_id === A);

      lease.dispose();
      await sleep(50);
      const stoppedAt = calls;
      await sleep(800);
      expect(calls).toBe(stoppedAt);

      model.acquire('status');
      await waitFor(() => calls > stoppedAt);
      model.dispose();
      await sleep(50);
      const disposedAt = calls;
      await sleep(700);
      expect(calls).toBe(disposedAt);
    } finally {
      model.dispose();
    }
  });
});
