//! The CLI's HTTP side: finds the leading master (a `host:port` or a `zk://` URL),
//! follows a standby's 307 to the leader, reads the legacy JSON endpoints of masters and
//! agents and sends operator calls (`POST /api/v1`, reference §3).

use anyhow::{anyhow, bail, Context};
use mantle_sdk::detect::MasterSource;
use mantle_sdk::http::Response;
use mantle_sdk::{ClientError, HttpClient};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

/// How many 307 hops one request follows (two standbys pointing at each other end here).
const MAX_REDIRECTS: usize = 8;

/// How long a `zk://` master may take to name a leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// The time limit of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection to the leading master.
pub struct Master {
    http: HttpClient,
    /// What the user named (`--master`), for messages.
    named: String,
    /// The master that answered last: the leader once a redirect was followed.
    leader: Mutex<String>,
}

impl Master {
    /// Resolves `--master`: a `zk://` URL waits for the election to name a leader.
    pub async fn connect(master: &str) -> anyhow::Result<Master> {
        let source = MasterSource::parse(master).map_err(|e| anyhow!("--master: {e}"))?;
        let address = match source {
            MasterSource::Fixed(address) => mantle_sdk::scheduler::normalize_master(&address)
                .map_err(|e| anyhow!("--master: {e}"))?,
            mut zk => zk
                .wait(LEADER_WAIT)
                .await
                .ok_or_else(|| anyhow!("no leading master is known at {master}"))?,
        };
        Ok(Master {
            http: HttpClient::new(REQUEST_TIMEOUT),
            named: master.to_string(),
            leader: Mutex::new(address),
        })
    }

    /// The `host:port` of the master that answered last.
    pub fn address(&self) -> String {
        self.leader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_address(&self, address: String) {
        *self
            .leader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = address;
    }

    /// Sends a GET (no body) or a JSON POST to `path`, following redirects to the
    /// leader; remembers the master that answered.
    async fn follow(&self, path: &str, post: Option<&[u8]>) -> anyhow::Result<Response> {
        let mut address = self.address();
        for _ in 0..=MAX_REDIRECTS {
            let url = format!("http://{address}{path}");
            let answer = match post {
                None => self.http.get(&url).await,
                Some(body) => self.http.post(&url, body.to_vec(), &[]).await,
            };
            match answer {
                Ok(response) => {
                    self.set_address(address);
                    return Ok(response);
                }
                Err(error) => match error.redirect_target() {
                    Some(target) if !target.is_empty() => address = target,
                    _ => return Err(self.explain(&address, error)),
                },
            }
        }
        Err(anyhow!(
            "master {}: more than {MAX_REDIRECTS} redirects looking for the leader",
            self.named
        ))
    }

    /// Turns a client error into a message that names the master.
    fn explain(&self, address: &str, error: ClientError) -> anyhow::Error {
        let via = if address == self.named {
            String::new()
        } else {
            format!(" (from --master {})", self.named)
        };
        match error {
            ClientError::Connect { source, .. } => {
                anyhow!(
                    "master {address}{via} is unreachable: {}",
                    error_chain(&source)
                )
            }
            ClientError::Timeout { .. } => {
                anyhow!("master {address}{via} did not answer within {REQUEST_TIMEOUT:?}")
            }
            ClientError::Status { status, body, .. } => {
                anyhow!("master {address}{via} answered {status}: {}", body.trim())
            }
            other => anyhow!("master {address}{via}: {other}"),
        }
    }

    /// GETs a JSON document from the leading master.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.follow(path, None).await?;
        serde_json::from_slice(&response.body)
            .with_context(|| format!("master {}: {path} is not JSON", self.address()))
    }

    /// The leading master's `/master/state`.
    pub async fn state(&self) -> anyhow::Result<Value> {
        self.get_json("/master/state").await
    }

    /// POSTs an operator call to `/api/v1`; any 2xx is success.
    pub async fn operator_call(&self, call: &Value) -> anyhow::Result<Response> {
        self.follow("/api/v1", Some(call.to_string().as_bytes()))
            .await
    }

    /// GETs a JSON document from an agent (`host:port`), naming the agent on failure.
    pub async fn agent_json(&self, agent: &str, path: &str) -> anyhow::Result<Value> {
        self.agent_json_if_found(agent, path)
            .await?
            .ok_or_else(|| anyhow!("agent {agent} answered 404 Not Found to {path}"))
    }

    /// Like [`Master::agent_json`], with `None` for a 404 (a file not written yet).
    pub async fn agent_json_if_found(
        &self,
        agent: &str,
        path: &str,
    ) -> anyhow::Result<Option<Value>> {
        let url = format!("http://{agent}{path}");
        let response = match self.http.get(&url).await {
            Ok(response) => response,
            Err(ClientError::Status { status, .. }) if status.as_u16() == 404 => return Ok(None),
            Err(ClientError::Connect { source, .. }) => {
                bail!("agent {agent} is unreachable: {}", error_chain(&source))
            }
            Err(ClientError::Status { status, body, .. }) => {
                bail!("agent {agent} answered {status} to {path}: {}", body.trim())
            }
            Err(other) => bail!("agent {agent}: {other}"),
        };
        serde_json::from_slice(&response.body)
            .map(Some)
            .with_context(|| format!("agent {agent}: {path} is not JSON"))
    }
}

/// An error and its causes on one line ("client error (Connect): connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The `host:port` an agent serves HTTP on, from its libprocess pid
/// (`slave(1)@10.0.0.1:5051`), as Mesos tools find it.
pub fn agent_address(agent: &Value) -> Option<String> {
    let pid = agent["pid"].as_str()?;
    let (_, address) = pid.split_once('@')?;
    (!address.is_empty()).then(|| address.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_address_comes_from_the_pid() {
        let check = |agent: Value, expected: Option<&str>| {
            assert_eq!(agent_address(&agent).as_deref(), expected, "{agent}");
        };
        check(
            json!({"pid": "slave(1)@127.0.0.1:5051"}),
            Some("127.0.0.1:5051"),
        );
        check(json!({"pid": "slave(1)@"}), None);
        check(json!({"pid": 5}), None);
        check(json!({}), None);
    }
}
