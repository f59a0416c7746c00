/**
 * Errors of the REST endpoints and how the extension names them.
 *
 * Pure: no JupyterLab imports, so the unit tests load it as is.
 */

/** What went wrong, as the views switch on it. */
export type ErrorKind =
  | 'no-answer' // 504 NoAnswerInTime: the kernel lives but did not answer in time
  | 'not-alive' // 503 KernelNotAlive: the kernel process is not running
  | 'network' // the Jupyter server did not answer at all
  | 'not-async' // 409 NotAnAsyncKernel: the kernel does not speak caller_state
  | 'unknown-kernel' // 404 UnknownKernel
  | 'bad-reply' // 502 KernelReplyError
  | 'forbidden' // 403
  | 'http'; // anything else

/** An error answer of the async-kernel REST API (or a network failure: status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** A classified error, ready for display. */
export interface IErrorInfo {
  kind: ErrorKind;
  /** HTTP status, 0 for a network failure. */
  status: number;
  /** The API's stable `reason` (`NoAnswerInTime`, ...), or the error's name. */
  reason: string;
  /** For people. */
  message: string;
  /** Short text for a table cell or the panel: `no answer`, `not an async kernel`, ... */
  label: string;
}

const REASON_KINDS: { [reason: string]: ErrorKind } = {
  NoAnswerInTime: 'no-answer',
  KernelNotAlive: 'not-alive',
  NotAnAsyncKernel: 'not-async',
  UnknownKernel: 'unknown-kernel',
  KernelReplyError: 'bad-reply'
};

const STATUS_KINDS: { [status: number]: ErrorKind } = {
  0: 'network',
  403: 'forbidden',
  404: 'unknown-kernel',
  409: 'not-async',
  502: 'bad-reply',
  503: 'not-alive',
  504: 'no-answer'
};

/** Short labels per kind. */
export function errorLabel(kind: ErrorKind, status = 0): string {
  switch (kind) {
    case 'no-answer':
      return 'no answer';
    case 'not-alive':
      return 'not alive';
    case 'network':
      return 'no answer';
    case 'not-async':
      return 'not an async kernel';
    case 'unknown-kernel':
      return 'unknown kernel';
    case 'bad-reply':
      return 'bad reply';
    case 'forbidden':
      return 'forbidden';
    default:
      return status ? `HTTP ${status}` : 'error';
  }
}

/** Whether the kernel (or the server) did not answer: the status item says `no answer`. */
export function isNoAnswer(kind: ErrorKind): boolean {
  return kind === 'no-answer' || kind === 'not-alive' || kind === 'network';
}

/** Whether asking again later may help (the polls back off on these). */
export function isRetryable(kind: ErrorKind): boolean {
  return kind !== 'not-async' && kind !== 'forbidden';
}

/** Classify anything a fetch threw (an ApiError, a network TypeError, ...). */
export function classifyError(error: unknown): IErrorInfo {
  if (error instanceof ApiError) {
    const kind =
      REASON_KINDS[error.reason] ?? STATUS_KINDS[error.status] ?? 'http';
    return {
      kind,
      status: error.status,
      reason: error.reason || `HTTP ${error.status}`,
      message: error.message,
      label: errorLabel(kind, error.status)
    };
  }
  const message =
    error instanceof Error ? error.message : String(error ?? 'unknown error');
  const reason = error instanceof Error ? error.name : 'Error';
  return {
    kind: 'network',
    status: 0,
    reason,
    message,
    label: errorLabel('network')
  };
}

/**
 * Classify the `error` string of a list row (`"NoAnswerInTime: the kernel did not ..."`).
 */
export function classifyRowError(error: string): IErrorInfo {
  const match = /^([A-Za-z_][A-Za-z0-9_]*):\s*(.*)$/s.exec(error);
  const reason = match ? match[1] : '';
  const kind = REASON_KINDS[reason] ?? 'http';
  return {
    kind,
    status: 0,
    reason: reason || 'Error',
    message: error,
    label: kind === 'http' ? reason || 'error' : errorLabel(kind)
  };
}
