// The web UI's entry: a hash router (`#/agents/<id>`), a poll of the leading master every
// two seconds, and the header's live status. Pages are functions
// `(root, {params, query}) -> {update(ctx), destroy?(), needs?}` that redraw from each poll.

import { Cluster } from './api.js';
import { html, setHTML } from './html.js';
import * as fmt from './format.js';
import { indexOf } from './cluster.js';
import { overview } from './overview.js';
import { agentsList, agentPage } from './agents.js';
import { frameworksList, frameworkPage } from './frameworks.js';
import { tasksList } from './tasks.js';
import { taskPage } from './task.js';
import { rolesPage } from './roles.js';

const POLL_MS = 2000;

const ROUTES = [
  [/^\/$/, 'overview', 'Overview', overview],
  [/^\/agents$/, 'agents', 'Agents', agentsList],
  [/^\/agents\/([^/]+)$/, 'agents', 'Agent', agentPage],
  [/^\/frameworks$/, 'frameworks', 'Frameworks', frameworksList],
  [/^\/frameworks\/([^/]+)$/, 'frameworks', 'Framework', frameworkPage],
  [/^\/tasks$/, 'tasks', 'Tasks', tasksList],
  [/^\/tasks\/([^/]+)\/([^/]+)$/, 'tasks', 'Task', taskPage],
  [/^\/roles$/, 'roles', 'Roles', rolesPage],
];

const cluster = new Cluster();
const main = document.getElementById('main');
const statusEl = document.getElementById('status');
const bannerEl = document.getElementById('banner');
const loadingEl = document.getElementById('loading');

let page = null; // the current page: {update, destroy, needs}
let latest = null; // the context of the last successful poll
let failure = null; // the error of the last poll, while polls fail
let timer = null;

function parseHash() {
  const text = window.location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = text.split('?');
  return { path: path || '/', query: new URLSearchParams(search) };
}

function notFound(root, { path }) {
  root.innerHTML = '';
  setHTML(root, html`<div class="page-header"><div><h1>Not found</h1><p class="subtitle">No page at ${path}.</p></div></div><p><a href="#/">Back to the overview</a></p>`);
  return { update() {} };
}

function route() {
  if (page && page.destroy) page.destroy();
  const { path, query } = parseHash();
  let found = null;
  for (const [pattern, section, title, make] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      found = { section, title, make, params: match.slice(1).map(decodeURIComponent) };
      break;
    }
  }
  main.innerHTML = '';
  main.__html = undefined;
  const section = found ? found.section : '';
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.section === section);
  }
  document.title = `${found ? found.title : 'Not found'} · Mantle`;
  page = found ? found.make(main, { params: found.params, query }) : notFound(main, { path });
  window.scrollTo(0, 0);
  if (!latest) return; // the first poll draws
  draw();
  // A page that needs more than the last poll brought gets it now, not in two seconds.
  if (page.needs && page.needs.roles && !latest.roles) poll();
}

function draw() {
  if (!latest || !page) return;
  loadingEl.hidden = true;
  try {
    page.update({ ...latest, now: Date.now() / 1000 });
  } catch (error) {
    // A page that fails to draw must not stop the polls; show what broke instead.
    console.error(error);
    setHTML(main, html`<div class="card"><p class="error-text">This page failed to draw: ${error.message}</p></div>`);
  }
  drawStatus();
}

function drawStatus() {
  const leader = cluster.leader || '';
  const name = latest && latest.state.cluster;
  if (failure) {
    const since = latest ? ` · data from ${fmt.ago(latest.fetched / 1000)}` : '';
    setHTML(statusEl, html`<span class="live-dot down"></span><span>reconnecting${since}</span>`);
    bannerEl.hidden = false;
    setHTML(bannerEl, html`Cannot reach the leading master: ${failure.message}. Retrying every ${POLL_MS / 1000} s.`);
    return;
  }
  bannerEl.hidden = !cluster.standby;
  if (cluster.standby) {
    setHTML(bannerEl, html`This page is served by the standby master <b>${cluster.served}</b>; it shows the leader <b>${leader}</b>.`);
  }
  setHTML(statusEl, html`${name ? html`<span class="cluster-name">${name}</span>` : ''}
    <span title="the leading master">leader <span class="mono" data-field="header-leader">${leader}</span></span>
    <span class="live" title="updates every ${POLL_MS / 1000} s"><span class="live-dot"></span>live</span>`);
}

let polling = false;

async function poll() {
  if (polling) return;
  polling = true;
  clearTimeout(timer);
  try {
    if (!document.hidden || !latest) {
      const needsRoles = Boolean(page && page.needs && page.needs.roles);
      const data = await cluster.poll({ roles: needsRoles });
      latest = { ...data, index: indexOf(data.state), cluster, fetched: Date.now() };
      failure = null;
      draw();
    }
  } catch (error) {
    failure = error;
    drawStatus();
  } finally {
    polling = false;
    clearTimeout(timer);
    timer = setTimeout(poll, POLL_MS);
  }
}

window.addEventListener('hashchange', route);
document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });
route();
poll();
