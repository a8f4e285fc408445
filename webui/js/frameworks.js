// The frameworks list (`#/frameworks`, active then completed) and a framework's page
// (`#/frameworks/<id>`): its registration, resources used and offered, offers, tasks.

import { html, setHTML, seg } from './html.js';
import * as fmt from './format.js';
import * as w from './widgets.js';
import { TERMINAL } from './cluster.js';
import { tasksTable } from './tasks.js';

function roles(framework) {
  if (Array.isArray(framework.roles) && framework.roles.length) return framework.roles.join(', ');
  return framework.role || '*';
}

function status(framework) {
  if (framework.completed) return w.pill('completed', 'muted');
  if (!framework.active) return w.pill('inactive', 'warn');
  if (framework.connected === false) return w.pill('disconnected', 'warn');
  return w.pill('active', 'ok');
}

function liveCount(index, framework) {
  return index.tasks.filter((t) => t.framework === framework.id && !TERMINAL.has(t.task.state)).length;
}

function table(frameworks, index, now) {
  if (!frameworks.length) return w.empty('None.');
  const row = (f) => {
    const used = f.used_resources || {};
    return html`<tr data-framework-id="${f.id}">
      <td><a href="#/frameworks/${seg(f.id)}">${f.name || f.id}</a></td>
      <td>${w.mono(fmt.shortId(f.id), f.id)}</td>
      <td>${roles(f)}</td>
      <td>${f.user || ''}</td>
      <td>${f.hostname || ''}</td>
      <td class="num">${fmt.count(liveCount(index, f))}</td>
      <td class="num">${fmt.cpus(used.cpus)}</td>
      <td class="num">${fmt.megabytes(used.mem)}</td>
      <td class="num">${fmt.megabytes(used.disk)}</td>
      <td>${status(f)}</td>
      <td>${w.time(f.completed ? f.unregistered_time : (f.reregistered_time || f.registered_time), now)}</td>
    </tr>`;
  };
  return html`<table class="grid">
    <thead><tr><th>Name</th><th>ID</th><th>Roles</th><th>User</th><th>Host</th><th class="num">Active tasks</th><th class="num">CPUs</th><th class="num">Mem</th><th class="num">Disk</th><th>Status</th><th>Since</th></tr></thead>
    <tbody>${frameworks.map(row)}</tbody></table>`;
}

export function frameworksList(root) {
  function update(ctx) {
    const { index, now } = ctx;
    const all = [...index.frameworks.values()];
    const byName = (a, b) => (a.name || '').localeCompare(b.name || '') || a.id.localeCompare(b.id);
    const active = all.filter((f) => !f.completed).sort(byName);
    const completed = all.filter((f) => f.completed).sort((a, b) => (b.unregistered_time || 0) - (a.unregistered_time || 0));
    setHTML(root, html`
      ${w.pageHeader('Frameworks', `${fmt.count(active.length)} registered · ${fmt.count(completed.length)} completed`)}
      <section class="card flush" id="frameworks-active">${table(active, index, now)}</section>
      ${completed.length ? html`<h2 class="between">Completed</h2><section class="card flush" id="frameworks-completed">${table(completed, index, now)}</section>` : ''}
    `);
  }
  return { update };
}

function offers(framework, index) {
  const list = framework.offers || [];
  if (!list.length) return w.empty('No outstanding offers.');
  return html`<table class="grid">
    <thead><tr><th>Offer</th><th>Agent</th><th class="num">CPUs</th><th class="num">Mem</th><th class="num">Disk</th><th>Ports</th></tr></thead>
    <tbody>${list.map((o) => {
    const agent = index.agents.get(o.slave_id);
    const r = o.resources || {};
    return html`<tr><td>${w.mono(fmt.shortId(o.id), o.id)}</td>
        <td>${agent ? html`<a href="#/agents/${seg(agent.id)}">${index.agentName(agent)}</a>` : w.mono(o.slave_id)}</td>
        <td class="num">${fmt.cpus(r.cpus)}</td><td class="num">${fmt.megabytes(r.mem)}</td>
        <td class="num">${fmt.megabytes(r.disk)}</td><td class="mono">${r.ports || ''}</td></tr>`;
  })}</tbody></table>`;
}

export function frameworkPage(root, { params }) {
  const [id] = params;
  function update(ctx) {
    const { index, now } = ctx;
    const f = index.frameworks.get(id);
    if (!f) {
      setHTML(root, html`${w.pageHeader('Framework', id)}${w.empty('The master does not know this framework (it may have been removed long ago).')}`);
      return;
    }
    const tasks = index.tasks.filter((t) => t.framework === id);
    const live = tasks.filter((t) => !TERMINAL.has(t.task.state));
    const ended = tasks.filter((t) => TERMINAL.has(t.task.state)).slice(0, 200);
    // Only web links: a framework's URL must not run script in this page when clicked.
    const webui = /^https?:\/\//i.test(f.webui_url || '')
      ? html`<a href="${f.webui_url}" rel="noopener noreferrer">${f.webui_url}</a>`
      : f.webui_url || undefined;
    setHTML(root, html`
      ${w.pageHeader(f.name || f.id, html`Framework ${w.mono(f.id)}`, status(f))}
      <div class="columns">
        ${w.section('Framework', w.info([
    ['Roles', roles(f)],
    ['User', f.user],
    ['Principal', f.principal],
    ['Host', f.hostname],
    ['Web UI', webui],
    ['Registered', w.time(f.registered_time, now)],
    ['Re-registered', f.reregistered_time ? w.time(f.reregistered_time, now) : undefined],
    ['Unregistered', f.unregistered_time ? w.time(f.unregistered_time, now) : undefined],
    ['Failover timeout', f.failover_timeout !== undefined ? fmt.duration(f.failover_timeout) : undefined],
    ['Checkpoint', f.checkpoint === undefined ? undefined : f.checkpoint ? 'yes' : 'no'],
    ['Capabilities', (f.capabilities || []).join(', ')],
  ]))}
        ${w.section('Resources', w.resourceTable([
    { title: 'Used', resources: f.used_resources, field: 'framework-used' },
    { title: 'Offered', resources: f.offered_resources, field: 'framework-offered' },
  ]))}
      </div>
      ${f.completed ? '' : w.section(`Offers (${(f.offers || []).length})`, offers(f, index))}
      ${w.section(`Active tasks (${live.length})`, tasksTable(live, now, { framework: false }))}
      ${ended.length ? w.section('Ended tasks', tasksTable(ended, now, { framework: false })) : ''}
    `);
  }
  return { update };
}
