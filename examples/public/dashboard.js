// The live dashboard of the example server: polls /api/connections every second and redraws the
// table; between polls the age and idle countdown keep moving locally so the page never looks
// frozen. Plain browser JavaScript, no build step. Every value from the server goes through
// textContent, never innerHTML (user names come from a query parameter).

const POLL_MS = 1000;
const FRAME_MS = 200;

const $ = (id) => document.getElementById(id);
const tbody = $('connections').querySelector('tbody');

/** The last answer of /api/connections, and when (performance.now()) it arrived. */
let snapshot = null;
let receivedAt = 0;

const CONFIG_LABELS = [
  ['idleTimeoutMs', 'idle timeout', 'closes with 4001 after this long without a message'],
  ['connectionTimeoutMs', 'max lifetime', 'closes with 4002 after this long, whatever happens'],
  ['pingIntervalMs', 'ping every', 'how often the server pings each connection'],
  ['pongTimeoutMs', 'pong timeout', 'an unanswered ping this old drops the peer'],
  ['messageTimeoutMs', 'send deadline', 'a send not flushed in time closes with 4003'],
  ['closeTimeoutMs', 'close wait', 'how long a close waits for the peer before terminating'],
];

const REASONS = [
  ['idle', 'idle (4001)'],
  ['max_lifetime', 'max lifetime (4002)'],
  ['pong_timeout', 'pong timeout (dropped)'],
  ['send_timeout', 'send timeout (4003)'],
];

function seconds(ms, digits = 1) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  return `${(ms / 1000).toFixed(digits)} s`;
}

function duration(ms) {
  if (ms < 60_000) return seconds(ms);
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function idleCell(row, elapsed) {
  const td = document.createElement('td');
  td.dataset.field = 'idle';
  if (row.idleRemainingMs === null) {
    td.textContent = 'disabled';
    td.className = 'muted';
    return td;
  }
  const left = row.state === 'open' ? Math.max(0, row.idleRemainingMs - elapsed) : row.idleRemainingMs;
  const share = row.idleTimeoutMs > 0 ? left / row.idleTimeoutMs : 0;
  const wrap = document.createElement('div');
  wrap.className = `idle${share <= 0 ? ' now' : share < 0.25 ? ' soon' : ''}`;
  const bar = document.createElement('div');
  bar.className = 'bar';
  const fill = document.createElement('span');
  fill.style.width = `${Math.round(share * 100)}%`;
  bar.append(fill);
  const label = document.createElement('span');
  label.textContent = seconds(left);
  wrap.append(bar, label);
  td.append(wrap);
  return td;
}

function render() {
  if (!snapshot) return;
  const elapsed = performance.now() - receivedAt;
  const rows = snapshot.connections;
  const fragment = document.createDocumentFragment();
  for (const row of rows) {
    const tr = document.createElement('tr');
    tr.dataset.connectionId = row.id;
    tr.dataset.user = row.user ?? '';
    tr.dataset.route = row.route ?? '';
    tr.dataset.state = row.state;
    tr.append(
      cell(row.id),
      cell(row.route ?? '—'),
      cell(row.user ?? 'anonymous', row.user ? '' : 'muted'),
      cell(duration(row.ageMs + (row.state === 'open' ? elapsed : 0))),
      idleCell(row, elapsed),
      cell(row.lastRttMs === null ? 'no pong yet' : row.lastRttMs < 1 ? '< 1 ms' : `${row.lastRttMs} ms`, row.lastRttMs === null ? 'muted' : ''),
      cell(row.state, `state-${row.state}`),
    );
    tr.children[5].dataset.field = 'rtt';
    fragment.append(tr);
  }
  tbody.replaceChildren(fragment);
  $('count').textContent = String(rows.length);
  $('empty').hidden = rows.length > 0;
  const age = (elapsed / 1000).toFixed(1);
  $('status').textContent = `live · updated ${age} s ago · ${snapshot.status ?? ''}`.replace(/ · $/, '');
}

function renderStatic() {
  const config = $('config');
  config.replaceChildren(
    ...CONFIG_LABELS.map(([field, label, help]) => {
      const div = document.createElement('div');
      div.title = help;
      const dt = document.createElement('dt');
      dt.textContent = label;
      const dd = document.createElement('dd');
      const ms = snapshot.config?.[field];
      dd.textContent = ms === 0 ? 'disabled' : seconds(ms, ms % 1000 === 0 ? 0 : 1);
      div.append(dt, dd);
      return div;
    }),
  );
  const timeouts = $('timeouts');
  timeouts.replaceChildren(
    ...REASONS.map(([reason, label]) => {
      const li = document.createElement('li');
      li.dataset.reason = reason;
      const strong = document.createElement('strong');
      strong.textContent = String(snapshot.timeoutsByReason?.[reason] ?? 0);
      li.append(strong, label);
      return li;
    }),
  );
}

async function poll() {
  try {
    const res = await fetch('/api/connections', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    snapshot = await res.json();
    receivedAt = performance.now();
    $('status').classList.remove('down');
    renderStatic();
    render();
  } catch (err) {
    $('status').textContent = `server unreachable (${err.message}), retrying…`;
    $('status').classList.add('down');
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// ------------------------------------------------------------------ "try it" panel

function log(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  const events = $('events');
  events.prepend(li);
  while (events.children.length > 50) events.lastChild.remove();
}

function wsUrl(path) {
  const user = $('user').value.trim();
  const query = user ? `?user=${encodeURIComponent(user)}` : '';
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}${query}`;
}

function track(ws, name, onChange) {
  ws.addEventListener('open', () => (log(`${name}: open`), onChange?.()));
  ws.addEventListener('message', (event) => log(`${name} received: ${event.data}`));
  ws.addEventListener('close', (event) => {
    log(`${name}: closed ${event.code}${event.reason ? ` ${event.reason}` : ''}`);
    onChange?.();
  });
  ws.addEventListener('error', () => log(`${name}: error (see the browser console)`));
}

let echo = null;
function echoButtons() {
  const open = echo?.readyState === WebSocket.OPEN;
  $('send-echo').disabled = !open;
  $('close-echo').disabled = !open;
}
$('open-echo').addEventListener('click', () => {
  echo = new WebSocket(wsUrl('/ws/echo'));
  track(echo, 'echo', echoButtons);
});
$('send-echo').addEventListener('click', () => echo?.send('hello'));
$('close-echo').addEventListener('click', () => echo?.close(1000, 'bye'));

$('open-scans').addEventListener('click', () => track(new WebSocket(wsUrl('/ws/scans')), 'scans'));
$('post-scan').addEventListener('click', async () => {
  const ticketId = `T-${Math.floor(Math.random() * 1e6)}`;
  const res = await fetch('/scans', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ticketId, gate: 'A', status: 'valid' }),
  });
  const body = await res.json().catch(() => ({}));
  log(`POST /scans ${ticketId}: HTTP ${res.status}, delivered to ${body.delivered ?? 0} scanner(s)`);
});

$('echo-url').textContent = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/echo?user=me`;
setInterval(render, FRAME_MS);
void poll();
