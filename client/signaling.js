/**
 * Signaling, protocol version 1 (docs/PROTOCOL.md): the WebSocket at `/ws`
 * carrying JSON messages. Owns the socket (opening it with `join`, the
 * keepalive ping, closing it), sending messages, and handing incoming ones to
 * their handlers strictly one at a time (a promise queue), so a re-offer is
 * never applied while the previous one is still being answered.
 */
import { log, errorText } from './log.js';
import { isCurrent } from './session.js';

export const PROTOCOL_VERSION = 1;
const PING_INTERVAL_MS = 20000;
/** WebSocket.readyState -> how the status line names it. */
const SOCKET_STATES = ['connecting', 'open', 'closing', 'closed'];

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/ws`;
}

/**
 * Opens the session's socket and joins its room. The listener gets
 * `handlers` (message type -> handler(s, msg)), `onStateChange()`,
 * `onError(text)`, and `onClose(s, event)` when the socket closes under a
 * session that is still current.
 */
export function connectSocket(s, listener) {
  const ws = new WebSocket(socketUrl());
  s.ws = ws;
  listener.onStateChange();
  ws.onopen = () => {
    log('socket open');
    const join = { type: 'join', version: PROTOCOL_VERSION, room: s.room, name: s.name };
    if (s.token) join.token = s.token;
    send(s, join);
    s.pingTimer = setInterval(() => send(s, { type: 'ping' }), PING_INTERVAL_MS);
    listener.onStateChange();
  };
  ws.onmessage = (event) => onSocketMessage(s, event, listener);
  ws.onerror = () => log('socket error event');
  ws.onclose = (event) => {
    log('socket closed', event.code, event.reason);
    if (isCurrent(s)) listener.onClose(s, event);
  };
}

/** Stops the keepalive and closes the socket unless it is closed already. */
export function closeSocket(s) {
  clearInterval(s.pingTimer);
  if (s.ws && s.ws.readyState <= WebSocket.OPEN) s.ws.close(1000, 'leave');
}

export function socketState(s) {
  return s.ws ? SOCKET_STATES[s.ws.readyState] : 'connecting';
}

export function send(s, msg) {
  if (s.ws && s.ws.readyState === WebSocket.OPEN) {
    s.ws.send(JSON.stringify(msg));
  }
}

/** Parses a frame and queues it behind the messages before it. */
function onSocketMessage(s, event, listener) {
  let msg;
  try {
    msg = JSON.parse(event.data);
  } catch (err) {
    listener.onError(`Unreadable message from the server: ${errorText(err)}`);
    return;
  }
  s.queue = s.queue
    .then(() => dispatch(s, msg, listener.handlers))
    .catch((err) => {
      if (isCurrent(s)) listener.onError(`Handling "${msg.type}" failed: ${errorText(err)}`);
    });
}

async function dispatch(s, msg, handlers) {
  if (!isCurrent(s)) return;
  const handler = msg && typeof msg.type === 'string' ? handlers[msg.type] : undefined;
  if (!handler) {
    log('ignoring unknown message', msg);
    return;
  }
  if (msg.type !== 'pong' && msg.type !== 'candidate') log('<-', msg.type);
  await handler(s, msg);
}
