//! Maintenance primitives (reference §3, "Maintenance"; Mesos's maintenance.md): one
//! schedule of windows, each a set of machines with an unavailability. A scheduled
//! machine is DRAINING: offers for its agents carry the unavailability and the frameworks
//! using them get inverse offers (`inverse_offers.rs`). START_MAINTENANCE brings machines
//! DOWN: their agents are removed, their tasks TASK_LOST, and agents on them may not
//! register. STOP_MAINTENANCE brings machines UP and out of the schedule. An agent is on
//! a machine when both its hostname (ignoring case) and its IP equal the machine ID's,
//! with unset fields counting as different, as Mesos compares them. The schedule and the
//! DOWN machines are in the registry; the frameworks' answers are not (Mesos neither).

use super::agent_control::Ending;
use super::inverse_offers::InverseOffers;
use super::policy::required;
use super::{Agent, Master, OperatorReply};
use mantle_api::maintenance::{
    ClusterStatus, DrainingMachine, MachineId, Machines, Schedule, Unavailability,
};
use mantle_api::operator::OperatorCall;
use mantle_api::*;
use serde_json::json;
use std::net::Ipv4Addr;

/// The master's maintenance state.
#[derive(Clone, Debug, Default)]
pub struct Maintenance {
    /// The schedule as the operator last set it, less the machines brought back UP.
    pub schedule: Schedule,
    /// Machines in DOWN mode, as the schedule names them; each is in the schedule.
    pub down: Vec<MachineId>,
    pub(super) inverse: InverseOffers,
}

impl Maintenance {
    /// The schedule's own spelling of a machine.
    fn scheduled(&self, machine: &MachineId) -> Option<&MachineId> {
        self.schedule
            .windows
            .iter()
            .flat_map(|w| w.machine_ids.iter())
            .find(|m| *m == machine)
    }

    pub fn is_scheduled(&self, machine: &MachineId) -> bool {
        self.scheduled(machine).is_some()
    }

    pub fn is_down(&self, machine: &MachineId) -> bool {
        self.down.contains(machine)
    }
}

/// The IP of an agent's address.
fn agent_ip(agent: &Agent) -> &str {
    agent
        .endpoint()
        .rsplit_once(':')
        .map_or(agent.endpoint(), |(ip, _)| ip)
}

/// The machine an agent runs on: its hostname and the IP of its address.
pub(super) fn machine_of(agent: &Agent) -> MachineId {
    MachineId::of_agent(&agent.info.hostname, agent_ip(agent))
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request(message)
}

fn validate_machine(id: &MachineId, field: &str) -> Result<(), ApiError> {
    let empty = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    if empty(&id.hostname) && empty(&id.ip) {
        return Err(bad(format!(
            "{field}: both 'hostname' and 'ip' for a machine are empty"
        )));
    }
    if let Some(ip) = id.ip.as_deref().filter(|ip| !ip.is_empty()) {
        if ip.parse::<Ipv4Addr>().is_err() {
            return Err(bad(format!(
                "{field}.ip: '{ip}' is not a valid IPv4 address"
            )));
        }
    }
    Ok(())
}

/// A START_MAINTENANCE or STOP_MAINTENANCE list: not empty, each machine valid and
/// named once.
fn validate_machines(machines: &[MachineId], field: &str) -> Result<(), ApiError> {
    if machines.is_empty() {
        return Err(bad(format!("{field}: the list of machines is empty")));
    }
    for (i, id) in machines.iter().enumerate() {
        let at = format!("{field}[{i}]");
        validate_machine(id, &at)?;
        if machines[..i].contains(id) {
            return Err(bad(format!(
                "{at}: machine '{}' appears more than once in the list",
                id.to_json_text()
            )));
        }
    }
    Ok(())
}

impl Master {
    /// The maintenance calls of the v1 operator API; the legacy endpoints arrive here as
    /// the same calls.
    pub(super) fn maintenance_call(
        &mut self,
        now: f64,
        call: OperatorCall,
    ) -> Result<OperatorReply, ApiError> {
        match call.kind.as_str() {
            "GET_MAINTENANCE_SCHEDULE" => Ok(OperatorReply::Ok(Some(json!({
                "type": "GET_MAINTENANCE_SCHEDULE",
                "get_maintenance_schedule": {"schedule": self.maintenance.schedule},
            })))),
            "GET_MAINTENANCE_STATUS" => Ok(OperatorReply::Ok(Some(json!({
                "type": "GET_MAINTENANCE_STATUS",
                "get_maintenance_status": {"status": self.maintenance_status()},
            })))),
            "UPDATE_MAINTENANCE_SCHEDULE" => {
                let update = required(
                    call.update_maintenance_schedule,
                    "update_maintenance_schedule",
                )?;
                self.update_schedule(now, update.schedule, "update_maintenance_schedule.schedule")?;
                Ok(OperatorReply::Ok(None))
            }
            "START_MAINTENANCE" => {
                let body = required(call.start_maintenance, "start_maintenance")?;
                self.start_maintenance(now, body, "start_maintenance.machines")?;
                Ok(OperatorReply::Ok(None))
            }
            "STOP_MAINTENANCE" => {
                let body = required(call.stop_maintenance, "stop_maintenance")?;
                self.stop_maintenance(body, "stop_maintenance.machines")?;
                Ok(OperatorReply::Ok(None))
            }
            other => unreachable!("not a maintenance call: {other}"),
        }
    }

    pub fn maintenance_schedule(&self) -> &Schedule {
        &self.maintenance.schedule
    }

    /// The unavailability of the machine an agent runs on, if it is scheduled.
    /// It runs for every offer, so it builds no machine ID.
    pub(super) fn agent_unavailability(&self, agent: &Agent) -> Option<Unavailability> {
        let (hostname, ip) = (agent.info.hostname.as_str(), agent_ip(agent));
        self.maintenance
            .schedule
            .windows
            .iter()
            .find(|w| {
                w.machine_ids
                    .iter()
                    .any(|m| m.is_agent_machine(hostname, ip))
            })
            .map(|w| w.unavailability.clone())
    }

    /// Registration from a DOWN machine is refused (Mesos tells the agent to shut down;
    /// here the registration is answered 403 and the agent keeps trying).
    pub(super) fn check_machine_up(&self, hostname: &str, pid: &str) -> Result<(), ApiError> {
        if self.maintenance.down.is_empty() {
            return Ok(());
        }
        let ip = pid
            .split_once('@')
            .and_then(|(_, addr)| addr.rsplit_once(':'))
            .map_or("", |(ip, _)| ip);
        let machine = MachineId::of_agent(hostname, ip);
        if self.maintenance.is_down(&machine) {
            return Err(ApiError::forbidden(format!(
                "machine '{}' of this agent is DOWN for maintenance",
                machine.to_json_text()
            )));
        }
        Ok(())
    }

    /// UPDATE_MAINTENANCE_SCHEDULE: replaces the schedule. Every agent on a machine of
    /// the old or the new schedule has its offers and inverse offers rescinded and its
    /// frameworks' answers forgotten, so that what frameworks hold states the new
    /// unavailability.
    pub fn update_schedule(
        &mut self,
        now: f64,
        schedule: Schedule,
        field: &str,
    ) -> Result<(), ApiError> {
        let mut seen: Vec<&MachineId> = Vec::new();
        for (i, window) in schedule.windows.iter().enumerate() {
            let at = format!("{field}.windows[{i}]");
            if window.machine_ids.is_empty() {
                return Err(bad(format!(
                    "{at}.machine_ids: the list of machines in the maintenance window is empty"
                )));
            }
            if window
                .unavailability
                .duration
                .is_some_and(|d| d.nanoseconds < 0)
            {
                return Err(bad(format!(
                    "{at}.unavailability.duration: must not be negative"
                )));
            }
            for (j, id) in window.machine_ids.iter().enumerate() {
                let at = format!("{at}.machine_ids[{j}]");
                validate_machine(id, &at)?;
                if seen.contains(&id) {
                    return Err(bad(format!(
                        "{at}: machine '{}' appears more than once in the schedule",
                        id.to_json_text()
                    )));
                }
                seen.push(id);
            }
        }
        if let Some(down) = self.maintenance.down.iter().find(|d| !seen.contains(d)) {
            return Err(bad(format!(
                "{field}: machine '{}' is DOWN and cannot be removed from the schedule",
                down.to_json_text()
            )));
        }
        let old = std::mem::replace(&mut self.maintenance.schedule, schedule);
        let affected: Vec<AgentId> = self
            .agents
            .values()
            .filter(|a| {
                let machine = machine_of(a);
                self.maintenance.is_scheduled(&machine)
                    || old.windows.iter().any(|w| w.machine_ids.contains(&machine))
            })
            .map(|a| a.id.clone())
            .collect();
        for agent_id in &affected {
            self.rescind_agent_offers(now, agent_id);
            self.rescind_agent_inverse_offers(agent_id);
            self.forget_agent_answers(agent_id);
        }
        tracing::info!(
            windows = self.maintenance.schedule.windows.len(),
            agents = affected.len(),
            "maintenance schedule updated"
        );
        self.registry_rest_changed();
        self.dirty = true;
        Ok(())
    }

    /// START_MAINTENANCE: the machines go DOWN and their agents are removed.
    pub fn start_maintenance(
        &mut self,
        now: f64,
        body: Machines,
        field: &str,
    ) -> Result<(), ApiError> {
        validate_machines(&body.machines, field)?;
        let mut named = Vec::new();
        for (i, id) in body.machines.iter().enumerate() {
            let Some(scheduled) = self.maintenance.scheduled(id) else {
                return Err(bad(format!(
                    "{field}[{i}]: machine '{}' is not part of a maintenance schedule",
                    id.to_json_text()
                )));
            };
            if self.maintenance.is_down(id) {
                return Err(bad(format!(
                    "{field}[{i}]: machine '{}' is not in DRAINING mode and cannot be brought down",
                    id.to_json_text()
                )));
            }
            named.push(scheduled.clone());
        }
        for machine in named {
            let on_it: Vec<(AgentId, String)> = self
                .agents
                .values()
                .filter(|a| machine_of(a) == machine)
                .map(|a| (a.id.clone(), a.info.hostname.clone()))
                .collect();
            tracing::warn!(machine = %machine.to_json_text(), agents = on_it.len(), "machine is DOWN for maintenance");
            for (agent_id, hostname) in on_it {
                let ending = Ending {
                    kept: TaskState::Lost,
                    partition_aware: TaskState::Lost,
                    others: TaskState::Lost,
                    reason: Reason::AgentRemoved,
                    message: format!(
                        "Agent {hostname} removed: its machine is DOWN for maintenance"
                    ),
                };
                self.remove_agent(
                    now,
                    &agent_id,
                    "the operator brought this machine DOWN",
                    &ending,
                );
            }
            self.maintenance.down.push(machine);
        }
        self.registry_rest_changed();
        self.dirty = true;
        Ok(())
    }

    /// STOP_MAINTENANCE: the machines are UP again and leave the schedule.
    pub fn stop_maintenance(&mut self, body: Machines, field: &str) -> Result<(), ApiError> {
        validate_machines(&body.machines, field)?;
        for (i, id) in body.machines.iter().enumerate() {
            if !self.maintenance.is_scheduled(id) {
                return Err(bad(format!(
                    "{field}[{i}]: machine '{}' is not part of a maintenance schedule",
                    id.to_json_text()
                )));
            }
            if !self.maintenance.is_down(id) {
                return Err(bad(format!(
                    "{field}[{i}]: machine '{}' is not in DOWN mode and cannot be brought up",
                    id.to_json_text()
                )));
            }
        }
        let up = &body.machines;
        self.maintenance.down.retain(|m| !up.contains(m));
        for window in &mut self.maintenance.schedule.windows {
            window.machine_ids.retain(|m| !up.contains(m));
        }
        self.maintenance
            .schedule
            .windows
            .retain(|w| !w.machine_ids.is_empty());
        tracing::info!(machines = up.len(), "machines are UP after maintenance");
        self.registry_rest_changed();
        self.dirty = true;
        Ok(())
    }

    /// GET_MAINTENANCE_STATUS: the DRAINING machines with the latest answers of the
    /// frameworks to the inverse offers for their agents, and the DOWN machines.
    pub fn maintenance_status(&self) -> ClusterStatus {
        let mut status = ClusterStatus::default();
        for machine in self
            .maintenance
            .schedule
            .windows
            .iter()
            .flat_map(|w| w.machine_ids.iter())
        {
            if self.maintenance.is_down(machine) {
                status.down_machines.push(machine.clone());
                continue;
            }
            let statuses = self
                .agents
                .values()
                .filter(|a| machine_of(a) == *machine)
                .flat_map(|a| self.maintenance.inverse.answers_for(&a.id))
                .cloned()
                .collect();
            status.draining_machines.push(DrainingMachine {
                id: machine.clone(),
                statuses,
            });
        }
        status
    }

    /// The stored maintenance state a restarted master takes back.
    pub(super) fn recover_maintenance(&mut self, schedule: Schedule, down: Vec<MachineId>) {
        self.maintenance.schedule = schedule;
        self.maintenance.down = down;
    }
}
