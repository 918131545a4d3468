// Live changes: the SSE stream of GET /v1/watch?prefix=, shown newest first, keeping the last
// MAX_EVENTS. The stream is read with fetch() rather than EventSource because EventSource cannot
// send the Authorization header, and a token never goes into a URL. When the stream ends (the node
// restarts, a proxy cuts it, the client fell behind) it is reopened after a short pause; changes in
// between are not replayed, and the list says so.

import { request, query, ApiError } from './api.js';
import { $, el, show, clock, parseVersion, dateTime } from './format.js';

export const MAX_EVENTS = 200;
const RETRY_MS = 2000;

let controller = null;
let watching = false;
let prefix = '';
let retryTimer = null;
let openKey = () => {};

export function init({ onOpenKey }) {
  openKey = onOpenKey;
  $('live-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (watching) stop();
    else start($('live-prefix').value);
  });
  $('live-clear').addEventListener('click', () => {
    $('live-body').replaceChildren();
    show('live-empty', true);
  });
  $('live-footnote').textContent = 'Keeps the last ' + MAX_EVENTS + ' events. Events of different keys may'
    + ' arrive out of order; compare versions to order them. Values are not part of the stream: open a'
    + ' key to read it.';
}

export function start(p) {
  stop();
  prefix = p;
  watching = true;
  $('live-toggle').textContent = 'Stop';
  $('live-prefix').disabled = true;
  connect();
}

export function stop() {
  watching = false;
  clearTimeout(retryTimer);
  if (controller) controller.abort();
  controller = null;
  $('live-toggle').textContent = 'Watch';
  $('live-prefix').disabled = false;
  status('idle', 'Not watching');
}

function status(state, text) {
  $('live-status').dataset.state = state;
  $('live-status-text').textContent = text;
}

async function connect() {
  if (!watching) return;
  const mine = new AbortController();
  controller = mine;
  status('connecting', 'Connecting…');
  let res;
  try {
    res = await request('GET', 'v1/watch' + query({ prefix }), {
      signal: mine.signal, headers: { Accept: 'text/event-stream' },
    });
  } catch (e) {
    if (e.name === 'AbortError' || !watching) return;
    if (e instanceof ApiError && e.status === 401) {
      stop();
      return;
    }
    retry(e.message);
    return;
  }
  const what = prefix === '' ? 'all keys' : 'keys under "' + prefix + '"';
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let opened = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      // Events end with a blank line; the server writes \n line ends.
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!opened) {
          opened = true;
          status('live', 'Watching ' + what);
        }
        handle(block);
      }
    }
  } catch (e) {
    if (e.name === 'AbortError' || !watching || controller !== mine) return;
  }
  if (watching && controller === mine) retry('the stream ended');
}

function retry(reason) {
  status('error', 'Disconnected (' + reason + '); reconnecting…');
  addNote('Stream interrupted: changes until it reconnects are not shown.');
  retryTimer = setTimeout(connect, RETRY_MS);
}

/** One SSE block: comment lines (":"), "event:", "data:", "id:". */
function handle(block) {
  let type = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let val = colon < 0 ? '' : line.slice(colon + 1);
    if (val.startsWith(' ')) val = val.slice(1);
    if (field === 'event') type = val;
    else if (field === 'data') data.push(val);
  }
  if (data.length === 0) return;
  let payload;
  try {
    payload = JSON.parse(data.join('\n'));
  } catch (e) {
    return;
  }
  if (type === 'overflow') {
    addNote('This console fell behind and the node dropped the stream; reconnecting. Some changes were missed.');
    return;
  }
  addEvent(payload);
}

function trim() {
  const body = $('live-body');
  while (body.children.length > MAX_EVENTS) body.lastElementChild.remove();
}

function addEvent(ev) {
  const v = parseVersion(ev.version);
  const keyCell = el('td', {});
  if (ev.type === 'put') {
    const link = el('button', { type: 'button', class: 'link mono', text: ev.key });
    link.addEventListener('click', () => openKey(ev.key));
    keyCell.append(link);
  } else {
    keyCell.append(el('span', { class: 'mono', text: ev.key }));
  }
  const row = el('tr', { class: 'live-row', data: { key: ev.key, type: ev.type } },
    el('td', { class: 'muted nowrap', text: clock(new Date()) }),
    el('td', {}, el('span', { class: 'badge badge-' + ev.type, text: ev.type })),
    keyCell,
    el('td', { class: 'mono muted', title: v ? dateTime(v.millis) + ' by ' + v.node : '', text: ev.version }),
    el('td', { class: 'muted', text: ev.origin === 'local' ? 'this node' : 'replicated' }));
  $('live-body').prepend(row);
  show('live-empty', false);
  trim();
}

function addNote(text) {
  $('live-body').prepend(el('tr', { class: 'live-note' }, el('td', { colspan: 5, text: clock(new Date()) + ' · ' + text })));
  show('live-empty', false);
  trim();
}
