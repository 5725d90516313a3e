/**
 * Application data over the publish connection's two data channels
 * (docs/PROTOCOL.md, "Data channels"): `cascade-reliable` (ordered,
 * reliable) and `cascade-lossy` (unordered, no retransmissions). The server
 * relays each message to the room's others, or to the identities and
 * participant ids in `to`, tagged with the sender.
 *
 * The page's API (also on `window.cascade`):
 *   sendData(data, { reliable = true, to = [], topic })  data: a string or
 *     binary (ArrayBuffer, typed array); throws when no channel is open or the
 *     message is over 16 KiB with its envelope.
 *   onData(callback) -> unsubscribe; callback({ data, from, identity, name,
 *     topic, reliable }): `data` is a string or an ArrayBuffer as it was sent,
 *     `from` the sender's participant id, `name` its display name.
 */
import { log } from './log.js';

export const RELIABLE_LABEL = 'cascade-reliable';
export const LOSSY_LABEL = 'cascade-lossy';
export const MAX_DATA_MESSAGE_BYTES = 16 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Callbacks of onData; they outlive sessions (an app registers once). */
const listeners = new Set();

/** Opens both channels on the publish connection `pc`, before its first offer. */
export function openDataChannels(s, pc) {
  s.channels = {
    reliable: pc.createDataChannel(RELIABLE_LABEL),
    lossy: pc.createDataChannel(LOSSY_LABEL, { ordered: false, maxRetransmits: 0 }),
  };
  for (const [kind, channel] of Object.entries(s.channels)) {
    channel.binaryType = 'arraybuffer';
    channel.onopen = () => log('data channel open', channel.label);
    channel.onmessage = (event) => onChannelMessage(s, kind === 'reliable', event.data);
  }
}

/** Sends `data` to the room (or `to`); see the module comment. */
export function sendData(s, data, { reliable = true, to = [], topic } = {}) {
  const channel = s && s.channels && s.channels[reliable ? 'reliable' : 'lossy'];
  if (!channel || channel.readyState !== 'open') throw new Error('the data channels are not open');
  const header = {};
  if (topic != null) header.topic = String(topic);
  if (to && to.length) header.to = [...to].map(String);
  let message;
  if (typeof data === 'string') {
    message = JSON.stringify({ ...header, data });
  } else {
    const payload = data instanceof ArrayBuffer
      ? new Uint8Array(data)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const head = encoder.encode(JSON.stringify(header));
    message = new Uint8Array(2 + head.length + payload.length);
    new DataView(message.buffer).setUint16(0, head.length);
    message.set(head, 2);
    message.set(payload, 2 + head.length);
  }
  const size = typeof message === 'string' ? encoder.encode(message).length : message.length;
  if (size > MAX_DATA_MESSAGE_BYTES) {
    throw new RangeError(`a ${size}-byte message is over the ${MAX_DATA_MESSAGE_BYTES}-byte limit`);
  }
  channel.send(message);
}

/** Registers `callback` for relayed messages; returns a function that unregisters it. */
export function onData(callback) {
  listeners.add(callback);
  return () => listeners.delete(callback);
}

function onChannelMessage(s, reliable, raw) {
  let header;
  let data;
  try {
    if (typeof raw === 'string') {
      header = JSON.parse(raw);
      data = header.data;
    } else {
      const length = new DataView(raw).getUint16(0);
      header = JSON.parse(decoder.decode(new Uint8Array(raw, 2, length)));
      data = raw.slice(2 + length);
    }
  } catch (err) {
    log('unreadable data message', err);
    return;
  }
  const sender = s.participants.get(header.from);
  const message = {
    data,
    from: header.from,
    identity: header.identity,
    name: sender ? sender.name : header.from,
    topic: header.topic,
    reliable,
  };
  for (const callback of listeners) {
    try {
      callback(message);
    } catch (err) {
      console.error('[cascade] onData callback failed', err);
    }
  }
}
