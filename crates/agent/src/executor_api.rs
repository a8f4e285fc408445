//! `POST /api/v1/executor` (reference §2): request checks in the Mesos order (405, 400
//! for a missing Content-Type, 415, 406, 413 for oversized bodies, 400 for invalid
//! calls), then SUBSCRIBE answered with a chunked RecordIO event stream, and UPDATE,
//! MESSAGE and HEARTBEAT answered 202 as soon as the event loop has taken them.

use crate::core::{Input, StreamId};
use crate::event_loop::Command;
use crate::http::{accepted, error_response, post_only, AppState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use mantle_api::error::ApiError;
use mantle_api::executor::{Call, CallBody};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

/// Request bodies larger than this are refused.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

pub(crate) async fn handle(State(app): State<AppState>, request: Request) -> Response {
    match handle_call(app, request).await {
        Ok(response) => response,
        Err(err) => error_response(err.status(), err.message),
    }
}

async fn handle_call(app: AppState, request: Request) -> Result<Response, ApiError> {
    if let Some(refusal) = post_only(request.method()) {
        return Ok(refusal);
    }
    check_content_type(request.headers().get(header::CONTENT_TYPE))?;
    check_accept(request.headers().get(header::ACCEPT))?;
    let body = read_body(request.into_body()).await?;
    let call: Call = mantle_api::json::decode(&body)?;
    let framework_id = call.framework_id.clone();
    let executor_id = call.executor_id.clone();
    match call.into_body()? {
        CallBody::Subscribe(subscribe) => {
            let stream = app.next_stream.fetch_add(1, Ordering::Relaxed);
            let (sender, receiver) = mpsc::unbounded_channel();
            let input = Input::Subscribe {
                framework_id,
                executor_id,
                subscribe,
                stream,
            };
            let (reply, answer) = oneshot::channel();
            send(
                &app,
                Command::Subscribe {
                    input: Box::new(input),
                    stream,
                    sender,
                    reply,
                },
            )?;
            wait(answer).await?;
            let body = EventStream {
                receiver,
                stream,
                commands: app.commands.clone(),
            };
            let mut response = Response::new(Body::from_stream(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        CallBody::Update(status) => {
            call_loop(
                &app,
                Input::Update {
                    framework_id,
                    executor_id,
                    status,
                },
            )
            .await?;
            Ok(accepted())
        }
        CallBody::Message(message) => {
            call_loop(
                &app,
                Input::Message {
                    framework_id,
                    executor_id,
                    data: message.data,
                },
            )
            .await?;
            Ok(accepted())
        }
        CallBody::Heartbeat => {
            call_loop(
                &app,
                Input::Heartbeat {
                    framework_id,
                    executor_id,
                },
            )
            .await?;
            Ok(accepted())
        }
    }
}

pub(crate) fn check_content_type(value: Option<&HeaderValue>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Err(ApiError::bad_request(
            "expecting 'Content-Type' to be present",
        ));
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => Ok(()),
        "application/x-protobuf" => Err(ApiError::new(
            mantle_api::ErrorKind::UnsupportedMediaType,
            "'Content-Type' application/x-protobuf is not supported yet; send application/json",
        )),
        other => Err(ApiError::new(
            mantle_api::ErrorKind::UnsupportedMediaType,
            format!("expecting 'Content-Type' of application/json or application/x-protobuf, received '{other}'"),
        )),
    }
}

/// JSON is the only encoding Mantle answers in: any `Accept` that rules it out is a 406.
pub(crate) fn check_accept(value: Option<&HeaderValue>) -> Result<(), ApiError> {
    let Some(value) = value else { return Ok(()) };
    let text = value.to_str().unwrap_or("");
    let acceptable = text.split(',').any(|item| {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| matches!(p.trim().strip_prefix("q="), Some(q) if q.trim().parse::<f64>().is_ok_and(|q| q <= 0.0)));
        !refused && matches!(media.as_str(), "application/json" | "application/*" | "*/*")
    });
    if acceptable {
        Ok(())
    } else {
        Err(ApiError::new(
            mantle_api::ErrorKind::NotAcceptable,
            format!("expecting 'Accept' to allow application/json, received '{text}'"),
        ))
    }
}

pub(crate) async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    mantle_api::body::read_limited(body, MAX_BODY_BYTES).await
}

fn send(app: &AppState, command: Command) -> Result<(), ApiError> {
    app.commands
        .send(command)
        .map_err(|_| ApiError::unavailable("the agent is shutting down"))
}

async fn wait(answer: oneshot::Receiver<Result<(), ApiError>>) -> Result<(), ApiError> {
    answer
        .await
        .map_err(|_| ApiError::unavailable("the agent is shutting down"))?
}

async fn call_loop(app: &AppState, input: Input) -> Result<(), ApiError> {
    let (reply, answer) = oneshot::channel();
    send(
        app,
        Command::Input {
            input: Box::new(input),
            reply: Some(reply),
        },
    )?;
    wait(answer).await
}

/// The body of a SUBSCRIBE answer: RecordIO records the event loop sends. When the
/// executor goes away the body is dropped, and the loop hears of it.
struct EventStream {
    receiver: mpsc::UnboundedReceiver<Bytes>,
    stream: StreamId,
    commands: mpsc::UnboundedSender<Command>,
}

impl futures_util::Stream for EventStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx).map(|record| record.map(Ok))
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let input = Input::StreamClosed {
            stream: self.stream,
        };
        let _ = self.commands.send(Command::input(input));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn content_types() {
        let check = |value: Option<&str>, status: Option<u16>| {
            let got = check_content_type(value.map(header).as_ref())
                .err()
                .map(|e| e.status().as_u16());
            assert_eq!(got, status, "{value:?}");
        };
        check(Some("application/json"), None);
        check(Some("application/json; charset=utf-8"), None);
        check(None, Some(400));
        check(Some("text/plain"), Some(415));
        check(Some("application/x-protobuf"), Some(415));
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused() {
        let err = read_body(Body::from(vec![b' '; MAX_BODY_BYTES + 1]))
            .await
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            err.message,
            "request body exceeds the limit of 16777216 bytes"
        );
        assert_eq!(
            read_body(Body::from("{}")).await.unwrap(),
            Bytes::from("{}")
        );
    }

    #[test]
    fn accept() {
        let check = |value: Option<&str>, ok: bool| {
            assert_eq!(
                check_accept(value.map(header).as_ref()).is_ok(),
                ok,
                "{value:?}"
            );
        };
        check(None, true);
        check(Some("*/*"), true);
        check(Some("application/json"), true);
        check(Some("application/x-protobuf, application/json;q=0.5"), true);
        check(Some("application/x-protobuf"), false);
        check(Some("application/json;q=0"), false);
    }
}
