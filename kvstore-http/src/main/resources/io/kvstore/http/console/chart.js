// A line chart on a canvas, drawn by the page itself: time on x (the last `windowMs`), value on y.

const AXIS = '#8a94a6';
const GRID = '#e6e9ef';
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/** A "nice" upper bound and step for the y axis: 1, 2 or 5 times a power of ten. */
function niceScale(max) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const rough = max / 4;
  const pow = Math.pow(10, Math.floor(Math.log10(rough)));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= rough);
  return { top: Math.ceil(max / step) * step, step };
}

function label(v) {
  if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + 'k';
  return v >= 10 || v === 0 ? String(Math.round(v)) : v.toFixed(1);
}

/**
 * Draws the series. `series` is [{name, color, points: [[timeMillis, value], ...]}]; `now` is the
 * right edge.
 */
export function drawChart(canvas, series, { windowMs, now = Date.now() }) {
  const ratio = window.devicePixelRatio || 1;
  const cssWidth = canvas.clientWidth || 600;
  const cssHeight = canvas.clientHeight || 220;
  if (canvas.width !== Math.round(cssWidth * ratio) || canvas.height !== Math.round(cssHeight * ratio)) {
    canvas.width = Math.round(cssWidth * ratio);
    canvas.height = Math.round(cssHeight * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);

  const left = 44;
  const right = 12;
  const top = 10;
  const bottom = 24;
  const w = cssWidth - left - right;
  const h = cssHeight - top - bottom;
  const t0 = now - windowMs;

  let max = 0;
  for (const s of series) {
    for (const [t, v] of s.points) {
      if (t >= t0 && v > max) max = v;
    }
  }
  const { top: yTop, step } = niceScale(max);
  const x = (t) => left + ((t - t0) / windowMs) * w;
  const y = (v) => top + h - (v / yTop) * h;

  ctx.font = FONT;
  ctx.lineWidth = 1;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  for (let v = 0; v <= yTop + step / 2; v += step) {
    const yy = Math.round(y(v)) + 0.5;
    ctx.strokeStyle = GRID;
    ctx.beginPath();
    ctx.moveTo(left, yy);
    ctx.lineTo(left + w, yy);
    ctx.stroke();
    ctx.fillStyle = AXIS;
    ctx.fillText(label(v), left - 8, yy);
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  // Ticks every 10 s, 30 s or minute, whichever gives at most six.
  const tick = [10000, 30000, 60000, 120000].find((t) => windowMs / t <= 6) || 300000;
  for (let ago = 0; ago <= windowMs + 1; ago += tick) {
    const xx = Math.round(x(now - ago)) + 0.5;
    const text = ago === 0 ? 'now' : tick < 60000 ? '−' + ago / 1000 + ' s' : '−' + ago / 60000 + ' min';
    ctx.fillStyle = AXIS;
    ctx.fillText(text, Math.min(Math.max(xx, left + 14), left + w - 10), top + h + 8);
  }

  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top - 2, w + 1, h + 4);
  ctx.clip();
  for (const s of series) {
    const pts = s.points.filter(([t]) => t >= t0 - 5000);
    if (pts.length === 0) continue;
    // A soft fill under the line, then the line.
    ctx.beginPath();
    ctx.moveTo(x(pts[0][0]), y(0));
    for (const [t, v] of pts) ctx.lineTo(x(t), y(v));
    ctx.lineTo(x(pts[pts.length - 1][0]), y(0));
    ctx.closePath();
    ctx.globalAlpha = 0.08;
    ctx.fillStyle = s.color;
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.beginPath();
    pts.forEach(([t, v], i) => (i === 0 ? ctx.moveTo(x(t), y(v)) : ctx.lineTo(x(t), y(v))));
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    ctx.stroke();
  }
  ctx.restore();

  ctx.strokeStyle = AXIS;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left + 0.5, top);
  ctx.lineTo(left + 0.5, top + h + 0.5);
  ctx.lineTo(left + w, top + h + 0.5);
  ctx.stroke();
}
