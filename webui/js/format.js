// Human units and times: "3.5 GiB", "1.25 CPUs", "3 min ago". Mesos counts mem and disk
// in MB (mebibytes), cpus in fractions of a core, and times in seconds since the epoch.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

function trim(number, decimals) {
  return Number(number.toFixed(decimals)).toString();
}

export function bytes(count) {
  let value = Number(count) || 0;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const decimals = unit === 0 || Math.abs(value) >= 100 ? 0 : 1;
  return `${trim(value, decimals)} ${UNITS[unit]}`;
}

export function megabytes(mb) { return bytes((Number(mb) || 0) * 1024 * 1024); }

export function cpus(value) { return trim(Number(value) || 0, 2); }

export function count(value) { return (Number(value) || 0).toLocaleString('en-US'); }

// "1 role", "3 roles".
export function plural(n, noun) { return `${count(n)} ${noun}${n === 1 ? '' : 's'}`; }

export function percent(part, whole) {
  if (!whole) return '0%';
  const p = (100 * part) / whole;
  return `${p > 0 && p < 1 ? '<1' : trim(p, 0)}%`;
}

// One resource value by its kind: scalars of mem and disk in bytes, ranges as text.
export function resource(name, value) {
  if (value === undefined || value === null) return '—';
  if (typeof value === 'string') return value;
  if (name === 'mem' || name === 'disk') return megabytes(value);
  if (name === 'gpus') return trim(value, 0);
  return cpus(value);
}

// The scalar resources of a legacy resource object in display order: cpus, gpus, mem,
// disk first (Mesos always sends those), then the others by name.
export function scalarNames(...objects) {
  const names = new Set(['cpus', 'gpus', 'mem', 'disk']);
  for (const object of objects) {
    for (const [name, value] of Object.entries(object || {})) {
      if (typeof value === 'number') names.add(name);
    }
  }
  return [...names];
}

export function duration(seconds) {
  let s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s - h * 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  return m ? `${h} h ${m} min` : `${h} h`;
}

// "12 s ago" for a time in seconds since the epoch, measured against `now` (seconds).
export function ago(timestamp, now = Date.now() / 1000) {
  if (!timestamp) return '—';
  const delta = now - timestamp;
  if (Math.abs(delta) < 5) return 'just now';
  return delta > 0 ? `${duration(delta)} ago` : `in ${duration(-delta)}`;
}

export function date(timestamp) {
  if (!timestamp) return '';
  return new Date(timestamp * 1000).toLocaleString('en-GB', { hour12: false });
}

// "TASK_RUNNING" -> "running".
export function stateName(state) {
  return String(state || '').replace(/^TASK_/, '').toLowerCase().replace(/_/g, ' ');
}

const STATE_KINDS = {
  TASK_RUNNING: 'ok',
  TASK_FINISHED: 'done',
  TASK_STAGING: 'pending',
  TASK_STARTING: 'pending',
  TASK_KILLING: 'warn',
  TASK_KILLED: 'muted',
  TASK_UNREACHABLE: 'warn',
  TASK_FAILED: 'bad',
  TASK_ERROR: 'bad',
  TASK_LOST: 'bad',
  TASK_DROPPED: 'bad',
  TASK_GONE: 'bad',
  TASK_GONE_BY_OPERATOR: 'bad',
};

export function stateKind(state) { return STATE_KINDS[state] || 'muted'; }

// Mesos IDs are long (`<master uuid>-S3`, `<master uuid>-0001`): keep the start of the
// uuid and the distinctive suffix; the full ID goes into a title.
export function shortId(id) {
  const text = String(id || '');
  const match = /^([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-(.+)$/.exec(text);
  return match ? `${match[1]}…-${match[2]}` : text;
}
