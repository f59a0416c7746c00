/**
 * The REST client: the async-kernel endpoints through the Jupyter server's
 * connection settings (base URL, token, XSRF cookie), as `/api/kernels` uses them.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError } from './errors';
import { IFetcher } from './model';
import { IKernelListReply, ISnapshot } from './wire';

/** The endpoints' path below the server's base URL. */
export const API_PATH = 'api/async-kernel/kernels';

/**
 * The URL of the list (no id) or of a kernel's snapshot.
 *
 * `no_track_activity=1` is harmless: the handlers opt out of activity tracking anyway.
 */
export function endpointUrl(baseUrl: string, kernelId?: string): string {
  const path = kernelId
    ? URLExt.join(baseUrl, API_PATH, encodeURIComponent(kernelId))
    : URLExt.join(baseUrl, API_PATH);
  return `${path}?no_track_activity=1`;
}

async function requestJson<T>(
  url: string,
  settings: ServerConnection.ISettings
): Promise<T> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      { method: 'GET', cache: 'no-store' },
      settings
    );
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ApiError(0, 'NetworkError', message);
  }
  const text = await response.text().catch(() => '');
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const reason =
      body && typeof body.reason === 'string' && body.reason
        ? body.reason
        : response.statusText || `HTTP ${response.status}`;
    const message =
      body && typeof body.message === 'string' && body.message
        ? body.message
        : text || `HTTP ${response.status} ${response.statusText}`;
    throw new ApiError(response.status, reason, message);
  }
  if (body === null || typeof body !== 'object') {
    throw new ApiError(502, 'BadJson', `not a JSON object: ${text.slice(0, 200)}`);
  }
  return body as T;
}

/** A fetcher for the model, through `ServerConnection.makeRequest`. */
export function createFetcher(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): IFetcher {
  return {
    list: () => requestJson<IKernelListReply>(endpointUrl(settings.baseUrl), settings),
    snapshot: (kernelId: string) =>
      requestJson<ISnapshot>(endpointUrl(settings.baseUrl, kernelId), settings)
  };
}
