/**
 * Console logging and readable error texts, for every module of the client.
 */

export function log(...args) {
  console.log('[cascade]', ...args);
}

export function errorText(err) {
  return err && err.message ? `${err.name || 'Error'}: ${err.message}` : String(err);
}
