// Small pieces of markup the pages share: state badges, usage bars, key-value grids,
// resource tables, times with their exact date in a tooltip.

import { html } from './html.js';
import * as fmt from './format.js';

export function badge(state) {
  return html`<span class="badge ${fmt.stateKind(state)}" data-state="${state}">${fmt.stateName(state)}</span>`;
}

export function pill(text, kind = 'muted') {
  return html`<span class="badge ${kind}">${text}</span>`;
}

// A horizontal bar of stacked parts ([{value, kind, label}]) out of `total`.
export function bar(parts, total) {
  const width = (v) => (total > 0 ? Math.min(100, (100 * v) / total) : 0);
  return html`<div class="bar">${parts.map((p) => html`<span class="${p.kind}" style="width:${width(p.value).toFixed(2)}%" title="${p.label || ''}"></span>`)}</div>`;
}

export function time(timestamp, now) {
  if (!timestamp) return html`<span class="dim">—</span>`;
  return html`<time title="${fmt.date(timestamp)}">${fmt.ago(timestamp, now)}</time>`;
}

// A definition list of [label, value] rows; rows with an undefined value are left out.
export function info(rows) {
  return html`<dl class="info">${rows
    .filter(([, value]) => value !== undefined && value !== null && value !== '')
    .map(([label, value]) => html`<dt>${label}</dt><dd>${value}</dd>`)}</dl>`;
}

export function section(title, body, extra = '') {
  return html`<section class="card"><header><h2>${title}</h2>${extra}</header>${body}</section>`;
}

export function empty(text) {
  return html`<p class="empty">${text}</p>`;
}

export function pageHeader(title, subtitle, extra = '') {
  return html`<div class="page-header"><div><h1>${title}</h1>${subtitle ? html`<p class="subtitle">${subtitle}</p>` : ''}</div>${extra}</div>`;
}

export function mono(text, title) {
  return html`<span class="mono" title="${title || text}">${text}</span>`;
}

// One value with its raw number for tests and tools (`data-field`, `data-value`).
export function value(field, number, text) {
  return html`<span data-field="${field}" data-value="${number}">${text}</span>`;
}

// Rows of resource kinds with one column per given resource object:
// columns = [{title, resources, field}] (field names the data-field prefix).
export function resourceTable(columns) {
  const names = fmt.scalarNames(...columns.map((c) => c.resources));
  const ranges = new Set();
  for (const column of columns) {
    for (const [name, v] of Object.entries(column.resources || {})) {
      if (typeof v === 'string' && v) ranges.add(name);
    }
  }
  const cell = (column, name) => {
    const v = (column.resources || {})[name];
    if (typeof v === 'number') {
      return column.field ? value(`${column.field}-${name}`, v, fmt.resource(name, v)) : fmt.resource(name, v);
    }
    return v ? html`<span class="mono">${v}</span>` : html`<span class="dim">—</span>`;
  };
  return html`<table class="grid resources">
    <thead><tr><th>Resource</th>${columns.map((c) => html`<th class="num">${c.title}</th>`)}</tr></thead>
    <tbody>${[...names, ...ranges].map((name) => html`<tr><th>${name}</th>${columns.map((c) => html`<td class="num">${cell(c, name)}</td>`)}</tr>`)}</tbody>
  </table>`;
}

// "1.5 / 4" with a usage bar, for list columns.
export function usage(name, used, total) {
  return html`<div class="usage"><span>${fmt.resource(name, used || 0)} <span class="dim">/ ${fmt.resource(name, total || 0)}</span></span>${bar([{ value: used || 0, kind: 'used' }], total || 0)}</div>`;
}
