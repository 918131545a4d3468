// The cluster view: members (this node's view of them, polled) and this node's own counters.
//
// A member this page has seen and the node no longer lists is shown as gone: the node drops a
// member once failure detection removes it (a few seconds after it stops answering) or after its
// graceful leave.

import { getJson, getText, parseMetrics, metric, Unreachable, ApiError } from './api.js';
import { $, el, show, clock, formatInt, formatRate, formatMillis, formatBytes } from './format.js';
import { drawChart } from './chart.js';

const POLL_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;
const MIN_WINDOW_MS = 30 * 1000;
const KV_ROUTES = new Set(['/put', '/get', '/get/{key}', '/delete', '/delete/{key}',
  '/set/{key}/{value}', '/v1/kv', '/v1/kv/{key}']);
const SERIES = [
  { key: 'reads', name: 'Reads', color: '#2563eb' },
  { key: 'writes', name: 'Writes', color: '#059669' },
  { key: 'remote', name: 'Replicated in', color: '#d97706' },
];

const seen = new Map(); // node id -> {member, status, firstSeen, lastSeen, goneSince}
const samples = []; // {t, reads, writes, remote, kvCount, kvSum, aeRounds}
let selfId = null;
let timer = null;
let running = false;
let lastOk = 0;
let listeners = { status: () => {} };

export function onStatus(fn) {
  listeners.status = fn;
}

export function start(firstCluster) {
  if (running) return;
  running = true;
  if (firstCluster) applyCluster(firstCluster);
  buildLegend();
  window.addEventListener('resize', redraw);
  poll();
}

export function stop() {
  running = false;
  clearTimeout(timer);
  window.removeEventListener('resize', redraw);
}

/** Redraws the chart (after the view becomes visible and the canvas has a size). */
export function redraw() {
  const points = {};
  for (const s of SERIES) points[s.key] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    for (const s of SERIES) {
      const d = b[s.key] - a[s.key];
      points[s.key].push([b.t, d >= 0 && Number.isFinite(d) ? d / dt : 0]);
    }
  }
  const canvas = $('chart');
  if (canvas.clientWidth === 0) return;
  // The page knows only what it sampled since it opened: the window grows from 30 s to 5 minutes.
  const now = Date.now();
  const span = samples.length ? now - samples[0].t : 0;
  const windowMs = Math.min(WINDOW_MS, Math.max(MIN_WINDOW_MS, Math.ceil(span / 10000) * 10000));
  $('chart-note').textContent = 'this node, operations per second, last '
    + (windowMs < 60000 ? windowMs / 1000 + ' s' : Math.round(windowMs / 6000) / 10 + ' min')
    + (windowMs < WINDOW_MS ? ' (since this page opened; up to 5 min)' : '');
  drawChart(canvas, SERIES.map((s) => ({ ...s, points: points[s.key] })), { windowMs, now });
}

async function poll() {
  if (!running) return;
  try {
    const [cluster, metricsText] = await Promise.all([getJson('v1/cluster'), getText('metrics')]);
    if (!running) return;
    applyCluster(cluster);
    applyMetrics(parseMetrics(metricsText));
    lastOk = Date.now();
    listeners.status({ ok: true, at: lastOk, self: cluster.self, ready: cluster.ready });
  } catch (e) {
    if (!running) return;
    if (e instanceof ApiError && e.status === 401) return; // the app shows the sign-in page
    listeners.status({ ok: false, at: lastOk, error: e instanceof Unreachable || e instanceof ApiError
      ? e.message : String(e) });
  }
  timer = setTimeout(poll, POLL_MS);
}

function applyCluster(cluster) {
  const now = Date.now();
  selfId = cluster.self.id;
  $('node-id').textContent = selfId;
  const current = new Set();
  for (const m of cluster.members) {
    current.add(m.id);
    const prev = seen.get(m.id);
    seen.set(m.id, { member: m, status: m.status, firstSeen: prev ? prev.firstSeen : now,
      lastSeen: now, goneSince: null });
  }
  for (const [id, s] of seen) {
    if (!current.has(id) && s.goneSince === null) {
      s.goneSince = now;
      s.status = 'gone';
    }
  }
  renderMembers(cluster.ready);
}

function statusBadge(status) {
  const cls = { alive: 'badge-alive', leaving: 'badge-leaving', gone: 'badge-gone' }[status]
    || 'badge-neutral';
  return el('span', { class: 'badge ' + cls, text: status });
}

let lastFigures = { entries: undefined, tombstones: undefined };

function renderMembers(ready) {
  const body = $('members-body');
  body.replaceChildren();
  const rows = [...seen.values()].sort((a, b) => {
    if (a.member.id === selfId) return -1;
    if (b.member.id === selfId) return 1;
    return a.member.id < b.member.id ? -1 : a.member.id > b.member.id ? 1 : 0;
  });
  let alive = 0;
  let gone = 0;
  let leaving = 0;
  for (const r of rows) {
    const m = r.member;
    const self = m.id === selfId;
    if (r.status === 'alive') alive++;
    else if (r.status === 'gone') gone++;
    else if (r.status === 'leaving') leaving++;
    const other = (text) => el('span', { class: 'muted', title: 'Reported by that node only: open its console', text });
    body.append(el('tr', { class: r.status === 'gone' ? 'row-gone' : '', data: { member: m.id, status: r.status } },
      el('td', {}, el('span', { class: 'mono strong', text: m.id }),
        self ? el('span', { class: 'tag', text: 'this node' }) : null),
      el('td', {}, statusBadge(r.status)),
      el('td', { class: 'mono', text: m.membershipAddress || '–' }),
      el('td', { class: 'mono', text: m.dataAddress || '–' }),
      el('td', { class: 'num' }, self ? formatInt(lastFigures.entries) : other('–')),
      el('td', { class: 'num' }, self ? formatInt(lastFigures.tombstones) : other('–')),
      el('td', { class: 'muted', text: r.goneSince ? 'gone since ' + clock(r.goneSince)
        : 'since ' + clock(r.firstSeen) })));
  }
  $('card-members').textContent = String(alive + leaving);
  $('card-members-sub').textContent = [alive + ' alive', leaving ? leaving + ' leaving' : null,
    gone ? gone + ' gone' : null, ready ? null : 'joining'].filter(Boolean).join(' · ');
  $('members-note').textContent = 'as node ' + selfId + ' sees them · refreshed every '
    + POLL_MS / 1000 + ' s';
}

function applyMetrics(m) {
  const t = Date.now();
  const isKv = (l) => KV_ROUTES.has(l.route);
  const sample = {
    t,
    reads: metric(m, 'kvstore_store_gets_total') || 0,
    writes: (metric(m, 'kvstore_store_puts_total') || 0) + (metric(m, 'kvstore_store_deletes_total') || 0),
    remote: metric(m, 'kvstore_store_remote_applied_total') || 0,
    kvCount: metric(m, 'kvstore_http_requests_seconds_count', isKv) || 0,
    kvSum: metric(m, 'kvstore_http_requests_seconds_sum', isKv) || 0,
    aeRounds: metric(m, 'kvstore_replication_antientropy_rounds_total'),
    mutationsSent: metric(m, 'kvstore_replication_mutations_sent_total'),
  };
  samples.push(sample);
  while (samples.length > 2 && samples[0].t < t - WINDOW_MS - 10000) samples.shift();

  lastFigures = {
    entries: metric(m, 'kvstore_store_live_entries'),
    tombstones: metric(m, 'kvstore_store_tombstones'),
  };
  $('card-entries').textContent = formatInt(lastFigures.entries);
  $('card-tombstones').textContent = formatInt(lastFigures.tombstones);
  const selfRow = document.querySelector('#members-body tr[data-member="' + CSS.escape(selfId) + '"]');
  if (selfRow) {
    selfRow.children[4].textContent = formatInt(lastFigures.entries);
    selfRow.children[5].textContent = formatInt(lastFigures.tombstones);
  }

  const past = sampleBefore(t - 10000);
  if (past && past !== sample) {
    const dt = (t - past.t) / 1000;
    const ops = (sample.reads - past.reads) + (sample.writes - past.writes) + (sample.remote - past.remote);
    $('card-ops').textContent = formatRate(Math.max(0, ops) / dt);
    const n = sample.kvCount - past.kvCount;
    $('card-latency').textContent = n > 0 ? formatMillis(((sample.kvSum - past.kvSum) / n) * 1000) : 'idle';
  }
  renderReplication(m, t);
  redraw();
}

/** The oldest sample no older than `t`, or the oldest there is. */
function sampleBefore(t) {
  let best = samples[0];
  for (const s of samples) {
    if (s.t <= t) best = s;
    else break;
  }
  return best;
}

function renderReplication(m, t) {
  const has = m.has('kvstore_replication_mutations_sent_total');
  show('repl-missing', !has);
  show('repl-stats', has);
  if (!has) return;
  const v = (name) => metric(m, 'kvstore_replication_' + name);
  const minuteAgo = sampleBefore(t - 60000);
  const roundsLastMinute = minuteAgo && minuteAgo.aeRounds !== undefined
    ? v('antientropy_rounds_total') - minuteAgo.aeRounds : undefined;
  const mutRate = minuteAgo && minuteAgo.t < t
    ? (v('mutations_sent_total') - minuteAgo.mutationsSent) / ((t - minuteAgo.t) / 1000) : undefined;
  stats('repl-fanout', 'Fan-out to peers', [
    ['Peers connected', formatInt(v('peers_connected'))],
    ['Mutations sent', formatInt(v('mutations_sent_total'))],
    ['… per second (1 min)', formatRate(mutRate)],
    ['Acknowledged', formatInt(v('mutations_acked_total'))],
    ['Refused by peers', formatInt(v('mutations_refused_total')), v('mutations_refused_total') > 0],
    ['Left to anti-entropy', formatInt(v('mutations_dropped_total')), v('mutations_dropped_total') > 0],
    ['Bytes out / in', formatBytes(v('bytes_sent_total')) + ' / ' + formatBytes(v('bytes_received_total'))],
  ]);
  stats('repl-ae', 'Anti-entropy', [
    ['Rounds', formatInt(v('antientropy_rounds_total'))],
    ['Rounds in the last minute', formatInt(roundsLastMinute)],
    ['Failed rounds', formatInt(v('antientropy_rounds_failed_total')), v('antientropy_rounds_failed_total') > 0],
    ['Keys pushed', formatInt(v('antientropy_keys_pushed_total'))],
    ['Keys pulled', formatInt(v('antientropy_keys_pulled_total'))],
    ['Replicated writes applied', formatInt(metric(m, 'kvstore_store_remote_applied_total'))],
    ['… ignored (older)', formatInt(metric(m, 'kvstore_store_remote_ignored_total'))],
  ]);
}

function stats(id, title, rows) {
  const dl = el('dl');
  for (const [k, val, warn] of rows) {
    dl.append(el('div', { class: 'stat' + (warn ? ' stat-warn' : '') },
      el('dt', { text: k }), el('dd', { text: val })));
  }
  $(id).replaceChildren(el('h3', { class: 'stats-title', text: title }), dl);
}

function buildLegend() {
  const legend = $('chart-legend');
  legend.replaceChildren(...SERIES.map((s) => el('span', { class: 'legend-item' },
    el('span', { class: 'swatch swatch-' + s.key }), s.name)));
}
