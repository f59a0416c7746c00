import { ApiError, classifyError } from '../errors';
import {
  callerCount,
  cellRunningFor,
  formatDuration,
  hasLongRunning,
  longestRunning,
  pendingParts,
  pendingTotal,
  rowNote,
  statusText,
  statusView
} from '../format';
import { caller, snapshot } from './fixtures';

const ID = 'fb7765ee-1aa0-41e4-8ec9-c75bccc90d33';

describe('formatDuration', () => {
  it.each([
    [0, '0 s'],
    [0.4, '0 s'],
    [12, '12 s'],
    [12.9, '12 s'],
    [59.99, '59 s'],
    [60, '1 min'],
    [184, '3 min 4 s'],
    [3599, '59 min 59 s'],
    [3600, '1 h'],
    [3720, '1 h 2 min'],
    [3725, '1 h 2 min'],
    [26 * 3600 + 180, '26 h 3 min']
  ])('%p s → %p', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  it('treats missing and bad values as 0 s', () => {
    expect(formatDuration(null)).toBe('0 s');
    expect(formatDuration(undefined)).toBe('0 s');
    expect(formatDuration(NaN)).toBe('0 s');
    expect(formatDuration(-5)).toBe('0 s');
  });
});

describe('pending totals', () => {
  it('counts like the list row: shell pending + scheduled + caller queue pending', () => {
    const s = snapshot();
    s.shell.queues[0].pending = 2;
    expect(pendingParts(s)).toEqual({ shell: 2, scheduled: 3, queued: 3, total: 8 });
    expect(pendingTotal(s)).toBe(8);
  });

  it('tolerates missing rows and counters', () => {
    expect(pendingTotal({})).toBe(0);
    expect(pendingTotal({ callers: [{ name: 'x' } as any], shell: {} as any })).toBe(0);
  });

  it('counts callers', () => {
    expect(callerCount(snapshot())).toBe(5);
    expect(callerCount({})).toBe(0);
  });
});

describe('statusText', () => {
  it('shows callers, pending and the running cell', () => {
    const s = snapshot();
    s.shell.queues[0].running_for = 12.3;
    expect(statusText(s)).toBe('⚙ 5 callers · 6 pending · cell 12 s');
  });

  it('leaves out the cell while no cell runs', () => {
    const s = snapshot();
    s.shell.queues[0] = { ...s.shell.queues[0], running: false, running_for: null };
    expect(statusText(s)).toBe('⚙ 5 callers · 6 pending');
  });

  it('says 1 caller', () => {
    expect(statusText({ callers: [caller('MainThread')], shell: { queues: [] } })).toBe(
      '⚙ 1 caller · 0 pending'
    );
  });

  it('formats long cells', () => {
    const s = snapshot();
    s.shell.queues[0].running_for = 184.2;
    expect(statusText(s)).toContain('cell 3 min 4 s');
    s.shell.queues[0].running_for = 3725;
    expect(statusText(s)).toContain('cell 1 h 2 min');
  });

  it('takes the cell from execute_request queues only', () => {
    const s = snapshot();
    s.shell.queues[0] = { ...s.shell.queues[0], running: false, running_for: null };
    s.shell.queues[1] = { ...s.shell.queues[1], running: true, running_for: 99 };
    expect(cellRunningFor(s)).toBeNull();
    expect(statusText(s)).not.toContain('cell');
  });
});

describe('warning threshold', () => {
  it('warns for a cell past the threshold', () => {
    const s = snapshot();
    s.shell.queues[0].running_for = 31;
    expect(hasLongRunning(s, 30)).toBe(true);
    expect(hasLongRunning(s, 31)).toBe(false);
    const view = statusView({ kernelId: ID, snapshot: s, error: null, warnAfterSeconds: 30 });
    expect(view.className).toBe('ak-mod-warning');
    expect(view.text).toBe('⚙ 5 callers · 6 pending · cell 31 s');
    expect(view.title).toContain('over 30 s');
  });

  it('does not warn below it', () => {
    const view = statusView({ kernelId: ID, snapshot: snapshot(), error: null, warnAfterSeconds: 30 });
    expect(view.className).toBe('');
    expect(view.mod).toBe('async');
  });

  it('warns for any shell request, e.g. a comm message', () => {
    const s = snapshot();
    s.shell.queues[1] = { ...s.shell.queues[1], running: true, running_for: 45 };
    expect(longestRunning(s)).toEqual({ what: 'comm_msg', seconds: 45 });
    expect(statusView({ kernelId: ID, snapshot: s, error: null, warnAfterSeconds: 30 }).className).toBe(
      'ak-mod-warning'
    );
  });

  it('warns for a caller queue item when the kernel adds running_for', () => {
    const s = snapshot();
    s.callers[4].queues[0].running_for = 120;
    expect(longestRunning(s)).toEqual({ what: 'worker: __main__.handler', seconds: 120 });
    expect(hasLongRunning(s, 30)).toBe(true);
  });

  it('ignores durations of idle rows', () => {
    const s = snapshot();
    s.shell.queues[0] = { ...s.shell.queues[0], running: false, running_for: 100 };
    expect(hasLongRunning(s, 30)).toBe(false);
  });
});

describe('statusView', () => {
  it('is hidden without a kernel', () => {
    const view = statusView({ kernelId: null, snapshot: null, error: null, warnAfterSeconds: 30 });
    expect(view.visible).toBe(false);
  });

  it('shows a loading state before the first answer', () => {
    const view = statusView({ kernelId: ID, snapshot: null, error: null, warnAfterSeconds: 30 });
    expect(view.visible).toBe(true);
    expect(view.mod).toBe('loading');
  });

  it.each([504, 503, 0])('says no answer on %p, with a warning look', status => {
    const error = classifyError(
      status ? new ApiError(status, status === 504 ? 'NoAnswerInTime' : 'KernelNotAlive', 'x') : new TypeError('Failed to fetch')
    );
    const view = statusView({ kernelId: ID, snapshot: null, error, warnAfterSeconds: 30 });
    expect(view.text).toBe('no answer');
    expect(view.className).toBe('ak-mod-warning');
  });

  it('keeps the last snapshot in the tooltip when the kernel stops answering', () => {
    const error = classifyError(new ApiError(504, 'NoAnswerInTime', 'no answer within 5 s'));
    const view = statusView({ kernelId: ID, snapshot: snapshot(), error, warnAfterSeconds: 30 });
    expect(view.text).toBe('no answer');
    expect(view.title).toContain('NoAnswerInTime');
    expect(view.title).toContain('Last answer: ⚙ 5 callers');
  });

  it('says not an async kernel on 409, dim', () => {
    const error = classifyError(new ApiError(409, 'NotAnAsyncKernel', 'not an async kernel'));
    const view = statusView({ kernelId: ID, kernelName: 'python3', snapshot: null, error, warnAfterSeconds: 30 });
    expect(view.text).toBe('not an async kernel');
    expect(view.className).toBe('ak-mod-other');
    expect(view.title).toContain('python3');
  });

  it('has details in the tooltip', () => {
    const view = statusView({ kernelId: ID, snapshot: snapshot(), error: null, warnAfterSeconds: 30 });
    expect(view.title).toContain('pid 8426');
    expect(view.title).toContain('MainThread, ControlThread');
    expect(view.title).toContain('6 pending (shell 0, scheduled 3, in caller queues 3)');
  });
});

describe('rowNote', () => {
  const base = { kernel_id: ID, kernel_name: 'async', execution_state: 'busy', async_kernel: true };

  it('says no answer for a row whose kernel timed out', () => {
    const note = rowNote({
      ...base,
      error: 'NoAnswerInTime: the kernel did not answer caller_state_request within 5 s'
    });
    expect(note).toEqual({
      text: 'no answer',
      mod: 'error',
      title: 'NoAnswerInTime: the kernel did not answer caller_state_request within 5 s'
    });
  });

  it('names other errors', () => {
    expect(rowNote({ ...base, error: 'KernelNotAlive: dead' }).text).toBe('not alive');
    expect(rowNote({ ...base, error: 'SomethingElse: boom' }).text).toBe('SomethingElse');
  });

  it('says not an async kernel for other kernels', () => {
    expect(rowNote({ ...base, kernel_name: 'python3', async_kernel: false })).toMatchObject({
      text: 'not an async kernel',
      mod: 'other'
    });
  });

  it('is empty for a good async row', () => {
    expect(rowNote({ ...base, callers: 5, pending: 0 }).text).toBe('');
  });
});
