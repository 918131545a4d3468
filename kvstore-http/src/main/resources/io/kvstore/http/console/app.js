// The console's entry point: decides between the sign-in page and the console, and switches views.
//
// The first call (GET /v1/cluster) tells whether this node wants a token: a 401 shows the sign-in
// page and nothing else; nothing of the console is filled in before a call succeeds.

import { getJson, token, setToken, clearToken, onAuthLost, ApiError } from './api.js';
import { $, show, clock } from './format.js';
import * as cluster from './cluster.js';
import * as keys from './keys.js';
import * as live from './live.js';

const VIEWS = ['cluster', 'keys', 'live'];
const NOTICE = 'kvstore.console.notice';
let started = false;
let toastTimer = null;

function toast(text, kind = 'info') {
  const t = $('toast');
  t.textContent = text;
  t.dataset.kind = kind;
  show(t, true);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => show(t, false), kind === 'error' ? 8000 : 4000);
}

function showLogin(message) {
  show('boot', false);
  show('app', false);
  show('login', true);
  const err = $('login-error');
  err.textContent = message || '';
  show(err, Boolean(message));
  $('login-token').value = '';
  $('login-token').focus();
}

function showView(name) {
  const view = VIEWS.includes(name) ? name : 'cluster';
  for (const v of VIEWS) show('view-' + v, v === view);
  for (const a of document.querySelectorAll('.tab')) {
    a.classList.toggle('active', a.dataset.view === view);
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (view === 'cluster') cluster.redraw();
  if (view === 'keys') keys.activate();
}

function route() {
  showView(location.hash.replace(/^#/, ''));
}

function startConsole(first) {
  show('boot', false);
  show('login', false);
  show('app', true);
  show('sign-out', token() !== null);
  if (!started) {
    started = true;
    keys.init({ toast });
    live.init({
      onOpenKey: (key) => {
        location.hash = '#keys';
        keys.openKey(key);
      },
    });
    window.addEventListener('hashchange', route);
  }
  route();
  cluster.start(first);
}

/**
 * A call got 401 while the console was shown: the token was revoked, or the node now wants one.
 * Reloading drops everything the console showed; the sign-in page then says why.
 */
function authLost() {
  cluster.stop();
  live.stop();
  const had = token() !== null;
  clearToken();
  try {
    sessionStorage.setItem(NOTICE, had ? 'The node no longer accepts this token.' : 'This node now requires a token.');
  } catch (e) {
    // storage disabled: the sign-in page shows without the reason
  }
  location.reload();
}

function takeNotice() {
  try {
    const n = sessionStorage.getItem(NOTICE);
    sessionStorage.removeItem(NOTICE);
    return n;
  } catch (e) {
    return null;
  }
}

async function probe() {
  return getJson('v1/cluster', { quietAuth: true });
}

async function boot() {
  onAuthLost(authLost);
  cluster.onStatus((s) => {
    const el = $('refresh-status');
    const dot = $('node-dot');
    if (s.ok) {
      el.textContent = 'updated ' + clock(s.at);
      el.classList.remove('stale');
      dot.dataset.state = s.ready ? 'ok' : 'warn';
      show('banner', false);
    } else {
      el.textContent = s.at ? 'last update ' + clock(s.at) : 'no answer';
      el.classList.add('stale');
      dot.dataset.state = 'down';
      $('banner').textContent = 'This node does not answer: ' + s.error + '. Retrying every 2 s.';
      show('banner', true);
    }
  });
  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = $('login-token').value.trim();
    if (!t) {
      showLogin('Enter the token.');
      return;
    }
    setToken(t);
    $('login-submit').disabled = true;
    try {
      startConsole(await probe());
    } catch (err) {
      clearToken();
      showLogin(err instanceof ApiError && err.status === 401 ? 'This token is not accepted by the node.'
        : 'The node does not answer: ' + err.message);
    } finally {
      $('login-submit').disabled = false;
    }
  });
  $('sign-out').addEventListener('click', () => {
    clearToken();
    location.reload();
  });
  try {
    startConsole(await probe());
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      const had = token() !== null;
      clearToken();
      showLogin(takeNotice() || (had ? 'The node no longer accepts the saved token.' : ''));
    } else {
      $('boot').textContent = 'The node does not answer: ' + err.message + '. Reload to try again.';
    }
  }
}

boot();
