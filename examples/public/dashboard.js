// The live dashboard of the example server: polls /api/connections every second and redraws the
// table; between polls the age and idle countdown keep moving locally so the page never looks
// frozen. Each poll is also kept as a sample (the last CHART_MS of them) for the chart, and in a
// fleet the nodes' table is drawn from the membership the server read. Plain browser JavaScript, no build step. Every value from the server goes through
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
  ['idle', 'idle (4001)', '#d97706'],
  ['max_lifetime', 'max lifetime (4002)', '#7c3aed'],
  ['pong_timeout', 'pong timeout (dropped)', '#dc2626'],
  ['send_timeout', 'send timeout (4003)', '#0891b2'],
];

/** The chart's window, and its series' colours. */
const CHART_MS = 5 * 60_000;
const OPEN_COLOR = '#16a34a';
const FLEET_COLOR = '#2563eb';

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

function closeCell(id) {
  const td = document.createElement('td');
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = 'close';
  button.dataset.close = id;
  td.append(button);
  return td;
}

/** POST /api/connections/:id/close: 200 closed, 410 already gone, 503 the fleet could not tell. */
async function closeConnection(id) {
  const res = await fetch(`/api/connections/${encodeURIComponent(id)}/close`, { method: 'POST' });
  const body = await res.json().catch(() => ({}));
  log(`close ${id}: HTTP ${res.status} ${body.result ?? ''}`);
}
tbody.addEventListener('click', (event) => {
  const id = event.target.closest?.('button[data-close]')?.dataset.close;
  if (id) void closeConnection(id);
});

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
      closeCell(row.id),
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

function renderFleet() {
  const fleet = snapshot.fleet;
  $('fleet').hidden = !fleet;
  if (!fleet) return;
  $('node-id').textContent = fleet.nodeId;
  const status = $('fleet-status');
  status.textContent =
    fleet.status === 'ok'
      ? `${fleet.nodes} node(s), ${fleet.connections} connection(s) in all`
      : `Redis unavailable${fleet.reason ? `: ${fleet.reason}` : ''}. Local connections, timeouts and broadcasts keep working; fleet operations answer "unavailable".`;
  status.className = fleet.status === 'ok' ? 'muted' : 'fleet-down';
  const rows = [...fleet.members].sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  $('nodes').querySelector('tbody').replaceChildren(
    ...rows.map((member) => {
      const tr = document.createElement('tr');
      tr.dataset.node = member.nodeId;
      const routes = Object.entries(member.byRoute ?? {}).map(([route, n]) => `${route} ${n}`).join(', ');
      tr.append(
        cell(member.nodeId + (member.nodeId === fleet.nodeId ? ' (this node)' : '')),
        cell(String(member.connections)),
        cell(routes || '—', routes ? '' : 'muted'),
        cell(member.updatedAt ? `${seconds(Date.now() - member.updatedAt, 0)} ago` : '—'),
      );
      tr.children[1].dataset.field = 'connections';
      return tr;
    }),
  );
}

// ------------------------------------------------------------------ chart: open connections and timeouts by reason

/** One sample per poll: { at, open, fleet, timeouts: { reason: count so far } }, the last CHART_MS. */
const samples = [];

function sample() {
  const at = Date.now();
  samples.push({ at, open: snapshot.connections.length, fleet: snapshot.fleet?.status === 'ok' ? snapshot.fleet.connections : null, timeouts: { ...snapshot.timeoutsByReason } });
  while (samples.length > 0 && samples[0].at < at - CHART_MS) samples.shift();
}

function drawChart() {
  const canvas = $('chart');
  const g = canvas.getContext('2d');
  const { width, height } = canvas;
  const pad = { left: 40, right: 10, top: 10, bottom: 20 };
  const lineBottom = height * 0.62;
  const barTop = height * 0.68;
  const now = Date.now();
  const x = (at) => pad.left + ((at - (now - CHART_MS)) / CHART_MS) * (width - pad.left - pad.right);
  const style = getComputedStyle(document.body);
  g.clearRect(0, 0, width, height);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = style.color;
  g.strokeStyle = 'rgba(128,128,128,.35)';
  for (let m = 0; m <= CHART_MS / 60_000; m++) {
    const at = now - m * 60_000;
    g.beginPath();
    g.moveTo(x(at), pad.top);
    g.lineTo(x(at), height - pad.bottom);
    g.stroke();
    g.fillText(m === 0 ? 'now' : `-${m} min`, x(at) - 14, height - 5);
  }

  // Top: open connections (this node; the whole fleet too when there is one).
  const maxOpen = Math.max(1, ...samples.map((s) => Math.max(s.open, s.fleet ?? 0)));
  const y = (n) => lineBottom - (n / maxOpen) * (lineBottom - pad.top);
  g.fillText(String(maxOpen), 4, pad.top + 8);
  g.fillText('0', 4, lineBottom);
  for (const [field, color] of [['open', OPEN_COLOR], ['fleet', FLEET_COLOR]]) {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    let drawing = false;
    for (const s of samples) {
      if (s[field] === null) {
        drawing = false;
        continue;
      }
      if (drawing) g.lineTo(x(s.at), y(s[field]));
      else g.moveTo(x(s.at), y(s[field]));
      drawing = true;
    }
    g.stroke();
  }
  g.lineWidth = 1;

  // Bottom: timeouts by reason per sample interval, stacked.
  const deltas = samples.slice(1).map((s, i) => ({ at: s.at, by: REASONS.map(([reason]) => Math.max(0, (s.timeouts[reason] ?? 0) - (samples[i].timeouts[reason] ?? 0))) }));
  const maxBar = Math.max(1, ...deltas.map((d) => d.by.reduce((a, b) => a + b, 0)));
  const barHeight = height - pad.bottom - barTop;
  const barWidth = Math.max(2, (width - pad.left - pad.right) / (CHART_MS / POLL_MS) - 1);
  g.fillStyle = style.color;
  g.fillText(String(maxBar), 4, barTop + 8);
  for (const d of deltas) {
    let top = height - pad.bottom;
    d.by.forEach((n, i) => {
      if (n === 0) return;
      const h = (n / maxBar) * barHeight;
      top -= h;
      g.fillStyle = REASONS[i][2];
      g.fillRect(x(d.at) - barWidth, top, barWidth, h);
    });
  }
}

function renderLegend() {
  const entries = [['open connections (this node)', OPEN_COLOR], ['open connections (fleet)', FLEET_COLOR], ...REASONS.map(([, label, color]) => [`timeouts: ${label}`, color])];
  $('legend').replaceChildren(
    ...entries.map(([label, color]) => {
      const li = document.createElement('li');
      const swatch = document.createElement('span');
      swatch.style.background = color;
      li.append(swatch, label);
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
    renderFleet();
    render();
    sample();
    drawChart();
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
  // In a fleet the answer also says how many nodes were asked and which did not confirm in time.
  const fleet = body.nodes === undefined ? '' : ` on ${body.nodes} node(s)${body.nodesMissing?.length ? `, no answer from ${body.nodesMissing.join(', ')}` : ''}`;
  log(`POST /scans ${ticketId}: HTTP ${res.status}, delivered to ${body.delivered ?? 0} scanner(s)${fleet}`);
});

renderLegend();
$('echo-url').textContent = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/echo?user=me`;
setInterval(render, FRAME_MS);
void poll();
