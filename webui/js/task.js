// A task's page (`#/tasks/<framework id>/<task id>`): what it is and where it runs, its
// status history, and its sandbox with a live tail of stdout and stderr.

import { html, setHTML, seg } from './html.js';
import * as fmt from './format.js';
import * as w from './widgets.js';
import { taskKey } from './cluster.js';
import { Sandbox } from './sandbox.js';

function history(task, now) {
  const statuses = (task.statuses || []).slice().reverse();
  if (!statuses.length) return w.empty('No status updates yet.');
  return html`<table class="grid compact">
    <thead><tr><th>State</th><th>When</th><th>Time</th><th>Health</th><th>Message</th></tr></thead>
    <tbody>${statuses.map((s) => html`<tr>
      <td>${w.badge(s.state)}</td>
      <td>${w.time(s.timestamp, now)}</td>
      <td class="dim">${fmt.date(s.timestamp)}</td>
      <td>${s.healthy === undefined ? '' : s.healthy ? w.pill('healthy', 'ok') : w.pill('unhealthy', 'bad')}</td>
      <td class="wrap">${[s.message, s.reason, s.source].filter(Boolean).join(' · ')}</td>
    </tr>`)}</tbody></table>`;
}

function labels(task) {
  const list = (task.labels && task.labels.labels) || task.labels || [];
  if (!Array.isArray(list) || !list.length) return undefined;
  return html`${list.map((l) => html`<span class="badge muted">${l.key}${l.value !== undefined ? `=${l.value}` : ''}</span> `)}`;
}

export function taskPage(root, { params }) {
  const [frameworkId, taskId] = params;
  root.innerHTML = `<div class="task-info"></div>
    <section class="card" id="sandbox"><header><h2>Sandbox</h2><span class="dim sandbox-where"></span></header><div class="sandbox-body"></div></section>`;
  const infoEl = root.querySelector('.task-info');
  const where = root.querySelector('.sandbox-where');
  const body = root.querySelector('.sandbox-body');
  let sandbox = null;

  function update(ctx) {
    const { index, now } = ctx;
    const entry = index.byKey.get(taskKey(frameworkId, taskId));
    if (!entry) {
      setHTML(infoEl, html`${w.pageHeader(taskId, html`Task of framework ${w.mono(frameworkId)}`)}
        ${w.empty('The master does not know this task (it may have ended long ago, or its framework was removed).')}`);
      if (!sandbox) setHTML(body, w.empty('No sandbox to show.'));
      return;
    }
    const t = entry.task;
    const res = t.resources || {};
    const framework = index.frameworks.get(entry.framework);
    const container = t.container && t.container.type;
    setHTML(infoEl, html`
      ${w.pageHeader(t.id, html`Task ${t.name && t.name !== t.id ? html`<b>${t.name}</b> ` : ''}of <a href="#/frameworks/${seg(entry.framework)}">${framework ? framework.name : entry.framework}</a>`, w.badge(t.state))}
      <div class="columns">
        ${w.section('Task', w.info([
    ['State', w.badge(t.state)],
    ['Agent', entry.agent ? html`<a href="#/agents/${seg(entry.agent.id)}">${entry.agentName}</a> ${w.mono(fmt.shortId(entry.agent.id), entry.agent.id)}` : w.mono(t.slave_id)],
    ['Executor', t.executor_id ? w.mono(t.executor_id) : 'command executor'],
    ['Role', t.role],
    ['User', t.user],
    ['Container', container],
    ['Labels', labels(t)],
    ['Started', w.time(entry.started, now)],
    ['Last update', w.time(entry.updated, now)],
  ]))}
        ${w.section('Resources', w.resourceTable([{ title: 'Allocated', resources: res }]))}
      </div>
      ${w.section('Status updates', history(t, now))}`);

    if (!entry.agent) {
      setHTML(where, '');
      if (!sandbox) setHTML(body, w.empty('The agent of this task is not registered, so its sandbox cannot be reached.'));
      return;
    }
    if (!sandbox) {
      sandbox = new Sandbox(body, {
        agent: entry.agent, frameworkId, executorId: t.executor_id, taskId,
      });
      setHTML(where, html`on ${entry.agentName}`);
    } else {
      sandbox.refresh();
    }
  }
  return { update, destroy() { if (sandbox) sandbox.destroy(); } };
}
