// The agents list (`#/agents`) and an agent's page (`#/agents/<id>`): resources, used
// and offered, reservations, attributes, and the tasks on the agent.

import { html, setHTML, seg } from './html.js';
import * as fmt from './format.js';
import * as w from './widgets.js';
import { liveTasksOn, TERMINAL } from './cluster.js';
import { tasksTable } from './tasks.js';

function status(slave) {
  if (slave.drain_info && slave.drain_info.state) return w.pill(fmt.stateName(slave.drain_info.state), 'warn');
  if (slave.deactivated || slave.active === false) return w.pill('deactivated', 'warn');
  return w.pill('active', 'ok');
}

export function agentsList(root) {
  root.innerHTML = `
    <div class="page-header"><div><h1>Agents</h1><p class="subtitle" id="agents-count"></p></div></div>
    <div class="filters"><input type="search" id="agent-search" placeholder="Filter by hostname, id or attribute…" autocomplete="off"></div>
    <section class="card flush"><div id="agents-table"></div></section>`;
  const search = root.querySelector('#agent-search');
  let last = null;
  search.addEventListener('input', () => last && update(last));

  function update(ctx) {
    last = ctx;
    const { state, index, now } = ctx;
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const slaves = (state.slaves || []).filter((s) => {
      const text = [s.id, s.hostname, s.pid, JSON.stringify(s.attributes || {})].join(' ').toLowerCase();
      return words.every((word) => text.includes(word));
    }).sort((a, b) => index.agentName(a).localeCompare(index.agentName(b)) || a.id.localeCompare(b.id));
    setHTML(root.querySelector('#agents-count'),
      `${fmt.count(slaves.length)} of ${fmt.count((state.slaves || []).length)} agents · ${fmt.count(state.unreachable_slaves || 0)} unreachable`);
    if (!slaves.length) {
      setHTML(root.querySelector('#agents-table'), w.empty('No agents.'));
      return;
    }
    const row = (s) => html`<tr data-agent-id="${s.id}">
      <td><a href="#/agents/${seg(s.id)}">${index.agentName(s)}</a></td>
      <td>${w.mono(fmt.shortId(s.id), s.id)}</td>
      <td>${w.usage('cpus', (s.used_resources || {}).cpus, (s.resources || {}).cpus)}</td>
      <td>${w.usage('mem', (s.used_resources || {}).mem, (s.resources || {}).mem)}</td>
      <td>${w.usage('disk', (s.used_resources || {}).disk, (s.resources || {}).disk)}</td>
      <td class="num">${fmt.count(liveTasksOn(index, s.id).length)}</td>
      <td>${status(s)}</td>
      <td>${w.time(s.reregistered_time || s.registered_time, now)}</td>
      <td class="dim">${s.version || ''}</td>
    </tr>`;
    setHTML(root.querySelector('#agents-table'), html`<table class="grid">
      <thead><tr><th>Hostname</th><th>ID</th><th>CPUs</th><th>Memory</th><th>Disk</th><th class="num">Tasks</th><th>Status</th><th>Registered</th><th>Version</th></tr></thead>
      <tbody>${slaves.map(row)}</tbody></table>`);
  }
  return { update };
}

function attributes(slave) {
  const entries = Object.entries(slave.attributes || {});
  if (!entries.length) return w.empty('No attributes.');
  return html`<table class="grid compact"><tbody>${entries.map(([k, v]) => html`<tr><th>${k}</th><td class="mono">${typeof v === 'object' ? JSON.stringify(v) : v}</td></tr>`)}</tbody></table>`;
}

function reservations(slave) {
  const roles = Object.entries(slave.reserved_resources || {});
  if (!roles.length) return '';
  return w.section('Reservations', w.resourceTable(roles.map(([role, resources]) => ({ title: role, resources }))));
}

export function agentPage(root, { params }) {
  const [id] = params;
  function update(ctx) {
    const { state, index, now } = ctx;
    const slave = index.agents.get(id);
    if (!slave) {
      setHTML(root, html`${w.pageHeader('Agent', id)}${w.empty('This agent is not registered with the master (it may be unreachable or gone).')}`);
      return;
    }
    const all = index.byAgent.get(id) || [];
    const live = all.filter((t) => !TERMINAL.has(t.task.state));
    const ended = all.filter((t) => TERMINAL.has(t.task.state)).slice(0, 100);
    const frameworks = [...new Set(live.map((t) => t.framework))].map((f) => index.frameworks.get(f)).filter(Boolean);
    const idle = {};
    for (const [name, total] of Object.entries(slave.resources || {})) {
      if (typeof total !== 'number') continue;
      idle[name] = Math.max(0, total - ((slave.used_resources || {})[name] || 0) - ((slave.offered_resources || {})[name] || 0));
    }
    setHTML(root, html`
      ${w.pageHeader(index.agentName(slave), html`Agent ${w.mono(slave.id)}`, status(slave))}
      <div class="columns">
        ${w.section('Resources', w.resourceTable([
    { title: 'Total', resources: slave.resources, field: 'agent-total' },
    { title: 'Used', resources: slave.used_resources, field: 'agent-used' },
    { title: 'Offered', resources: slave.offered_resources, field: 'agent-offered' },
    { title: 'Idle', resources: idle },
  ]))}
        ${w.section('Agent', w.info([
    ['PID', w.mono(slave.pid)],
    ['Registered', w.time(slave.registered_time, now)],
    ['Re-registered', slave.reregistered_time ? w.time(slave.reregistered_time, now) : undefined],
    ['Version', slave.version],
    ['Frameworks', frameworks.length ? html`${frameworks.map((f, i) => html`${i ? ', ' : ''}<a href="#/frameworks/${seg(f.id)}">${f.name || f.id}</a>`)}` : undefined],
    ['Capabilities', (slave.capabilities || []).join(', ')],
    ['Master', state.hostname],
  ]))}
      </div>
      <div class="columns">
        ${w.section('Attributes', attributes(slave))}
        ${reservations(slave)}
      </div>
      ${w.section(`Running tasks (${live.length})`, tasksTable(live, now, { agent: false }))}
      ${ended.length ? w.section('Ended tasks', tasksTable(ended, now, { agent: false })) : ''}
    `);
  }
  return { update };
}
