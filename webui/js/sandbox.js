// A task's sandbox on its agent: the executor's run directory found through the agent's
// `/slave(1)/state` (executors[].directory), a file browser over `/files/browse`, and a
// live tail of a file (stdout, stderr, or any other) over `/files/read`: a probe with
// offset -1 gives the size, then the last 64 KiB are shown and new bytes are appended
// every second, as Mesos's pailer does.

import { html, setHTML } from './html.js';
import * as fmt from './format.js';
import * as w from './widgets.js';
import { Agent } from './api.js';

const CHUNK = 64 * 1024; // the agent caps one read at 64 KiB
const INITIAL = 64 * 1024; // how much of an existing file's end to show first
const KEEP = 1024 * 1024; // characters kept in the viewer; older text is dropped
const TAIL_MS = 1000;

const encoder = new TextEncoder();

// The agent sends the file's bytes as a JSON string, so offsets count UTF-8 bytes.
function byteLength(text) { return encoder.encode(text).length; }

// The run directory of the executor that ran `taskId`, from an agent's state.
export function sandboxDirectory(agentState, frameworkId, executorId, taskId) {
  const frameworks = [...(agentState.frameworks || []), ...(agentState.completed_frameworks || [])];
  for (const framework of frameworks.filter((f) => f.id === frameworkId)) {
    const executors = [...(framework.executors || []), ...(framework.completed_executors || [])];
    const holds = (e) => ['tasks', 'queued_tasks', 'completed_tasks']
      .some((list) => (e[list] || []).some((t) => t.id === taskId));
    // A command task's executor carries the task's id; a custom executor lists its tasks.
    const found = executors.find(holds)
      || executors.find((e) => e.id === (executorId || taskId));
    if (found && found.directory) return found.directory;
  }
  return null;
}

class Tail {
  constructor(api, path, pre, status) {
    this.api = api;
    this.path = path;
    this.pre = pre;
    this.status = status;
    this.offset = 0;
    this.busy = false;
    this.stopped = false;
    this.pre.textContent = '';
    this.length = 0;
  }

  async start() {
    try {
      const probe = await this.api.read(this.path, -1);
      if (this.stopped) return;
      this.offset = Math.max(0, (probe.offset || 0) - INITIAL);
      if (this.offset > 0) this.append(`[… ${fmt.bytes(this.offset)} earlier not shown]\n`);
    } catch (error) {
      this.report(error);
    }
    await this.pump();
    if (!this.stopped) this.timer = setInterval(() => this.pump(), TAIL_MS);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
  }

  async pump() {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      // Catch up on a fast writer, a few chunks at a time.
      for (let i = 0; i < 8; i++) {
        const chunk = await this.api.read(this.path, this.offset, CHUNK);
        if (this.stopped) return;
        const data = chunk.data || '';
        const size = byteLength(data);
        if (size) {
          this.append(data);
          this.offset = (typeof chunk.offset === 'number' ? chunk.offset : this.offset) + size;
        }
        if (size < CHUNK) break;
      }
      setHTML(this.status, html`${this.path.split('/').pop()} · ${fmt.bytes(this.offset)} · <span class="live-dot"></span> following`);
    } catch (error) {
      this.report(error);
    } finally {
      this.busy = false;
    }
  }

  report(error) {
    setHTML(this.status, html`<span class="error-text">${error.message}</span> · retrying`);
  }

  append(text) {
    const pre = this.pre;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    this.length += text.length;
    if (this.length > KEEP) {
      const kept = (pre.textContent + text).slice(-KEEP / 2);
      pre.textContent = kept;
      this.length = kept.length;
    } else {
      pre.appendChild(document.createTextNode(text));
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }
}

export class Sandbox {
  constructor(element, { agent, frameworkId, executorId, taskId }) {
    this.api = new Agent(agent);
    this.agent = agent;
    this.ids = { frameworkId, executorId, taskId };
    this.root = null;
    this.cwd = null;
    this.file = null;
    this.tail = null;
    element.innerHTML = `
      <div class="sandbox">
        <div class="sandbox-files">
          <div class="crumbs"></div>
          <div class="listing"><p class="loading">Looking for the sandbox…</p></div>
        </div>
        <div class="viewer">
          <div class="viewer-bar">
            <div class="tabs"><button type="button" data-file="stdout">stdout</button><button type="button" data-file="stderr">stderr</button></div>
            <span class="viewer-status dim"></span>
            <a class="download" target="_blank" rel="noopener">Download</a>
          </div>
          <pre class="log" tabindex="0"></pre>
        </div>
      </div>`;
    this.el = element;
    this.crumbs = element.querySelector('.crumbs');
    this.listing = element.querySelector('.listing');
    this.pre = element.querySelector('pre.log');
    this.status = element.querySelector('.viewer-status');
    this.download = element.querySelector('.download');
    element.querySelector('.tabs').addEventListener('click', (event) => {
      const name = event.target.dataset && event.target.dataset.file;
      if (name && this.root) this.open(`${this.root}/${name}`);
    });
    this.listing.addEventListener('click', (event) => {
      const target = event.target.closest('[data-path]');
      if (!target) return;
      event.preventDefault();
      if (target.dataset.dir === 'true') this.browse(target.dataset.path);
      else this.open(target.dataset.path);
    });
    this.crumbs.addEventListener('click', (event) => {
      const target = event.target.closest('[data-path]');
      if (target) { event.preventDefault(); this.browse(target.dataset.path); }
    });
    this.refresh();
  }

  // Called on every poll of the master: finds the sandbox until it exists, then keeps
  // the listing current.
  async refresh() {
    if (this.busy) return;
    this.busy = true;
    try {
      if (!this.root) {
        const state = await this.api.state();
        const { frameworkId, executorId, taskId } = this.ids;
        const dir = sandboxDirectory(state, frameworkId, executorId, taskId);
        if (!dir) {
          setHTML(this.listing, w.empty('The agent has no sandbox for this task yet.'));
          return;
        }
        this.root = dir;
        this.cwd = dir;
        this.open(`${dir}/stdout`);
      }
      await this.list();
    } catch (error) {
      setHTML(this.listing, html`<p class="error-text">Cannot reach the agent at ${this.api.base}: ${error.message}</p>`);
    } finally {
      this.busy = false;
    }
  }

  async browse(path) {
    this.cwd = path;
    await this.list();
  }

  async list() {
    const path = this.cwd;
    const entries = await this.api.browse(path);
    if (path !== this.cwd) return;
    const relative = path === this.root ? '' : path.slice(this.root.length + 1);
    const parts = relative ? relative.split('/') : [];
    setHTML(this.crumbs, html`<a href="#" data-path="${this.root}">sandbox</a>${parts.map((part, i) => html` / <a href="#" data-path="${`${this.root}/${parts.slice(0, i + 1).join('/')}`}">${part}</a>`)}`);
    const sorted = entries.slice().sort((a, b) => {
      const dirA = a.mode.startsWith('d');
      const dirB = b.mode.startsWith('d');
      return dirA === dirB ? a.path.localeCompare(b.path) : dirA ? -1 : 1;
    });
    const now = Date.now() / 1000;
    setHTML(this.listing, sorted.length ? html`<table class="grid compact files">
      <thead><tr><th>Name</th><th class="num">Size</th><th>Mode</th><th>Modified</th></tr></thead>
      <tbody>${sorted.map((e) => {
    const dir = e.mode.startsWith('d');
    const name = e.path.split('/').pop();
    return html`<tr class="${e.path === this.file ? 'selected' : ''}">
          <td><a href="#" class="${dir ? 'dir' : 'file'}" data-path="${e.path}" data-dir="${dir}">${name}${dir ? '/' : ''}</a></td>
          <td class="num">${dir ? '' : fmt.bytes(e.size)}</td>
          <td class="mono dim">${e.mode}</td>
          <td>${w.time(e.mtime, now)}</td></tr>`;
  })}</tbody></table>` : w.empty('Empty directory.'));
  }

  open(path) {
    if (this.tail) this.tail.stop();
    this.file = path;
    for (const tab of this.el.querySelectorAll('.tabs button')) {
      tab.classList.toggle('active', `${this.root}/${tab.dataset.file}` === path);
    }
    this.pre.dataset.path = path;
    this.download.href = this.api.downloadUrl(path);
    this.tail = new Tail(this.api, path, this.pre, this.status);
    this.tail.start();
    if (this.root) this.list().catch(() => {});
  }

  destroy() {
    if (this.tail) this.tail.stop();
    this.root = null;
  }
}
