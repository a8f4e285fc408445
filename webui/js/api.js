// Talking to masters and agents. Every read is JSONP (`?jsonp=cb`), as Mesos's own UI
// does: a `<script>` load follows a standby's 307 to the leader across origins and
// needs no CORS, and agents on other ports answer the same way.

const TIMEOUT_MS = 10000;
// How long a leader that did not answer directly is read through the serving master.
const UNREACHABLE_MS = 60000;
let sequence = 0;

export class RequestError extends Error {}

// GET url?jsonp=<fresh callback>; resolves with the JSON value the server wrapped.
export function jsonp(url, timeoutMs = TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    sequence += 1;
    const name = `__mantle_jsonp_${sequence}`;
    const script = document.createElement('script');
    let settled = false;
    const finish = (error, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A late answer after a timeout must still find a function to call.
      if (error) window[name] = () => { delete window[name]; };
      else delete window[name];
      script.remove();
      if (error) reject(error); else resolve(value);
    };
    const timer = setTimeout(
      () => finish(new RequestError(`no answer from ${url} within ${timeoutMs / 1000} s`)),
      timeoutMs);
    window[name] = (value) => finish(null, value);
    script.onerror = () => finish(new RequestError(`cannot load ${url}`));
    script.src = `${url}${url.includes('?') ? '&' : '?'}jsonp=${name}`;
    document.head.appendChild(script);
  });
}

export function query(params) {
  return Object.entries(params)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
}

// `host:port` from a libprocess pid such as `master@10.0.0.1:5050`.
export function pidAddress(pid) {
  const at = String(pid || '').lastIndexOf('@');
  return at >= 0 ? pid.slice(at + 1) : null;
}

// The process id part of a pid: `slave(1)` for agents.
export function pidProcess(pid) {
  const text = String(pid || '');
  const at = text.lastIndexOf('@');
  return at > 0 ? text.slice(0, at) : 'slave(1)';
}

// The leading master's `host:port`, as its state names it.
export function leaderOf(state) {
  const info = state && state.leader_info;
  if (info && info.hostname && info.port) return `${info.hostname}:${info.port}`;
  return pidAddress(state && state.leader);
}

// The master's view, followed to whichever master leads. The page may be served by a
// standby: its `/metrics/snapshot` (answered locally) says so with master/elected = 0,
// and its `/master/state` redirects to the leader, whose address we then poll directly.
export class Cluster {
  constructor(served = window.location.host) {
    this.served = served;
    this.leader = null;
    this.standby = false;
    // A leader the browser cannot reach itself (its advertised hostname may not resolve
    // here) is read through the serving master's redirect for a while.
    this.unreachable = null;
    this.unreachableUntil = 0;
  }

  direct() {
    const blocked = this.leader === this.unreachable && Date.now() < this.unreachableUntil;
    return this.leader && this.leader !== this.served && !blocked;
  }

  async poll({ roles = false } = {}) {
    const local = jsonp(`//${this.served}/metrics/snapshot`).catch(() => null);
    const state = await this.state();
    this.leader = leaderOf(state) || this.leader;
    const localMetrics = await local;
    this.standby = localMetrics !== null && localMetrics['master/elected'] === 0;
    const direct = this.direct();
    const fromLeader = (path) => jsonp(`//${direct ? this.leader : this.served}${path}`);
    // Metrics are answered by each master itself, so only a direct read gives the
    // leader's; the redirecting endpoints (roles) work through the serving master too.
    const ownMetrics = !this.standby && localMetrics !== null;
    const [metrics, rolesJson] = await Promise.all([
      ownMetrics ? localMetrics : direct ? fromLeader('/metrics/snapshot').catch(() => ({})) : {},
      roles ? fromLeader('/master/roles') : null,
    ]);
    return { state, metrics, roles: rolesJson ? rolesJson.roles || [] : null };
  }

  // The leader we know first; if it stopped answering, the master that served the page,
  // which redirects to the new leader once one is elected.
  async state() {
    if (this.direct()) {
      try {
        return await jsonp(`//${this.leader}/master/state`);
      } catch (error) {
        this.unreachable = this.leader;
        this.unreachableUntil = Date.now() + UNREACHABLE_MS;
      }
    }
    return jsonp(`//${this.served}/master/state`);
  }
}

// An agent's HTTP endpoints, reached as Mesos's UI reaches them: the hostname the agent
// registered with and the port of its pid.
export class Agent {
  constructor(slave) {
    const address = pidAddress(slave.pid) || '';
    const port = address.slice(address.lastIndexOf(':') + 1);
    this.base = `//${slave.hostname}:${port}`;
    this.process = pidProcess(slave.pid);
  }

  state() { return jsonp(`${this.base}/${this.process}/state`); }

  browse(path) { return jsonp(`${this.base}/files/browse?${query({ path })}`); }

  read(path, offset, length) {
    return jsonp(`${this.base}/files/read?${query({ path, offset, length })}`);
  }

  downloadUrl(path) { return `${window.location.protocol}${this.base}/files/download?${query({ path })}`; }
}
