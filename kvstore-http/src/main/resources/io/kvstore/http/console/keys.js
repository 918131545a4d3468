// The key browser: prefix search with paging over GET /v1/kv, a value view, and create / edit /
// delete made conditional on the version the user saw (If-Match with the ETag; If-None-Match: * to
// create), so a concurrent change is reported instead of overwritten.

import { request, getJson, kvPath, query, ApiError } from './api.js';
import { $, el, show, parseVersion, asText, hexDump, formatBytes, dateTime, relative } from './format.js';

const PAGE_SIZE = 25;
const SHOW_BYTES = 64 * 1024;

let prefix = '';
let starts = [null]; // startAfter of each page visited
let nextStartAfter = null;
let selected = null; // {key, etag, version, expiresAt, bytes, text}
let deleteArmed = null;
let notify = () => {};

export function init({ toast }) {
  notify = toast;
  $('key-search').addEventListener('submit', (e) => {
    e.preventDefault();
    search($('key-prefix').value);
  });
  $('key-prev').addEventListener('click', () => {
    if (starts.length > 1) {
      starts.pop();
      load();
    }
  });
  $('key-next').addEventListener('click', () => {
    if (nextStartAfter !== null) {
      starts.push(nextStartAfter);
      load();
    }
  });
  $('key-new').addEventListener('click', showCreate);
  $('create-cancel').addEventListener('click', () => setMode(selected ? 'view' : 'empty'));
  $('create-form').addEventListener('submit', (e) => {
    e.preventDefault();
    create();
  });
  $('detail-reload').addEventListener('click', () => selected && openKey(selected.key));
  $('detail-edit').addEventListener('click', startEdit);
  $('detail-delete').addEventListener('click', remove);
  $('edit-cancel').addEventListener('click', () => {
    hideConflict();
    setMode('view');
  });
  $('edit-form').addEventListener('submit', (e) => {
    e.preventDefault();
    save();
  });
}

/** Loads the first page when the view is first shown. */
let loadedOnce = false;
export function activate() {
  if (!loadedOnce) {
    loadedOnce = true;
    search('');
  }
}

export function search(p) {
  prefix = p;
  starts = [null];
  load();
}

async function load() {
  const startAfter = starts[starts.length - 1];
  let page;
  try {
    page = await getJson('v1/kv' + query({ prefix, limit: PAGE_SIZE, startAfter }));
  } catch (e) {
    notify(e.message, 'error');
    return;
  }
  nextStartAfter = page.nextStartAfter;
  const list = $('key-list');
  list.replaceChildren();
  for (const item of page.items) {
    const v = parseVersion(item.version);
    list.append(el('li', {},
      el('button', {
        type: 'button',
        class: 'key-item' + (selected && selected.key === item.key ? ' selected' : ''),
        data: { key: item.key },
      },
      el('span', { class: 'key-name mono', text: item.key }),
      el('span', { class: 'key-meta' },
        item.expiresAt ? el('span', { class: 'badge badge-ttl', title: 'expires ' + dateTime(item.expiresAt),
          text: 'TTL ' + relative(item.expiresAt) }) : null,
        v ? el('span', { class: 'muted', title: item.version, text: dateTime(v.millis) }) : null))));
  }
  for (const b of list.querySelectorAll('button.key-item')) {
    b.addEventListener('click', () => openKey(b.dataset.key));
  }
  show('key-empty', page.items.length === 0);
  $('key-prev').disabled = starts.length <= 1;
  $('key-next').disabled = nextStartAfter === null;
  const first = (starts.length - 1) * PAGE_SIZE + 1;
  $('key-page').textContent = page.items.length === 0 ? '' : 'keys ' + first + '–'
    + (first + page.items.length - 1) + (nextStartAfter === null ? '' : ' · more');
}

function markSelected() {
  for (const b of document.querySelectorAll('#key-list button.key-item')) {
    b.classList.toggle('selected', selected !== null && b.dataset.key === selected.key);
  }
}

function setMode(mode) {
  show('detail-empty', mode === 'empty');
  show('detail-view', mode === 'view' || mode === 'edit');
  show('create-form', mode === 'create');
  show('edit-form', mode === 'edit');
  show('detail-value', mode === 'view');
  const binary = selected && selected.text === null;
  $('detail-edit').disabled = mode !== 'view' || binary;
  $('detail-edit').title = binary ? 'Binary values are edited through the API' : '';
  $('detail-delete').disabled = mode !== 'view';
  disarmDelete();
}

export async function openKey(key) {
  hideConflict();
  let res;
  try {
    res = await request('GET', kvPath(key));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      notify('Key "' + key + '" has no value any more (deleted or expired).', 'warn');
      selected = null;
      setMode('empty');
      markSelected();
      load();
      return;
    }
    notify(e.message, 'error');
    return;
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  const etag = res.headers.get('ETag');
  selected = {
    key, etag, version: etag ? etag.replace(/^"|"$/g, '') : null,
    expiresAt: res.headers.get('Kvstore-Expires-At'), bytes, text: asText(bytes),
  };
  renderDetail();
  setMode('view');
  markSelected();
}

function renderDetail() {
  const s = selected;
  $('detail-key').textContent = s.key;
  const v = parseVersion(s.version);
  const meta = [
    ['Size', formatBytes(s.bytes.length)],
    ['Type', s.text === null ? 'binary (shown as hex)' : 'text (UTF-8)'],
    ['Version', s.version || '–'],
    ['Written', v ? dateTime(v.millis) + ' by ' + v.node : '–'],
    ['Expires', s.expiresAt ? dateTime(s.expiresAt) + ' (' + relative(s.expiresAt) + ')' : 'never'],
  ];
  $('detail-meta').replaceChildren(...meta.map(([k, val]) =>
    el('div', { class: 'meta-item' }, el('dt', { text: k }), el('dd', { class: k === 'Version' ? 'mono' : '', text: val }))));
  const pre = $('detail-value');
  pre.classList.toggle('value-hex', s.text === null);
  if (s.text !== null) {
    pre.textContent = s.text.length > SHOW_BYTES ? s.text.slice(0, SHOW_BYTES) : s.text;
  } else {
    pre.textContent = hexDump(s.bytes, SHOW_BYTES);
  }
  if (s.bytes.length === 0) pre.textContent = '';
  pre.classList.toggle('value-empty', s.bytes.length === 0);
  const truncated = s.bytes.length > SHOW_BYTES;
  show('detail-truncated', truncated);
  $('detail-truncated').textContent = truncated ? 'Showing the first ' + formatBytes(SHOW_BYTES)
    + ' of ' + formatBytes(s.bytes.length) + '.' : '';
}

function startEdit() {
  if (!selected || selected.text === null) return;
  hideConflict();
  $('edit-value').value = selected.text;
  $('edit-ttl').value = '';
  $('edit-consistency').value = '';
  show('edit-ttl-note', selected.expiresAt !== null);
  setMode('edit');
  $('edit-value').focus();
}

async function save() {
  const s = selected;
  const ttl = $('edit-ttl').value.trim();
  const consistency = $('edit-consistency').value;
  $('edit-save').disabled = true;
  try {
    await request('PUT', kvPath(s.key) + query({ ttl, consistency }), {
      body: $('edit-value').value,
      headers: { 'If-Match': s.etag, 'Content-Type': 'text/plain; charset=utf-8' },
    });
    notify('Saved "' + s.key + '".', 'ok');
    await openKey(s.key);
    load();
  } catch (e) {
    if (e instanceof ApiError && e.status === 412) {
      showConflict('saved', e);
    } else {
      notify(e.message, 'error');
    }
  } finally {
    $('edit-save').disabled = false;
  }
}

function disarmDelete() {
  clearTimeout(deleteArmed);
  deleteArmed = null;
  $('detail-delete').textContent = 'Delete';
  $('detail-delete').classList.remove('armed');
}

async function remove() {
  if (!selected) return;
  if (deleteArmed === null) {
    $('detail-delete').textContent = 'Confirm delete';
    $('detail-delete').classList.add('armed');
    deleteArmed = setTimeout(disarmDelete, 4000);
    return;
  }
  disarmDelete();
  const s = selected;
  try {
    await request('DELETE', kvPath(s.key), { headers: { 'If-Match': s.etag } });
    notify('Deleted "' + s.key + '".', 'ok');
    selected = null;
    setMode('empty');
    load();
  } catch (e) {
    if (e instanceof ApiError && e.status === 412) {
      showConflict('deleted', e);
    } else {
      notify(e.message, 'error');
    }
  }
}

/** The write was refused because the key is no longer at the version the user saw. */
function showConflict(what, error) {
  const current = error.body.current;
  const v = parseVersion(current);
  const box = $('detail-conflict');
  const reload = el('button', { type: 'button', class: 'btn btn-small', text: 'Load the current value' });
  reload.addEventListener('click', () => openKey(selected.key));
  box.replaceChildren(
    el('strong', { text: 'Conflict: nothing was ' + what + '. ' }),
    current
      ? 'The key changed since you opened it: it is now at version ' + current
        + (v ? ' (written ' + dateTime(v.millis) + ' by ' + v.node + ')' : '') + '. '
      : 'The key was deleted since you opened it. ',
    what === 'saved' ? 'Your text is still in the editor; load the current value to start again from it. ' : '',
    reload);
  show(box, true);
}

function hideConflict() {
  show('detail-conflict', false);
}

function showCreate() {
  $('create-key').value = prefix;
  $('create-value').value = '';
  $('create-ttl').value = '';
  $('create-consistency').value = '';
  show('create-error', false);
  setMode('create');
  $('create-key').focus();
}

async function create() {
  const key = $('create-key').value;
  const ttl = $('create-ttl').value.trim();
  const consistency = $('create-consistency').value;
  const err = $('create-error');
  show(err, false);
  if (key === '') {
    err.textContent = 'Give the key a name.';
    show(err, true);
    return;
  }
  $('create-submit').disabled = true;
  try {
    await request('PUT', kvPath(key) + query({ ttl, consistency }), {
      body: $('create-value').value,
      headers: { 'If-None-Match': '*', 'Content-Type': 'text/plain; charset=utf-8' },
    });
    notify('Created "' + key + '".', 'ok');
    await openKey(key);
    load();
  } catch (e) {
    err.textContent = e instanceof ApiError && e.status === 412
      ? 'Key "' + key + '" already has a value: open it to edit it.'
      : e.message;
    show(err, true);
  } finally {
    $('create-submit').disabled = false;
  }
}
