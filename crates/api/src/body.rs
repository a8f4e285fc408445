//! Reading a request body up to a limit, for the master's and the agent's HTTP APIs.

use crate::error::{ApiError, ErrorKind};
use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use std::time::Duration;

/// How much of an oversized body is still read (and dropped) before the 413 goes out, as
/// a multiple of the limit, and for how long at most. Answering while the client is
/// still sending makes the server close the connection under it, and the client then
/// sees a reset instead of the answer; reading a bounded rest lets a moderately
/// oversized request get its 413.
const DRAIN_FACTOR: usize = 4;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The whole body if it is at most `limit` bytes; else 413 (PayloadTooLarge), and a body
/// that cannot be read is 400.
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let unreadable =
        |err: B::Error| ApiError::bad_request(format!("cannot read the request body: {err}"));
    // Sized once from Content-Length: growing by doubling copies a large body several
    // times, into fresh memory each time.
    let hint = usize::try_from(body.size_hint().lower()).unwrap_or(0);
    let mut kept = Vec::with_capacity(hint.min(limit));
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        // Trailers carry no data.
        let Ok(chunk) = frame.map_err(unreadable)?.into_data() else {
            continue;
        };
        if kept.len() + chunk.len() > limit {
            let mut seen = kept.len() + chunk.len();
            let _ = tokio::time::timeout(DRAIN_TIME, async {
                while let Some(Ok(frame)) = body.frame().await {
                    seen += frame.data_ref().map_or(0, Bytes::len);
                    if seen > DRAIN_FACTOR * limit {
                        break;
                    }
                }
            })
            .await;
            return Err(ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("request body exceeds the limit of {limit} bytes"),
            ));
        }
        kept.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_one_at_it_is_read() {
        let err = read_limited(Full::new(Bytes::from(vec![b' '; 11])), 10)
            .await
            .unwrap_err();
        assert_eq!(err.status().as_u16(), 413);
        assert_eq!(err.message, "request body exceeds the limit of 10 bytes");
        let body = read_limited(Full::new(Bytes::from(vec![b' '; 10])), 10)
            .await
            .unwrap();
        assert_eq!(body.len(), 10);
    }
}
