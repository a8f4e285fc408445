//! A real agent's connection after its REGISTER asked for [`AGENT_UPGRADE`]: the master
//! answers 101 and the socket then carries RecordIO both ways, the master's messages to
//! the agent and the agent's calls (each record one call or a JSON array of calls, as
//! in a POST). hyper's HTTP/1.1 connection, with its 16 KB of buffers, is gone once the
//! socket is handed over; what stays per agent is the socket, this task, and a read
//! buffer only while a call is arriving.
//!
//! [`AGENT_UPGRADE`]: mantle_api::internal::AGENT_UPGRADE

use crate::event_loop::{Command, EventStream};
use crate::http::{decode_agent_calls, MAX_BODY_BYTES};
use crate::leadership::RoleHandle;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use mantle_api::recordio::Decoder;
use tokio::io::AsyncWriteExt;

/// Serves the agent's socket until either side closes it: the loop's records are
/// written as they come, and the agent's calls go to the loop in order. The stream's
/// guard tells the loop when this ends.
pub async fn serve(upgrade: OnUpgrade, mut stream: EventStream, handle: RoleHandle) {
    let mut socket = match upgrade.await {
        Ok(upgraded) => TokioIo::new(upgraded),
        Err(err) => {
            tracing::debug!(stream = %stream.id, error = %err, "the agent's connection was not handed over");
            return;
        }
    };
    let mut calls = Decoder::new(MAX_BODY_BYTES as u64);
    loop {
        tokio::select! {
            chunk = stream.records.next_chunk() => {
                let Some(chunk) = chunk else {
                    // The loop closed the stream: the agent sees the connection end.
                    let _ = socket.shutdown().await;
                    return;
                };
                if let Err(err) = socket.write_all(&chunk).await {
                    tracing::debug!(stream = %stream.id, error = %err, "writing to the agent failed");
                    return;
                }
            }
            read = calls.read_from(&mut socket) => {
                match read {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::debug!(stream = %stream.id, error = %err, "reading from the agent failed");
                        return;
                    }
                }
                loop {
                    match calls.next_record() {
                        Ok(Some(record)) => dispatch(&handle, &stream, &record).await,
                        Ok(None) => break,
                        Err(err) => {
                            tracing::warn!(stream = %stream.id, error = %err, "closing an agent's connection that sent an invalid record");
                            return;
                        }
                    }
                }
                if calls.buffered() == 0 {
                    // Most agents send a call every 15 s: an idle one holds no buffer.
                    calls = Decoder::new(MAX_BODY_BYTES as u64);
                }
            }
        }
    }
}

/// Hands one record's calls to the loop and waits until it took them, so that the
/// next record's calls come after them.
async fn dispatch(handle: &RoleHandle, stream: &EventStream, record: &[u8]) {
    let calls = match decode_agent_calls(record) {
        Ok(calls) => calls,
        Err(err) => {
            tracing::warn!(stream = %stream.id, error = %err.message, "ignoring an agent call that cannot be read");
            return;
        }
    };
    let stream_id = stream.id.to_string();
    let taken = handle
        .request(|reply| Command::AgentCalls {
            stream_id,
            calls,
            reply,
        })
        .await;
    if let Err(err) = taken {
        tracing::debug!(stream = %stream.id, error = %err.message, "the master did not take an agent's calls");
    }
}
