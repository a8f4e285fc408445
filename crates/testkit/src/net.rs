//! The simulated network. Streams and calls keep the order they were sent in (one
//! FIFO channel per stream and per sender), with seeded delays. A partition of one
//! agent holds everything between it and the master, both ways, as a silent TCP link
//! does; when it heals, what was held is delivered in order, except requests older than
//! the sender's request timeout, which the client gave up on. Connection-level events
//! travel the same channels: a stream's end (the master closed it or died) reaches the
//! peer after what was sent before it, and a peer that drops a stream is seen by the
//! master as the stream closing.

use crate::world::{Ev, World};
use mantle_api::internal::{AgentCall, Register, ToAgent};
use mantle_api::scheduler::{CallBody, Event as SchedulerEvent, Subscribe};
use mantle_api::FrameworkId;
use std::collections::HashMap;

/// One connection: an agent's registration stream or a scheduler's subscription.
pub type ConnId = u64;

/// How long an agent waits for a request before giving up (`master_link.rs`).
pub const REQUEST_TIMEOUT: f64 = 15.0;

/// Who sent something to the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    Agent(usize),
    Sched(usize),
}

/// Requests and connection events reaching the master.
#[derive(Debug)]
pub enum Up {
    Register {
        conn: ConnId,
        register: Box<Register>,
    },
    AgentCall {
        conn: ConnId,
        call: Box<AgentCall>,
    },
    Subscribe {
        conn: ConnId,
        subscribe: Box<Subscribe>,
    },
    Call {
        conn: ConnId,
        framework_id: FrameworkId,
        body: Box<CallBody>,
    },
    /// The peer dropped the connection.
    Closed {
        conn: ConnId,
    },
}

/// What travels down a stream from the master.
#[derive(Debug)]
pub enum Down<T> {
    Msg(T),
    /// The stream ended: the master closed it or went away.
    End,
    /// The request that would have opened the stream failed.
    Refused,
}

/// A message on its way, named by where it goes.
// Messages are boxed while they wait in the queue, so the size spread does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Msg {
    Master {
        from: Peer,
        sent: f64,
        up: Up,
    },
    Agent {
        agent: usize,
        conn: ConnId,
        down: Down<ToAgent>,
    },
    Sched {
        fw: usize,
        conn: ConnId,
        down: Down<SchedulerEvent>,
    },
}

impl Msg {
    /// The agent whose link with the master carries this message.
    fn agent_link(&self) -> Option<usize> {
        match self {
            Msg::Master {
                from: Peer::Agent(a),
                ..
            }
            | Msg::Agent { agent: a, .. } => Some(*a),
            _ => None,
        }
    }

    fn channel(&self) -> Chan {
        match self {
            Msg::Master {
                from: Peer::Agent(a),
                ..
            } => Chan::AgentUp(*a),
            Msg::Master {
                from: Peer::Sched(f),
                ..
            } => Chan::SchedUp(*f),
            Msg::Agent { conn, .. } | Msg::Sched { conn, .. } => Chan::Down(*conn),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Chan {
    AgentUp(usize),
    SchedUp(usize),
    Down(ConnId),
}

pub struct Net {
    /// The partition in force on each agent's link, by id.
    pub cut: Vec<Option<u64>>,
    held: Vec<Vec<(u64, Msg)>>,
    /// When the last message on each channel arrives; later ones arrive after it.
    last: HashMap<Chan, u64>,
    seq: u64,
    next_conn: ConnId,
    next_cut: u64,
}

impl Net {
    pub fn new(agents: usize) -> Net {
        Net {
            cut: vec![None; agents],
            held: (0..agents).map(|_| Vec::new()).collect(),
            last: HashMap::new(),
            seq: 0,
            next_conn: 0,
            next_cut: 0,
        }
    }

    pub fn new_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        self.next_conn
    }
}

/// The master's name for the stream of a connection.
pub fn stream_name(conn: ConnId) -> String {
    format!("c{conn}")
}

impl World {
    pub fn send(&mut self, msg: Msg) {
        self.net.seq += 1;
        let seq = self.net.seq;
        match msg.agent_link() {
            Some(a) if self.net.cut[a].is_some() => self.net.held[a].push((seq, msg)),
            _ => self.schedule_msg(seq, msg),
        }
    }

    fn schedule_msg(&mut self, seq: u64, msg: Msg) {
        let chan = msg.channel();
        let delay = self.delay(0.0005, 0.02);
        let earliest = self.now_us + (delay * 1e6) as u64;
        let at = match self.net.last.get(&chan) {
            Some(&last) => earliest.max(last + 1),
            None => earliest,
        };
        self.net.last.insert(chan, at);
        let msg = Box::new(msg);
        self.at_us(at, Ev::Deliver { seq, msg });
    }

    pub fn deliver(&mut self, seq: u64, msg: Msg) {
        if let Some(a) = msg.agent_link() {
            if self.net.cut[a].is_some() {
                self.net.held[a].push((seq, msg));
                return;
            }
        }
        match msg {
            Msg::Master { from, sent, up } => self.master_receive(from, sent, up),
            Msg::Agent { agent, conn, down } => self.agent_receive(agent, conn, down),
            Msg::Sched { fw, conn, down } => self.sched_receive(fw, conn, down),
        }
    }

    /// Cuts the link between an agent and the master for `secs`.
    pub fn partition(&mut self, agent: usize, secs: f64) {
        if self.net.cut[agent].is_some() {
            return;
        }
        self.net.next_cut += 1;
        let cut = self.net.next_cut;
        self.net.cut[agent] = Some(cut);
        self.note(|| format!("partition agent {agent} for {secs:.1}s"));
        self.at(secs, Ev::Heal { agent, cut });
    }

    pub fn heal(&mut self, agent: usize, cut: u64) {
        if self.net.cut[agent] != Some(cut) {
            return;
        }
        self.heal_now(agent);
    }

    pub fn heal_now(&mut self, agent: usize) {
        if self.net.cut[agent].take().is_none() {
            return;
        }
        self.note(|| format!("heal agent {agent}"));
        let mut held = std::mem::take(&mut self.net.held[agent]);
        held.sort_by_key(|(seq, _)| *seq);
        let now = self.secs();
        for (seq, msg) in held {
            let expired = matches!(
                &msg,
                Msg::Master { sent, up: Up::Register { .. } | Up::AgentCall { .. }, .. }
                    if now - sent > REQUEST_TIMEOUT
            );
            if !expired {
                self.schedule_msg(seq, msg);
            }
        }
    }
}
