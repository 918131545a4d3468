// Small helpers: DOM building (text only, never HTML strings) and number, time and byte formatting.

/**
 * Creates an element. `attrs` may hold `class`, `text`, `title`, `data` (an object of data-*
 * attributes) and any other attribute; children are nodes or strings (added as text).
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'data') Object.entries(v).forEach(([dk, dv]) => { e.dataset[dk] = dv; });
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function $(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error('missing element #' + id);
  return e;
}

export function show(e, visible = true) {
  (typeof e === 'string' ? $(e) : e).hidden = !visible;
}

const intFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

export function formatInt(n) {
  return n === undefined || n === null || Number.isNaN(n) ? '–' : intFormat.format(n);
}

export function formatRate(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  return n >= 100 ? intFormat.format(n) : decFormat.format(n);
}

export function formatBytes(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  if (n < 1024) return n + (n === 1 ? ' byte' : ' bytes');
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return decFormat.format(v) + ' ' + units[i];
}

export function formatMillis(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return '–';
  if (ms < 1) return decFormat.format(ms * 1000) + ' µs';
  if (ms < 1000) return decFormat.format(ms) + ' ms';
  return decFormat.format(ms / 1000) + ' s';
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** 14:03:27 in local time. */
export function clock(date) {
  const d = date instanceof Date ? date : new Date(date);
  return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
}

/** 2024-04-05 14:03:27 in local time. */
export function dateTime(date) {
  const d = date instanceof Date ? date : new Date(date);
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + clock(d);
}

/** "in 4 min", "3 s ago". */
export function relative(date, now = Date.now()) {
  const t = date instanceof Date ? date.getTime() : new Date(date).getTime();
  const s = Math.round((t - now) / 1000);
  const a = Math.abs(s);
  let text;
  if (a < 60) text = a + ' s';
  else if (Math.round(a / 60) < 60) text = Math.round(a / 60) + ' min';
  else if (a < 86400) text = decFormat.format(a / 3600) + ' h';
  else text = decFormat.format(a / 86400) + ' d';
  return s >= 0 ? 'in ' + text : text + ' ago';
}

/**
 * A version "1712345678901.3@node-1": the hybrid clock's milliseconds, its logical counter and the
 * writing node. Null if it does not look like one.
 */
export function parseVersion(v) {
  const m = /^(\d+)\.(\d+)@(.+)$/.exec(v || '');
  return m ? { millis: Number(m[1]), logical: Number(m[2]), node: m[3] } : null;
}

/** The bytes as text if they are valid UTF-8, else null. */
export function asText(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    return null;
  }
}

/** A classic hex dump: offset, 16 bytes in hex, the printable ASCII. */
export function hexDump(bytes, limit) {
  const n = Math.min(bytes.length, limit);
  const lines = [];
  for (let off = 0; off < n; off += 16) {
    const row = bytes.subarray(off, Math.min(off + 16, n));
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      if (i < row.length) {
        hex += row[i].toString(16).padStart(2, '0') + ' ';
        ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : '.';
      } else {
        hex += '   ';
      }
      if (i === 7) hex += ' ';
    }
    lines.push(off.toString(16).padStart(8, '0') + '  ' + hex + ' |' + ascii + '|');
  }
  return lines.join('\n');
}
