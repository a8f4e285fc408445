// The tasks list (`#/tasks`): every task the master reports, live, unreachable and
// completed, filtered by state, framework and a search text, kept in the URL's query so
// a filtered view can be shared; and the task table the other pages reuse.

import { html, setHTML, seg } from './html.js';
import * as fmt from './format.js';
import * as w from './widgets.js';
import { TASK_STATES, TERMINAL } from './cluster.js';

const MAX_ROWS = 500;

export function taskHref(entry) {
  return `#/tasks/${seg(entry.framework)}/${seg(entry.task.id)}`;
}

// columns: which optional columns to show (framework, agent).
export function tasksTable(entries, now, { framework = true, agent = true } = {}) {
  if (!entries.length) return w.empty('No tasks.');
  const row = (entry) => {
    const t = entry.task;
    const res = t.resources || {};
    return html`<tr data-task-id="${t.id}">
      <td><a class="mono" href="${taskHref(entry)}" title="${t.id}">${t.id}</a></td>
      <td class="wrap">${t.name || ''}</td>
      <td>${w.badge(t.state)}</td>
      ${framework ? html`<td><a href="#/frameworks/${seg(entry.framework)}" title="${entry.framework}">${entry.frameworkName || fmt.shortId(entry.framework)}</a></td>` : ''}
      ${agent ? html`<td>${entry.agent
    ? html`<a href="#/agents/${seg(entry.agent.id)}" title="${entry.agent.id}">${entry.agentName}</a>`
    : w.mono(fmt.shortId(t.slave_id), t.slave_id)}</td>` : ''}
      <td class="num">${fmt.cpus(res.cpus)}</td>
      <td class="num">${fmt.megabytes(res.mem)}</td>
      <td>${w.time(entry.started, now)}</td>
      <td>${w.time(entry.updated, now)}</td>
    </tr>`;
  };
  return html`<table class="grid tasks">
    <thead><tr><th>ID</th><th>Name</th><th>State</th>${framework ? html`<th>Framework</th>` : ''}${agent ? html`<th>Agent</th>` : ''}<th class="num">CPUs</th><th class="num">Mem</th><th>Started</th><th>Updated</th></tr></thead>
    <tbody>${entries.map(row)}</tbody>
  </table>`;
}

function matches(entry, filters) {
  const t = entry.task;
  if (filters.state === 'active' && TERMINAL.has(t.state)) return false;
  if (filters.state === 'terminal' && !TERMINAL.has(t.state)) return false;
  if (filters.state && filters.state.startsWith('TASK_') && t.state !== filters.state) return false;
  if (filters.framework && entry.framework !== filters.framework) return false;
  if (filters.q) {
    const text = [t.id, t.name, entry.frameworkName, entry.framework, t.slave_id,
      entry.agentName, t.state].join(' ').toLowerCase();
    return filters.q.toLowerCase().split(/\s+/).filter(Boolean).every((word) => text.includes(word));
  }
  return true;
}

export function tasksList(root, { query }) {
  const filters = { state: query.get('state') || '', framework: query.get('framework') || '', q: query.get('q') || '' };
  root.innerHTML = `
    <div class="page-header"><div><h1>Tasks</h1><p class="subtitle" id="tasks-count"></p></div></div>
    <div class="filters">
      <input type="search" id="task-search" placeholder="Search id, name, agent…" autocomplete="off">
      <select id="task-state"></select>
      <select id="task-framework"></select>
    </div>
    <section class="card flush"><div id="tasks-table"></div></section>`;
  const search = root.querySelector('#task-search');
  const stateSelect = root.querySelector('#task-state');
  const frameworkSelect = root.querySelector('#task-framework');
  search.value = filters.q;
  let last = null;

  // The filters live in the hash's query; replaceState changes it without a hashchange,
  // so the page is not rebuilt under the typing user.
  const remember = () => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
    const text = params.toString();
    window.history.replaceState(null, '', `#/tasks${text ? `?${text}` : ''}`);
    if (last) update(last);
  };
  search.addEventListener('input', () => { filters.q = search.value.trim(); remember(); });
  stateSelect.addEventListener('change', () => { filters.state = stateSelect.value; remember(); });
  frameworkSelect.addEventListener('change', () => { filters.framework = frameworkSelect.value; remember(); });

  function update(ctx) {
    last = ctx;
    const { index, now } = ctx;
    const counts = index.counts;
    const active = index.tasks.filter((t) => !TERMINAL.has(t.task.state)).length;
    setHTML(stateSelect, html`
      <option value="">All states (${index.tasks.length})</option>
      <option value="active">Active (${active})</option>
      <option value="terminal">Terminal (${index.tasks.length - active})</option>
      ${TASK_STATES.filter((s) => counts[s] || s === filters.state).map((s) => html`<option value="${s}">${fmt.stateName(s)} (${counts[s] || 0})</option>`)}`);
    stateSelect.value = filters.state;
    const frameworks = [...index.frameworks.values()].sort((a, b) => (a.name || '').localeCompare(b.name || ''));
    setHTML(frameworkSelect, html`
      <option value="">All frameworks</option>
      ${frameworks.map((f) => html`<option value="${f.id}">${f.name || f.id}${f.completed ? ' (completed)' : ''}</option>`)}`);
    frameworkSelect.value = filters.framework;

    const shown = index.tasks.filter((t) => matches(t, filters));
    const capped = shown.slice(0, MAX_ROWS);
    setHTML(root.querySelector('#tasks-count'),
      shown.length > MAX_ROWS
        ? `${fmt.count(MAX_ROWS)} most recently updated of ${fmt.count(shown.length)} matching tasks`
        : `${fmt.count(shown.length)} of ${fmt.count(index.tasks.length)} tasks`);
    setHTML(root.querySelector('#tasks-table'), tasksTable(capped, now));
  }
  return { update };
}
