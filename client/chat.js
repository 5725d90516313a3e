/**
 * The chat panel: text messages on the reliable data channel with topic
 * `chat` (data.js), so they reach everyone in the room in order. Each shows
 * the sender's name and the time; our own appear as sent (the server does
 * not echo). While the panel is closed, new messages count in an unread
 * badge on its button.
 *
 * Test hooks: `toggle-chat` (opens the panel when closed), `chat-panel`,
 * `chat-input`, `chat-send`, `chat-message` (each with `data-from`, the
 * sender's name), `chat-unread`.
 */
import { sendData, onData } from './data.js';
import { currentSession } from './session.js';

export const CHAT_TOPIC = 'chat';
/** The longest message the input takes, in characters (well under 16 KiB). */
export const MAX_CHAT_CHARS = 2000;
/** Messages kept in the panel. */
const MAX_KEPT = 500;

const byId = (id) => document.getElementById(id);
const panel = byId('chat-panel');
const list = byId('chat-messages');
const form = byId('chat-form');
const input = byId('chat-input');
const toggle = byId('toggle-chat');
const unreadBadge = byId('chat-unread');
let unread = 0;

/** Wires the panel; `onProblem(text)` shows a send that failed. */
export function initChat(onProblem) {
  input.maxLength = MAX_CHAT_CHARS;
  toggle.addEventListener('click', () => setOpen(panel.hidden));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const s = currentSession();
    try {
      sendData(s, JSON.stringify({ text }), { topic: CHAT_TOPIC });
    } catch (err) {
      onProblem(`Chat message not sent: ${err.message}`);
      return;
    }
    input.value = '';
    addMessage(`${s.name} (you)`, text, true);
  });
  onData((message) => {
    if (message.topic !== CHAT_TOPIC || typeof message.data !== 'string') return;
    let text;
    try {
      text = JSON.parse(message.data).text;
    } catch {
      return;
    }
    if (typeof text !== 'string' || !text) return;
    addMessage(message.name, text.slice(0, MAX_CHAT_CHARS), false);
  });
}

/** Empties the panel and closes it (a new call starts with no chat). */
export function resetChat() {
  list.replaceChildren();
  setOpen(false);
}

function setOpen(open) {
  panel.hidden = !open;
  toggle.setAttribute('aria-expanded', String(open));
  if (open) {
    unread = 0;
    renderUnread();
    input.focus();
    list.scrollTop = list.scrollHeight;
  }
}

function addMessage(from, text, own) {
  const item = document.createElement('li');
  item.className = own ? 'chat-message own' : 'chat-message';
  item.dataset.testid = 'chat-message';
  item.dataset.from = from;
  const head = document.createElement('div');
  head.className = 'chat-head';
  const name = document.createElement('span');
  name.className = 'chat-name';
  name.textContent = from;
  const time = document.createElement('time');
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  head.append(name, time);
  const body = document.createElement('div');
  body.className = 'chat-text';
  body.textContent = text;
  item.append(head, body);
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(item);
  while (list.children.length > MAX_KEPT) list.firstElementChild.remove();
  if (atBottom || own) list.scrollTop = list.scrollHeight;
  if (panel.hidden && !own) {
    unread += 1;
    renderUnread();
  }
}

function renderUnread() {
  unreadBadge.hidden = unread === 0;
  unreadBadge.textContent = unread > 99 ? '99+' : String(unread);
  toggle.title = unread ? `Chat (${unread} unread)` : 'Chat';
}
