//! The client against a fake engine on a unix socket in a temp directory: the exchanges a
//! real engine rarely produces on demand (an older API version, error bodies, errors in
//! the middle of a stream, frames split across HTTP chunks).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::{ContainerSpec, Docker};
use crate::ContainerError;

/// A request the fake engine saw: its request line and body.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    body: Vec<u8>,
}

type Answer = Arc<dyn Fn(&Seen) -> Vec<Vec<u8>> + Send + Sync>;

/// Starts a fake engine that answers each request with the pieces `answer` returns,
/// written one by one with a pause between them so that the client reads them as
/// separate chunks. `GET /version` says the engine speaks `api_version`.
struct Fake {
    _dir: tempfile::TempDir,
    docker: Docker,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn fake(
    api_version: &'static str,
    answer: impl Fn(&Seen) -> Vec<Vec<u8>> + Send + Sync + 'static,
) -> Fake {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&path).expect("bind fake engine");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answer: Answer = Arc::new(answer);
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            let recorded = recorded.clone();
            tokio::spawn(async move { serve(stream, api_version, answer, recorded).await });
        }
    });
    Fake {
        _dir: dir,
        docker: Docker::new(path),
        seen,
    }
}

async fn serve(
    mut stream: UnixStream,
    api_version: &str,
    answer: Answer,
    recorded: Arc<Mutex<Vec<Seen>>>,
) {
    let Some(seen) = read_request(&mut stream).await else {
        return;
    };
    let pieces = if seen.line.starts_with("GET /version ") {
        vec![json_answer(
            200,
            &format!(r#"{{"ApiVersion":"{api_version}","Version":"fake"}}"#),
        )]
    } else {
        recorded.lock().expect("lock").push(seen.clone());
        answer(&seen)
    };
    for piece in pieces {
        if stream.write_all(&piece).await.is_err() {
            return;
        }
        let _ = stream.flush().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stream.shutdown().await;
}

/// Reads one request: the head, then a body by Content-Length or chunked encoding.
async fn read_request(stream: &mut UnixStream) -> Option<Seen> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
    let line = String::from_utf8_lossy(&data[..head_end])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &data[head_end..];
        let done = match length {
            Some(length) => body.len() >= length,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => true,
        };
        if done {
            break;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some(Seen {
        line,
        body: data[head_end..].to_vec(),
    })
}

fn json_answer(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn empty_answer(status: u16) -> Vec<u8> {
    format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

/// The head of a chunked answer; each later piece is one HTTP chunk from [`chunk`].
fn chunked_head(content_type: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n")
        .into_bytes()
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![stream, 0, 0, 0];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn lines(fake: &Fake) -> Vec<String> {
    fake.seen
        .lock()
        .expect("lock")
        .iter()
        .map(|s| s.line.clone())
        .collect()
}

#[tokio::test]
async fn an_older_engine_is_spoken_to_in_its_version() {
    let fake = fake("1.40", |_| vec![empty_answer(204)]);
    fake.docker.start("mesos-a").await.expect("start");
    fake.docker.kill("mesos-a", "SIGTERM").await.expect("kill");
    assert_eq!(
        lines(&fake),
        [
            "POST /v1.40/containers/mesos-a/start HTTP/1.1",
            "POST /v1.40/containers/mesos-a/kill?signal=SIGTERM HTTP/1.1",
        ]
    );
    let ancient = self::fake("1.25", |_| vec![json_answer(200, r#"{"StatusCode":3}"#)]);
    assert_eq!(ancient.docker.wait("mesos-c").await.expect("wait"), 3);
    assert_eq!(
        lines(&ancient),
        ["POST /v1.25/containers/mesos-c/wait?condition=not-running HTTP/1.1"]
    );
    let newer = self::fake("1.45", |_| vec![empty_answer(204)]);
    newer.docker.remove("mesos-b", true).await.expect("remove");
    assert_eq!(
        lines(&newer),
        ["DELETE /v1.41/containers/mesos-b?force=true&v=true HTTP/1.1"]
    );
}

#[tokio::test]
async fn engine_errors_carry_the_message() {
    let fake = fake("1.41", |seen| {
        let answer = if seen.line.contains("/start") {
            json_answer(
                500,
                r#"{"message":"oci runtime error: exec: \"nope\": not found"}"#,
            )
        } else if seen.line.contains("/stop") {
            empty_answer(304)
        } else if seen.line.contains("/json") || seen.line.starts_with("DELETE") {
            json_answer(404, r#"{"message":"No such container: mesos-x"}"#)
        } else if seen.line.contains("/kill") {
            json_answer(409, r#"{"message":"Container mesos-x is not running"}"#)
        } else {
            json_answer(500, "")
        };
        vec![answer]
    });
    let docker = &fake.docker;
    match docker.start("mesos-x").await {
        Err(ContainerError::Docker {
            status: 500,
            message,
        }) => {
            assert_eq!(message, "oci runtime error: exec: \"nope\": not found")
        }
        other => panic!("start: {other:?}"),
    }
    docker
        .stop("mesos-x", Duration::from_millis(1500))
        .await
        .expect("304 counts as stopped");
    assert_eq!(docker.inspect("mesos-x").await.expect("inspect"), None);
    docker
        .remove("mesos-x", false)
        .await
        .expect("404 counts as removed");
    match docker.kill("mesos-x", "KILL").await {
        Err(ContainerError::Docker {
            status: 409,
            message,
        }) => {
            assert_eq!(message, "Container mesos-x is not running")
        }
        other => panic!("kill: {other:?}"),
    }
    match docker.wait("mesos-x").await {
        Err(ContainerError::Docker {
            status: 500,
            message,
        }) => {
            assert_eq!(message, "internal server error")
        }
        other => panic!("wait: {other:?}"),
    }
    // The grace is rounded up to whole seconds, as `docker stop -t` counts them.
    assert!(lines(&fake).contains(&"POST /v1.41/containers/mesos-x/stop?t=2 HTTP/1.1".to_string()));
}

#[tokio::test]
async fn create_sends_the_body_and_returns_the_id() {
    let fake = fake("1.41", |_| {
        vec![json_answer(
            201,
            r#"{"Id":"c0ffee","Warnings":["swap limit"]}"#,
        )]
    });
    let mut spec = ContainerSpec::new("busybox");
    spec.command = Some(vec!["true".into()]);
    let id = fake.docker.create("mesos-1", &spec).await.expect("create");
    assert_eq!(id, "c0ffee");
    let seen = fake.seen.lock().expect("lock")[0].clone();
    assert_eq!(
        seen.line,
        "POST /v1.41/containers/create?name=mesos-1 HTTP/1.1"
    );
    let body: serde_json::Value = serde_json::from_slice(&seen.body).expect("json body");
    assert_eq!(body, super::create_body(&spec).expect("body"));

    // A spec the engine could not use never reaches it.
    spec.port_mappings.push(super::PortMapping {
        host_port: 1,
        container_port: 2,
        protocol: "tcp".into(),
    });
    assert!(matches!(
        fake.docker.create("mesos-2", &spec).await,
        Err(ContainerError::Invalid { ref field, .. }) if field == "port_mappings"
    ));
    assert_eq!(fake.seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn logs_split_across_chunks_reach_the_right_files() {
    let fake = fake("1.41", |seen| {
        if seen.line.contains("/json") {
            return vec![json_answer(200, r#"{"Id":"abc","Config":{"Tty":false}}"#)];
        }
        let stream = [
            frame(1, b"out 1\n"),
            frame(2, b"err 1\n"),
            frame(2, b""),
            frame(1, b"out 2\n"),
        ]
        .concat();
        let mut pieces = vec![chunked_head("application/vnd.docker.raw-stream")];
        // Cut the stream at awkward places: inside a header, inside a payload.
        for part in [&stream[..3], &stream[3..11], &stream[11..20], &stream[20..]] {
            pieces.push(chunk(part));
        }
        pieces.push(b"0\r\n\r\n".to_vec());
        pieces
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    std::fs::write(&stdout, "earlier\n").expect("write");
    fake.docker
        .stream_logs("abc", &stdout, &stderr)
        .await
        .expect("logs");
    assert_eq!(
        std::fs::read_to_string(&stdout).expect("stdout"),
        "earlier\nout 1\nout 2\n"
    );
    assert_eq!(std::fs::read_to_string(&stderr).expect("stderr"), "err 1\n");
    assert_eq!(
        lines(&fake)[1],
        "GET /v1.41/containers/abc/logs?follow=1&stdout=1&stderr=1 HTTP/1.1"
    );
}

#[tokio::test]
async fn tty_logs_go_to_stdout_raw() {
    let fake = fake("1.41", |seen| {
        if seen.line.contains("/json") {
            return vec![json_answer(200, r#"{"Id":"abc","Config":{"Tty":true}}"#)];
        }
        vec![
            chunked_head("application/vnd.docker.raw-stream"),
            chunk(b"\x01\x00raw"),
            chunk(b" bytes\r\n"),
            b"0\r\n\r\n".to_vec(),
        ]
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    fake.docker
        .stream_logs("abc", &stdout, &stderr)
        .await
        .expect("logs");
    assert_eq!(
        std::fs::read(&stdout).expect("stdout"),
        b"\x01\x00raw bytes\r\n"
    );
    assert_eq!(std::fs::read(&stderr).expect("stderr"), b"");
}

#[tokio::test]
async fn pull_and_wait_read_their_streams() {
    let fake = fake("1.41", |seen| {
        if seen.line.contains("fromImage=bad") {
            vec![
                chunked_head("application/json"),
                chunk(b"{\"status\":\"Pulling from library/bad\"}\r\n"),
                chunk(b"{\"errorDetail\":{\"message\":\"manifest for bad:1 not found\"},\"error\":\"manifest for bad:1 not found\"}\r\n"),
                b"0\r\n\r\n".to_vec(),
            ]
        } else if seen.line.contains("fromImage") {
            vec![
                chunked_head("application/json"),
                chunk(b"{\"status\":\"Pulling from library/ok\"}\r\n{\"status\":\"Downlo"),
                chunk(b"aded\"}\r\n"),
                b"0\r\n\r\n".to_vec(),
            ]
        } else if seen.line.contains("/wait") {
            vec![
                chunked_head("application/json"),
                chunk(br#"{"Error":null,"StatusCode":137}"#),
                b"0\r\n\r\n".to_vec(),
            ]
        } else {
            vec![json_answer(
                404,
                r#"{"message":"pull access denied for nope"}"#,
            )]
        }
    });
    let docker = &fake.docker;
    docker.pull("registry:5000/ok").await.expect("pull ok");
    match docker.pull("bad:1").await {
        Err(ContainerError::Docker {
            status: 200,
            message,
        }) => {
            assert_eq!(message, "manifest for bad:1 not found")
        }
        other => panic!("pull bad: {other:?}"),
    }
    assert_eq!(docker.wait("mesos-1").await.expect("wait"), 137);
    assert_eq!(
        lines(&fake)[..3],
        [
            "POST /v1.41/images/create?fromImage=registry%3A5000%2Fok&tag=latest HTTP/1.1",
            "POST /v1.41/images/create?fromImage=bad&tag=1 HTTP/1.1",
            "POST /v1.41/containers/mesos-1/wait?condition=not-running HTTP/1.1",
        ]
    );
}

#[tokio::test]
async fn import_streams_the_tarball() {
    let fake = fake("1.41", |_| {
        vec![
            chunked_head("application/json"),
            chunk(b"{\"status\":\"sha256:1234\"}\r\n"),
            b"0\r\n\r\n".to_vec(),
        ]
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let tarball = dir.path().join("root.tar");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&tarball, &content).expect("write");
    fake.docker
        .import(&tarball, "mantle-test/x", "v1")
        .await
        .expect("import");
    let seen = fake.seen.lock().expect("lock")[0].clone();
    assert_eq!(
        seen.line,
        "POST /v1.41/images/create?fromSrc=-&repo=mantle-test%2Fx&tag=v1 HTTP/1.1"
    );
    assert_eq!(dechunk(&seen.body), content);

    match fake
        .docker
        .import(&dir.path().join("missing.tar"), "x", "y")
        .await
    {
        Err(ContainerError::Io { what, .. }) => assert_eq!(what, "open image tarball"),
        other => panic!("import of a missing file: {other:?}"),
    }
    assert!(matches!(
        fake.docker.import(&tarball, "x", "a:b").await,
        Err(ContainerError::Invalid { ref field, .. }) if field == "tag"
    ));
}

/// Undoes HTTP chunked encoding.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).expect("size"), 16)
            .expect("hex");
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

#[tokio::test]
async fn garbage_answers_are_transport_errors() {
    let fake = fake("1.41", |seen| {
        if seen.line.contains("/stats") {
            vec![json_answer(200, "not json")]
        } else {
            vec![b"this is not http\r\n\r\n".to_vec()]
        }
    });
    assert!(matches!(
        fake.docker.stats("mesos-1").await,
        Err(ContainerError::DockerTransport(_))
    ));
    assert!(matches!(
        fake.docker.inspect("mesos-1").await,
        Err(ContainerError::DockerTransport(_))
    ));
}
