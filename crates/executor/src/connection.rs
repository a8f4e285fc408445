//! The executor's link to the agent: subscribes, forwards the events of the stream, and
//! when the stream closes resubscribes with backoff, as a checkpointing Mesos executor
//! does (reference §2, "Disconnect"). The SDK client carries the unacknowledged updates
//! and tasks into every SUBSCRIBE.

use crate::settings::Settings;
use crate::timing::subscribe_backoff;
use mantle_api::executor::Event;
use mantle_sdk::executor::Executor;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// What the link reports to the driver.
#[derive(Debug)]
pub enum Feed {
    Event(Event),
    /// The event stream closed or broke.
    Disconnected,
    /// No (re)subscription succeeded in time; the link has stopped.
    GaveUp,
}

/// Runs until the driver hangs up, the stream closes without checkpointing, or the
/// agent stays unreachable for longer than allowed.
pub async fn run(executor: Executor, settings: Settings, feed: UnboundedSender<Feed>) {
    let checkpoint = executor.env().checkpoint;
    let mut limit = settings.registration_timeout;
    let mut since = Instant::now();
    let mut attempt: u32 = 0;
    loop {
        match executor.subscribe().await {
            Ok(mut events) => {
                tracing::info!(attempt, "subscribed to the agent");
                attempt = 0;
                loop {
                    match events.next().await {
                        Ok(Some(event)) => {
                            if feed.send(Feed::Event(event)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {
                            tracing::warn!("the agent closed the event stream");
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "the event stream broke");
                            break;
                        }
                    }
                }
                if feed.send(Feed::Disconnected).is_err() || !checkpoint {
                    return;
                }
                limit = settings.recovery_timeout;
                since = Instant::now();
            }
            Err(err) => tracing::warn!(error = %err, attempt, "subscribing to the agent failed"),
        }
        if since.elapsed() >= limit {
            tracing::error!(
                limit_secs = limit.as_secs_f64(),
                "giving up on reaching the agent"
            );
            let _ = feed.send(Feed::GaveUp);
            return;
        }
        tokio::time::sleep(subscribe_backoff(
            attempt,
            settings.subscription_backoff_max,
        ))
        .await;
        attempt = attempt.saturating_add(1);
    }
}
