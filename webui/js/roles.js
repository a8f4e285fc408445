// The roles page (`#/roles`, from `/master/roles`): each role's weight, quota guarantee
// and limit, what it consumes, holds and is offered, and its dominant share of the
// cluster, the number DRF sorts roles by.

import { html, setHTML } from './html.js';
import * as fmt from './format.js';
import * as w from './widgets.js';

// Quota maps come as `{cpus: 1}` (Mesos) or `{cpus: {value: 1}}`: both become numbers.
function scalars(object) {
  const out = {};
  for (const [name, v] of Object.entries(object || {})) {
    const n = typeof v === 'number' ? v : v && typeof v.value === 'number' ? v.value : null;
    if (n !== null) out[name] = n;
  }
  return out;
}

function amounts(resources, field) {
  const entries = Object.entries(scalars(resources)).filter(([, v]) => v > 0);
  if (!entries.length) return html`<span class="dim">—</span>`;
  return html`<span class="amounts" data-field="${field}">${entries.map(([name, v]) => html`<span><b>${name}</b> ${fmt.resource(name, v)}</span>`)}</span>`;
}

// The largest fraction of any kind of the cluster's resources that the role holds
// (allocated or offered: DRF counts an offer as allocated until it is declined).
function dominantShare(role, totals) {
  let share = 0;
  for (const [name, v] of Object.entries(scalars(role.resources || role.allocated))) {
    if (totals[name] > 0) share = Math.max(share, v / totals[name]);
  }
  return share;
}

export function rolesPage(root) {
  function update(ctx) {
    const { roles, index } = ctx;
    if (!roles) {
      setHTML(root, html`${w.pageHeader('Roles')}<p class="loading">Loading roles…</p>`);
      return;
    }
    const quota = (role, key) => {
      const q = role.quota || {};
      return q[key] || q[`${key}s`];
    };
    const rows = roles.slice().sort((a, b) => a.name.localeCompare(b.name)).map((role) => {
      const share = dominantShare(role, index.totals.total);
      const weight = role.weight === undefined ? 1 : role.weight;
      const weighted = weight > 0 ? share / weight : 0;
      return html`<tr data-role="${role.name}">
        <th>${role.name}</th>
        <td class="num" data-field="weight">${fmt.cpus(weight)}</td>
        <td class="num">${fmt.count((role.frameworks || []).length)}</td>
        <td>${amounts(role.allocated, 'allocated')}</td>
        <td>${amounts(role.offered, 'offered')}</td>
        <td>${amounts(role.reserved, 'reserved')}</td>
        <td>${amounts(quota(role, 'guarantee'), 'guarantee')}</td>
        <td>${amounts(quota(role, 'limit'), 'limit')}</td>
        <td>${amounts((role.quota || {}).consumed, 'consumed')}</td>
        <td class="share" data-field="share" data-value="${share}">${w.bar([{ value: share, kind: 'used' }], 1)}<span>${fmt.percent(share, 1)}</span></td>
        <td class="num" data-field="weighted-share" data-value="${weighted}">${fmt.percent(weighted, 1)}</td>
      </tr>`;
    });
    setHTML(root, html`
      ${w.pageHeader('Roles', `${fmt.plural(roles.length, 'role')} · DRF offers first to the role with the lowest dominant share divided by its weight`)}
      <section class="card flush">${roles.length ? html`<table class="grid roles">
        <thead><tr><th>Role</th><th class="num">Weight</th><th class="num">Frameworks</th><th>Allocated</th><th>Offered</th><th>Reserved</th><th>Quota guarantee</th><th>Quota limit</th><th>Consumed</th><th>Dominant share</th><th class="num">Share ÷ weight</th></tr></thead>
        <tbody>${rows}</tbody></table>` : w.empty('No roles yet: roles appear once a framework subscribes or an operator sets a weight or quota.')}</section>
    `);
  }
  return { update, needs: { roles: true } };
}
