// What the pages need from one `/master/state`, computed once per poll: agents and
// frameworks by id, every task with its framework and agent, totals by resource kind
// and task counts by state.

const cache = new WeakMap();

export const TASK_STATES = [
  'TASK_STAGING', 'TASK_STARTING', 'TASK_RUNNING', 'TASK_KILLING', 'TASK_FINISHED',
  'TASK_KILLED', 'TASK_FAILED', 'TASK_LOST', 'TASK_ERROR', 'TASK_DROPPED',
  'TASK_UNREACHABLE', 'TASK_GONE', 'TASK_GONE_BY_OPERATOR',
];

export const TERMINAL = new Set([
  'TASK_FINISHED', 'TASK_KILLED', 'TASK_FAILED', 'TASK_LOST', 'TASK_ERROR',
  'TASK_DROPPED', 'TASK_GONE', 'TASK_GONE_BY_OPERATOR',
]);

function add(into, resources) {
  for (const [name, value] of Object.entries(resources || {})) {
    if (typeof value === 'number') into[name] = (into[name] || 0) + value;
  }
}

function firstTime(task) {
  const statuses = task.statuses || [];
  return statuses.length ? statuses[0].timestamp : 0;
}

function lastTime(task) {
  const statuses = task.statuses || [];
  return statuses.length ? statuses[statuses.length - 1].timestamp : 0;
}

export function taskKey(frameworkId, taskId) { return `${frameworkId}\u0000${taskId}`; }

function build(state) {
  const agents = new Map();
  for (const slave of state.slaves || []) agents.set(slave.id, slave);
  // Agents sharing a hostname (several on one host, as `mantle local` runs them) are
  // told apart by their port.
  const hosts = new Map();
  for (const slave of agents.values()) hosts.set(slave.hostname, (hosts.get(slave.hostname) || 0) + 1);
  const names = new Map();
  for (const slave of agents.values()) {
    const port = String(slave.pid || '').split(':').pop();
    names.set(slave.id, hosts.get(slave.hostname) > 1 && port ? `${slave.hostname}:${port}` : slave.hostname);
  }

  const frameworks = new Map();
  const tasks = [];
  const addFramework = (framework, completed) => {
    frameworks.set(framework.id, { ...framework, completed });
    const lists = [['tasks', 'active'], ['unreachable_tasks', 'unreachable'],
      ['completed_tasks', 'completed']];
    for (const [list, kind] of lists) {
      for (const task of framework[list] || []) {
        tasks.push({
          task,
          kind,
          framework: framework.id,
          frameworkName: framework.name,
          agent: agents.get(task.slave_id) || null,
          agentName: names.get(task.slave_id) || '',
          started: firstTime(task),
          updated: lastTime(task),
        });
      }
    }
  };
  for (const framework of state.frameworks || []) addFramework(framework, false);
  for (const framework of state.completed_frameworks || []) addFramework(framework, true);
  tasks.sort((a, b) => b.updated - a.updated || b.started - a.started);

  const byKey = new Map(tasks.map((t) => [taskKey(t.framework, t.task.id), t]));
  const byAgent = new Map();
  for (const entry of tasks) {
    const id = entry.task.slave_id;
    if (!byAgent.has(id)) byAgent.set(id, []);
    byAgent.get(id).push(entry);
  }

  const totals = { total: {}, used: {}, offered: {} };
  for (const slave of state.slaves || []) {
    add(totals.total, slave.resources);
    add(totals.used, slave.used_resources);
    add(totals.offered, slave.offered_resources);
  }

  // Every task the master reports, live or ended, counts once under its latest state.
  const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0]));
  for (const entry of tasks) counts[entry.task.state] = (counts[entry.task.state] || 0) + 1;

  const agentName = (slave) => names.get(slave.id) || slave.hostname;
  return { agents, agentName, frameworks, tasks, byKey, byAgent, totals, counts };
}

export function indexOf(state) {
  if (!cache.has(state)) cache.set(state, build(state));
  return cache.get(state);
}

// Live (not terminal) tasks on an agent.
export function liveTasksOn(index, agentId) {
  return (index.byAgent.get(agentId) || []).filter((t) => !TERMINAL.has(t.task.state));
}
