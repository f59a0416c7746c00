import { ApiError, classifyError, classifyRowError, isNoAnswer, isRetryable } from '../errors';

describe('classifyError', () => {
  it.each([
    [504, 'NoAnswerInTime', 'no-answer', 'no answer'],
    [503, 'KernelNotAlive', 'not-alive', 'not alive'],
    [409, 'NotAnAsyncKernel', 'not-async', 'not an async kernel'],
    [404, 'UnknownKernel', 'unknown-kernel', 'unknown kernel'],
    [502, 'KernelReplyError', 'bad-reply', 'bad reply'],
    [403, 'Forbidden', 'forbidden', 'forbidden'],
    [500, 'Internal Server Error', 'http', 'HTTP 500']
  ])('%p %s → %s', (status, reason, kind, label) => {
    const info = classifyError(new ApiError(status, reason, 'message'));
    expect(info).toMatchObject({ status, reason, kind, label, message: 'message' });
  });

  it('goes by the status when the reason is unknown', () => {
    expect(classifyError(new ApiError(504, 'Gateway Timeout', '')).kind).toBe('no-answer');
    expect(classifyError(new ApiError(409, '', '')).label).toBe('not an async kernel');
  });

  it('takes anything else for a network failure', () => {
    const info = classifyError(new TypeError('Failed to fetch'));
    expect(info).toMatchObject({ kind: 'network', status: 0, label: 'no answer', message: 'Failed to fetch' });
    expect(classifyError('weird').kind).toBe('network');
  });

  it('knows what is worth retrying', () => {
    expect(isRetryable('no-answer')).toBe(true);
    expect(isRetryable('network')).toBe(true);
    expect(isRetryable('not-async')).toBe(false);
    expect(isNoAnswer('not-alive')).toBe(true);
    expect(isNoAnswer('not-async')).toBe(false);
  });
});

describe('classifyRowError', () => {
  it('reads the reason before the colon', () => {
    expect(classifyRowError('NoAnswerInTime: within 5 s')).toMatchObject({
      kind: 'no-answer',
      reason: 'NoAnswerInTime',
      label: 'no answer'
    });
  });

  it('tolerates text without a reason', () => {
    expect(classifyRowError('something broke').kind).toBe('http');
  });
});
