// The cluster overview (`#/`): resources by kind (total, used, offered, idle), agents,
// frameworks, tasks by state, the leading master, and the most recently updated tasks.

import { html, setHTML } from './html.js';
import * as fmt from './format.js';
import * as w from './widgets.js';
import { TASK_STATES } from './cluster.js';
import { tasksTable } from './tasks.js';

// The states Mesos's UI always lists; the others appear once a task is in them.
const ALWAYS = new Set(['TASK_STAGING', 'TASK_STARTING', 'TASK_RUNNING', 'TASK_KILLING',
  'TASK_FINISHED', 'TASK_KILLED', 'TASK_FAILED', 'TASK_LOST']);

function tile(title, field, number, href, detail) {
  return html`<a class="tile" href="${href}">
    <span class="tile-title">${title}</span>
    <span class="tile-value">${w.value(field, number, fmt.count(number))}</span>
    <span class="tile-detail">${detail}</span>
  </a>`;
}

function resources(index) {
  const { total, used, offered } = index.totals;
  const names = fmt.scalarNames(total, used, offered);
  const row = (name) => {
    const t = total[name] || 0;
    const u = used[name] || 0;
    const o = offered[name] || 0;
    const idle = Math.max(0, t - u - o);
    return html`<tr>
      <th>${name}</th>
      <td class="num">${w.value(`resources-total-${name}`, t, fmt.resource(name, t))}</td>
      <td class="num">${w.value(`resources-used-${name}`, u, fmt.resource(name, u))}</td>
      <td class="num">${w.value(`resources-offered-${name}`, o, fmt.resource(name, o))}</td>
      <td class="num">${w.value(`resources-idle-${name}`, idle, fmt.resource(name, idle))}</td>
      <td class="bar-cell">${w.bar([
    { value: u, kind: 'used', label: `used ${fmt.percent(u, t)}` },
    { value: o, kind: 'offered', label: `offered ${fmt.percent(o, t)}` }], t)}
        <span class="dim">${fmt.percent(u, t)} used</span></td>
    </tr>`;
  };
  return html`<table class="grid resources">
    <thead><tr><th>Resource</th><th class="num">Total</th><th class="num">Used</th><th class="num">Offered</th><th class="num">Idle</th><th></th></tr></thead>
    <tbody>${names.map(row)}</tbody>
  </table>
  <p class="legend"><span class="swatch used"></span>used <span class="swatch offered"></span>offered</p>`;
}

function taskStates(index) {
  const counts = index.counts;
  const shown = TASK_STATES.filter((s) => ALWAYS.has(s) || counts[s]);
  return html`<ul class="states">${shown.map((s) => html`<li>
    <a href="#/tasks?state=${s}">${w.badge(s)}</a>
    ${w.value(`tasks-${s}`, counts[s] || 0, fmt.count(counts[s] || 0))}
  </li>`)}</ul>`;
}

function master(ctx) {
  const { state, metrics, now, cluster } = ctx;
  const leader = cluster.leader || '';
  return w.info([
    ['Cluster', state.cluster || html`<span class="dim">unnamed</span>`],
    ['Leader', html`<span class="mono" data-field="leader">${leader}</span>`],
    ['Served by', cluster.standby ? html`<span class="mono">${cluster.served}</span> ${w.pill('standby', 'warn')}` : undefined],
    ['Master ID', w.mono(state.id)],
    ['Version', state.version],
    ['Started', w.time(state.start_time, now)],
    ['Elected', w.time(state.elected_time, now)],
    ['Uptime', metrics['master/uptime_secs'] !== undefined ? fmt.duration(metrics['master/uptime_secs']) : undefined],
    ['Allocation runs', metrics['allocator/mesos/allocation_runs'] !== undefined ? fmt.count(metrics['allocator/mesos/allocation_runs']) : undefined],
  ]);
}

export function overview(root) {
  function update(ctx) {
    const { state, index, now } = ctx;
    const frameworks = state.frameworks || [];
    const activeFrameworks = frameworks.filter((f) => f.active).length;
    const offers = frameworks.reduce((n, f) => n + (f.offers || []).length, 0);
    const live = index.counts.TASK_STAGING + index.counts.TASK_STARTING + index.counts.TASK_RUNNING + index.counts.TASK_KILLING;
    setHTML(root, html`
      ${w.pageHeader('Overview', state.cluster ? `Cluster ${state.cluster}` : `Leader ${ctx.cluster.leader || ''}`)}
      <div class="tiles">
        ${tile('Agents', 'agents-active', state.activated_slaves || 0, '#/agents',
    `${fmt.count(state.deactivated_slaves || 0)} deactivated · ${fmt.count(state.unreachable_slaves || 0)} unreachable`)}
        ${tile('Frameworks', 'frameworks-active', activeFrameworks, '#/frameworks',
    `${fmt.count(frameworks.length - activeFrameworks)} inactive · ${fmt.count((state.completed_frameworks || []).length)} completed`)}
        ${tile('Running tasks', 'tasks-running', index.counts.TASK_RUNNING, '#/tasks?state=TASK_RUNNING',
    `${fmt.count(live)} live · ${fmt.count(index.tasks.length)} known`)}
        ${tile('Outstanding offers', 'offers', offers, '#/frameworks',
    `held by ${fmt.plural(frameworks.filter((f) => (f.offers || []).length).length, 'framework')}`)}
      </div>
      <div class="columns">
        ${w.section('Resources', resources(index))}
        ${w.section('Master', master(ctx))}
      </div>
      ${w.section('Tasks by state', taskStates(index))}
      ${w.section('Recently updated tasks', tasksTable(index.tasks.slice(0, 10), now), html`<a href="#/tasks">All tasks →</a>`)}
    `);
  }
  return { update };
}
