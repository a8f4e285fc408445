//! The factorial framework's logic, kept apart from its two binaries so it can be tested:
//! exact factorials (a tiny base-10^9 bignum), the task data encoding, the packing of
//! pending numbers into offers, and the bookkeeping of results as status updates arrive.
//!
//! The scheduler sends each number as the base64 of its decimal text in `TaskInfo.data`;
//! the executor answers TASK_FINISHED with the base64 of the decimal digits of n! in
//! `TaskStatus.data`, and the scheduler checks them against its own computation.

use base64::Engine;
use mantle_api::{
    AgentId, CommandInfo, ExecutorId, ExecutorInfo, Filters, FrameworkId, Offer, OfferId, Resource,
    TaskId, TaskInfo, TaskState, TaskStatus,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The largest number the framework computes: 10000! has 35,660 digits, a few
/// milliseconds of work and a status update of about 48 KB.
pub const MAX_N: u32 = 10_000;

/// One executor per agent runs every task of the framework there.
pub const EXECUTOR_ID: &str = "factorial-executor";

/// How long offers are refused once every number is launched.
pub const REFUSE_SECONDS_WHEN_DONE: f64 = 30.0;

const BASE: u64 = 1_000_000_000;

/// A natural number as base-10^9 limbs, least significant first. It only needs to
/// multiply by small numbers and print itself, which is all a factorial asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Natural {
    limbs: Vec<u32>,
}

impl Natural {
    pub fn one() -> Natural {
        Natural { limbs: vec![1] }
    }

    pub fn mul_small(&mut self, factor: u32) {
        if factor == 0 {
            self.limbs = vec![0];
            return;
        }
        // A limb is below 10^9 and a factor below 2^32, so limb * factor + carry stays
        // below 2^62: no overflow in u64.
        let mut carry: u64 = 0;
        for limb in &mut self.limbs {
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = (product % BASE) as u32;
            carry = product / BASE;
        }
        while carry > 0 {
            self.limbs.push((carry % BASE) as u32);
            carry /= BASE;
        }
    }

    /// The decimal digits, without leading zeros.
    pub fn to_decimal(&self) -> String {
        let mut limbs = self.limbs.iter().rev();
        let mut out = limbs
            .next()
            .map(u32::to_string)
            .unwrap_or_else(|| "0".into());
        for limb in limbs {
            out.push_str(&format!("{limb:09}"));
        }
        out
    }
}

/// n!, exactly.
pub fn factorial(n: u32) -> Natural {
    let mut product = Natural::one();
    for factor in 2..=n {
        product.mul_small(factor);
    }
    product
}

fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_text(what: &str, data: Option<&str>) -> Result<String, String> {
    let Some(data) = data else {
        return Err(format!("{what} is missing"));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("{what} is not valid base64: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8 text"))
}

/// `TaskInfo.data` for the number `n`.
pub fn encode_number(n: u32) -> String {
    base64_encode(n.to_string().as_bytes())
}

/// Reads the number of a task's data; the error names the problem.
pub fn decode_number(data: Option<&str>) -> Result<u32, String> {
    let text = base64_text("task data", data)?;
    let trimmed = text.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("task data {text:?} is not a whole number"));
    }
    match trimmed.parse::<u32>() {
        Ok(n) if n <= MAX_N => Ok(n),
        _ => Err(format!(
            "task data {trimmed} is larger than the largest supported number {MAX_N}"
        )),
    }
}

/// `TaskStatus.data` of a finished task.
pub fn encode_result(digits: &str) -> String {
    base64_encode(digits.as_bytes())
}

/// Reads the digits a finished task reported.
pub fn decode_result(data: Option<&str>) -> Result<String, String> {
    let digits = base64_text("the result", data)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the result {digits:?} is not a decimal number"));
    }
    Ok(digits)
}

/// What the executor does with a launched task: the number and the digits of its
/// factorial, or why the task fails.
pub fn compute(task: &TaskInfo) -> Result<(u32, String), String> {
    let n = decode_number(task.data.as_deref())?;
    Ok((n, factorial(n).to_decimal()))
}

pub fn task_id(n: u32) -> TaskId {
    TaskId::new(format!("factorial-{n}"))
}

/// The number of one of this framework's task ids.
pub fn number_of(task_id: &TaskId) -> Option<u32> {
    let digits = task_id.as_str().strip_prefix("factorial-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What every task asks for, and the executor that runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    pub cpus: f64,
    pub mem: f64,
    /// The absolute path of `factorial-executor` on the agents.
    pub executor_path: String,
}

/// The executor shared by all tasks on an agent. Every task carries the same
/// ExecutorInfo, as Mesos requires of tasks sharing an executor.
pub fn executor_info(executor_path: &str, framework_id: Option<&FrameworkId>) -> ExecutorInfo {
    ExecutorInfo {
        kind: Some("CUSTOM".into()),
        executor_id: ExecutorId::new(EXECUTOR_ID),
        framework_id: framework_id.cloned(),
        command: Some(CommandInfo {
            uris: Vec::new(),
            environment: None,
            shell: false,
            value: Some(executor_path.to_string()),
            arguments: vec![executor_path.to_string()],
            user: None,
        }),
        container: None,
        resources: Vec::new(),
        name: Some("factorial executor".into()),
        source: None,
        data: None,
        discovery: None,
        shutdown_grace_period: None,
        labels: None,
    }
}

/// The task computing n! on `agent_id` with `resources`.
pub fn build_task(
    n: u32,
    agent_id: &AgentId,
    resources: Vec<Resource>,
    executor: &ExecutorInfo,
) -> TaskInfo {
    TaskInfo {
        name: format!("factorial {n}"),
        task_id: task_id(n),
        agent_id: agent_id.clone(),
        resources,
        executor: Some(Box::new(executor.clone())),
        command: None,
        container: None,
        health_check: None,
        check: None,
        kill_policy: None,
        data: Some(encode_number(n)),
        labels: None,
        discovery: None,
        max_completion_time: None,
        limits: None,
    }
}

/// Scalars in thousandths, the precision Mesos computes with.
fn fixed(value: f64) -> i64 {
    (value * 1000.0).round() as i64
}

/// Takes `amount` of the scalar `name` out of `available`, possibly from several entries
/// (roles), copying each entry's role and reservation so the master recognises the
/// resources as part of the offer. `None`, leaving `available` as it was, when there is
/// not enough.
fn take_scalar(available: &mut [Resource], name: &str, amount: f64) -> Option<Vec<Resource>> {
    let scalar_of = |r: &Resource| r.scalar.map(|s| fixed(s.value)).unwrap_or(0);
    let matching = |r: &Resource| r.name == name && r.scalar.is_some();
    let total: i64 = available
        .iter()
        .filter(|r| matching(r))
        .map(scalar_of)
        .sum();
    let mut wanted = fixed(amount);
    if total < wanted {
        return None;
    }
    let mut taken = Vec::new();
    for resource in available.iter_mut().filter(|r| matching(r)) {
        if wanted == 0 {
            break;
        }
        let have = scalar_of(resource);
        let take = have.min(wanted);
        if take == 0 {
            continue;
        }
        let mut piece = resource.clone();
        piece.scalar = Some(mantle_api::resources::Scalar {
            value: take as f64 / 1000.0,
        });
        taken.push(piece);
        resource.scalar = Some(mantle_api::resources::Scalar {
            value: (have - take) as f64 / 1000.0,
        });
        wanted -= take;
    }
    Some(taken)
}

/// What to do with a batch of offers.
#[derive(Clone, Debug, PartialEq)]
pub enum OfferAction {
    Launch {
        offer_id: OfferId,
        tasks: Vec<TaskInfo>,
        filters: Option<Filters>,
    },
    Decline {
        offer_ids: Vec<OfferId>,
        filters: Option<Filters>,
    },
}

/// What a status update meant for the run.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// A state on the way (TASK_STARTING, TASK_RUNNING, ...).
    State { n: u32, state: TaskState },
    /// n! came back and matches.
    Verified { n: u32, digits: String },
    /// The run cannot succeed.
    Failed { n: u32, message: String },
    /// Not about one of our pending tasks (unknown task, or a repeat of a verified one).
    Ignored,
}

/// The scheduler's bookkeeping: which numbers wait for an offer, which run, which are
/// verified.
#[derive(Debug)]
pub struct Framework {
    spec: TaskSpec,
    pending: VecDeque<u32>,
    launched: BTreeSet<u32>,
    verified: BTreeMap<u32, String>,
    total: usize,
}

impl Framework {
    /// Duplicates are dropped (task ids must be unique); numbers above [`MAX_N`] are an
    /// error.
    pub fn new(numbers: &[u32], spec: TaskSpec) -> Result<Framework, String> {
        let mut seen = BTreeSet::new();
        let mut pending = VecDeque::new();
        for &n in numbers {
            if n > MAX_N {
                return Err(format!(
                    "{n} is larger than the largest supported number {MAX_N}"
                ));
            }
            if seen.insert(n) {
                pending.push_back(n);
            }
        }
        if pending.is_empty() {
            return Err("no numbers to compute".into());
        }
        let total = pending.len();
        Ok(Framework {
            spec,
            pending,
            launched: BTreeSet::new(),
            verified: BTreeMap::new(),
            total,
        })
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn verified(&self) -> &BTreeMap<u32, String> {
        &self.verified
    }

    pub fn done(&self) -> bool {
        self.verified.len() == self.total
    }

    /// The numbers not verified yet, in ascending order.
    pub fn outstanding(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .pending
            .iter()
            .chain(self.launched.iter())
            .copied()
            .collect();
        out.sort_unstable();
        out
    }

    fn filters(&self) -> Option<Filters> {
        self.pending.is_empty().then_some(Filters {
            refuse_seconds: REFUSE_SECONDS_WHEN_DONE,
        })
    }

    /// Packs pending numbers into the offers, as many as fit in each, and declines the
    /// offers that get none (for 30 s once nothing is pending, else with the default
    /// filter).
    pub fn offers(
        &mut self,
        offers: &[Offer],
        framework_id: Option<&FrameworkId>,
    ) -> Vec<OfferAction> {
        let executor = executor_info(&self.spec.executor_path, framework_id);
        let mut actions = Vec::new();
        let mut declined = Vec::new();
        for offer in offers {
            let mut available = offer.resources.clone();
            let mut tasks = Vec::new();
            while let Some(&n) = self.pending.front() {
                let Some(resources) = self.carve(&mut available) else {
                    break;
                };
                self.pending.pop_front();
                self.launched.insert(n);
                tasks.push(build_task(n, &offer.agent_id, resources, &executor));
            }
            if tasks.is_empty() {
                declined.push(offer.id.clone());
            } else {
                let filters = self.filters();
                actions.push(OfferAction::Launch {
                    offer_id: offer.id.clone(),
                    tasks,
                    filters,
                });
            }
        }
        if !declined.is_empty() {
            actions.push(OfferAction::Decline {
                offer_ids: declined,
                filters: self.filters(),
            });
        }
        actions
    }

    /// One task's cpus and mem out of `available`, or `None` (and `available`
    /// untouched) when they do not fit.
    fn carve(&self, available: &mut Vec<Resource>) -> Option<Vec<Resource>> {
        let mut trial = available.clone();
        let mut resources = take_scalar(&mut trial, "cpus", self.spec.cpus)?;
        resources.extend(take_scalar(&mut trial, "mem", self.spec.mem)?);
        *available = trial;
        Some(resources)
    }

    /// Puts the numbers of tasks the master did not take back in the queue (the launch
    /// call was refused).
    pub fn relaunch(&mut self, tasks: &[TaskInfo]) {
        for n in tasks.iter().filter_map(|t| number_of(&t.task_id)) {
            if self.launched.remove(&n) {
                self.pending.push_front(n);
            }
        }
    }

    /// Applies a status update.
    pub fn update(&mut self, status: &TaskStatus) -> Progress {
        let Some(n) = number_of(&status.task_id) else {
            return Progress::Ignored;
        };
        if !self.launched.contains(&n) {
            return Progress::Ignored;
        }
        let failed = |message: String| Progress::Failed { n, message };
        match status.state {
            TaskState::Finished => {
                let digits = match decode_result(status.data.as_deref()) {
                    Ok(digits) => digits,
                    Err(e) => {
                        return failed(format!(
                            "factorial({n}) finished without a usable result: {e}"
                        ))
                    }
                };
                let expected = factorial(n).to_decimal();
                if digits != expected {
                    return failed(format!(
                        "factorial({n}) is wrong: got {} ({} digits), expected {} ({} digits)",
                        abbreviate(&digits),
                        digits.len(),
                        abbreviate(&expected),
                        expected.len()
                    ));
                }
                self.launched.remove(&n);
                self.verified.insert(n, digits.clone());
                Progress::Verified { n, digits }
            }
            state if state.is_terminal() => {
                let mut message = format!("factorial({n}) ended in {state}");
                if let Some(reason) = status.reason {
                    message.push_str(&format!(" ({reason})"));
                }
                if let Some(text) = status.message.as_deref().filter(|m| !m.is_empty()) {
                    message.push_str(&format!(": {text}"));
                }
                failed(message)
            }
            state => Progress::State { n, state },
        }
    }
}

/// A long number shortened for error messages.
fn abbreviate(digits: &str) -> String {
    if digits.len() <= 40 {
        digits.to_string()
    } else {
        format!("{}...{}", &digits[..20], &digits[digits.len() - 20..])
    }
}

#[cfg(test)]
mod tests;
