//! Reading what the Docker engine streams back: the 8-byte-header frames of a container's
//! log stream (Docker's "stdcopy" format, which `mesos-docker-executor` demultiplexes into
//! the sandbox's `stdout` and `stderr`), the JSON progress lines of image pulls and
//! imports, and the `{"message": ..}` bodies of error answers.

use crate::ContainerError;

/// Which sandbox file a piece of container output belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// What the frame being read carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Out(Output),
    /// The engine's own error, sent in the stream after the headers were already out.
    SystemError,
}

/// The largest engine error message kept from a stream; the rest is dropped rather than
/// letting a misbehaving engine grow memory without bound.
const MAX_MESSAGE: usize = 64 * 1024;

/// Splits a container's log stream into stdout and stderr pieces.
///
/// A multiplexed stream is a sequence of frames: one byte naming the stream (0 stdin,
/// 1 stdout, 2 stderr, 3 an engine error), three zero bytes, a big-endian u32 payload
/// length, then the payload. Chunks from the socket split frames anywhere, so the
/// demuxer keeps a partial header across calls and hands out payload bytes as they come
/// instead of buffering whole frames, which may be up to 4 GiB. A container with a TTY
/// has a raw stream instead: everything it wrote, all of it on stdout.
#[derive(Debug)]
pub struct Demuxer {
    raw: bool,
    header: [u8; 8],
    header_len: usize,
    /// The frame being read and how many payload bytes of it are still to come.
    frame: Option<(Kind, u32)>,
    system_error: Vec<u8>,
}

impl Demuxer {
    /// A demuxer for a container without a TTY, whose output comes in frames.
    pub fn multiplexed() -> Demuxer {
        Demuxer {
            raw: false,
            header: [0; 8],
            header_len: 0,
            frame: None,
            system_error: Vec::new(),
        }
    }

    /// A demuxer for a container with a TTY, whose output is one raw stream.
    pub fn raw() -> Demuxer {
        Demuxer {
            raw: true,
            ..Demuxer::multiplexed()
        }
    }

    /// Appends to `out` the pieces of output in `chunk`, in stream order. Fails when a
    /// frame header names no known stream, since nothing after it can be trusted to be
    /// in step.
    pub fn push<'a>(
        &mut self,
        mut chunk: &'a [u8],
        out: &mut Vec<(Output, &'a [u8])>,
    ) -> Result<(), ContainerError> {
        if self.raw {
            if !chunk.is_empty() {
                out.push((Output::Stdout, chunk));
            }
            return Ok(());
        }
        while !chunk.is_empty() {
            match self.frame {
                None => {
                    let take = (8 - self.header_len).min(chunk.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&chunk[..take]);
                    self.header_len += take;
                    chunk = &chunk[take..];
                    if self.header_len == 8 {
                        self.header_len = 0;
                        self.start_frame()?;
                    }
                }
                Some((kind, remaining)) => {
                    let take = (remaining as usize).min(chunk.len());
                    let (payload, rest) = chunk.split_at(take);
                    chunk = rest;
                    match kind {
                        Kind::Out(output) => out.push((output, payload)),
                        Kind::SystemError => {
                            let room = MAX_MESSAGE.saturating_sub(self.system_error.len());
                            self.system_error
                                .extend_from_slice(&payload[..payload.len().min(room)]);
                        }
                    }
                    let remaining = remaining - take as u32;
                    self.frame = (remaining > 0).then_some((kind, remaining));
                }
            }
        }
        Ok(())
    }

    fn start_frame(&mut self) -> Result<(), ContainerError> {
        let kind = match self.header[0] {
            // Docker documents stdin frames as written to stdout.
            0 | 1 => Kind::Out(Output::Stdout),
            2 => Kind::Out(Output::Stderr),
            3 => Kind::SystemError,
            other => {
                return Err(ContainerError::DockerTransport(format!(
                    "log stream frame names unknown stream {other}"
                )))
            }
        };
        let len = u32::from_be_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ]);
        // A zero-length frame carries nothing; the next byte starts a new header.
        self.frame = (len > 0).then_some((kind, len));
        Ok(())
    }

    /// Called when the engine has closed the stream: fails if the stream carried an engine
    /// error, or ended inside a frame (the output before it has been handed out already).
    /// `status` is the HTTP status of the answer that carried the stream.
    pub fn finish(self, status: u16) -> Result<(), ContainerError> {
        if !self.system_error.is_empty() {
            return Err(ContainerError::Docker {
                status,
                message: String::from_utf8_lossy(&self.system_error)
                    .trim()
                    .to_string(),
            });
        }
        if self.header_len > 0 || self.frame.is_some() {
            return Err(ContainerError::DockerTransport(
                "log stream ended inside a frame".into(),
            ));
        }
        Ok(())
    }
}

/// The longest progress line accepted; real ones are a few hundred bytes.
const MAX_LINE: usize = 1024 * 1024;

/// Reads the newline-separated JSON objects that image pulls and imports stream back and
/// remembers the first error among them. The engine reports a failed pull this way, with
/// status 200, because its headers went out before the failure.
#[derive(Debug, Default)]
pub struct ProgressLines {
    partial: Vec<u8>,
    error: Option<String>,
    /// The last `status` line, which for an import is the new image's ID.
    last_status: Option<String>,
}

impl ProgressLines {
    pub fn new() -> ProgressLines {
        ProgressLines::default()
    }

    /// Takes the next chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ContainerError> {
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(newline);
            rest = &after[1..];
            if self.partial.is_empty() {
                self.line(line);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole);
            }
        }
        if self.partial.len() + rest.len() > MAX_LINE {
            return Err(ContainerError::DockerTransport(format!(
                "progress line longer than {MAX_LINE} bytes"
            )));
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    fn line(&mut self, line: &[u8]) {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(line.trim_ascii()) else {
            if !line.trim_ascii().is_empty() {
                tracing::debug!(line = %String::from_utf8_lossy(line), "docker progress line is not json");
            }
            return;
        };
        let message = value["errorDetail"]["message"]
            .as_str()
            .or_else(|| value["error"].as_str())
            .filter(|m| !m.is_empty());
        if let (Some(message), None) = (message, &self.error) {
            self.error = Some(message.to_string());
        }
        if let Some(status) = value["status"].as_str() {
            self.last_status = Some(status.to_string());
        }
    }

    /// Ends the stream: the first error it reported, if any. `status` is the HTTP status
    /// of the answer that carried the stream.
    pub fn finish(mut self, status: u16) -> Result<Option<String>, ContainerError> {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.line(&last);
        }
        match self.error {
            Some(message) => Err(ContainerError::Docker { status, message }),
            None => Ok(self.last_status),
        }
    }
}

/// The message of an engine error answer: the `message` of its JSON body, else the body
/// itself (shortened), else the status's reason phrase.
pub fn error_message(status: u16, body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(message) = value["message"].as_str() {
            return message.to_string();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no message")
            .to_lowercase();
    }
    text.chars().take(1000).collect()
}

/// The engine error for an answer with a failing status.
pub fn engine_error(status: u16, body: &[u8]) -> ContainerError {
    ContainerError::Docker {
        status,
        message: error_message(status, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![stream, 0, 0, 0];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// Feeds `stream` to a demuxer in chunks of `chunk` bytes and compares the output
    /// joined per file, and the pieces in order with neighbours of one file merged.
    fn check(raw: bool, stream: &[u8], chunk: usize, want: &[(Output, &str)]) {
        let mut demuxer = if raw {
            Demuxer::raw()
        } else {
            Demuxer::multiplexed()
        };
        let mut got: Vec<(Output, String)> = Vec::new();
        for piece in stream.chunks(chunk) {
            let mut out = Vec::new();
            demuxer.push(piece, &mut out).expect("push");
            for (output, bytes) in out {
                let text = String::from_utf8_lossy(bytes);
                match got.last_mut() {
                    Some((last, acc)) if *last == output => acc.push_str(&text),
                    _ => got.push((output, text.into_owned())),
                }
            }
        }
        demuxer.finish(200).expect("finish");
        let want: Vec<(Output, String)> = want.iter().map(|(o, s)| (*o, s.to_string())).collect();
        assert_eq!(got, want, "chunk size {chunk}");
    }

    #[test]
    fn frames_split_anywhere_demultiplex_the_same() {
        let stream = [
            frame(1, b"out one\n"),
            frame(2, b"err one\n"),
            frame(2, b""),
            frame(1, b"out two\n"),
            frame(0, b"stdin goes to stdout\n"),
            frame(2, b"err two\n"),
        ]
        .concat();
        let want = [
            (Output::Stdout, "out one\n"),
            (Output::Stderr, "err one\n"),
            (Output::Stdout, "out two\nstdin goes to stdout\n"),
            (Output::Stderr, "err two\n"),
        ];
        for chunk in [1, 2, 3, 7, 8, 9, 16, 100, stream.len()] {
            check(false, &stream, chunk, &want);
        }
    }

    #[test]
    fn edge_cases() {
        check(false, b"", 1, &[]);
        check(false, &frame(1, b""), 1, &[]);
        check(
            false,
            &[frame(2, b""), frame(2, b"x")].concat(),
            3,
            &[(Output::Stderr, "x")],
        );
        let big = "y".repeat(70_000);
        check(
            false,
            &frame(1, big.as_bytes()),
            4096,
            &[(Output::Stdout, &big)],
        );
        check(
            true,
            b"tty \r\noutput",
            3,
            &[(Output::Stdout, "tty \r\noutput")],
        );
        check(true, b"", 3, &[]);
    }

    #[test]
    fn bad_streams_fail() {
        let mut out = Vec::new();
        let mut demuxer = Demuxer::multiplexed();
        assert!(matches!(
            demuxer.push(&[9, 0, 0, 0, 0, 0, 0, 1, b'x'], &mut out),
            Err(ContainerError::DockerTransport(_))
        ));

        let mut demuxer = Demuxer::multiplexed();
        let truncated = frame(1, b"abc");
        demuxer.push(&truncated[..9], &mut out).expect("push");
        assert!(matches!(
            demuxer.finish(200),
            Err(ContainerError::DockerTransport(_))
        ));

        let mut demuxer = Demuxer::multiplexed();
        demuxer.push(&[1, 0, 0], &mut out).expect("push");
        assert!(matches!(
            demuxer.finish(200),
            Err(ContainerError::DockerTransport(_))
        ));

        let mut demuxer = Demuxer::multiplexed();
        let mut out = Vec::new();
        let stream = [frame(1, b"before\n"), frame(3, b"container gone\n")].concat();
        demuxer.push(&stream, &mut out).expect("push");
        assert_eq!(out, vec![(Output::Stdout, &b"before\n"[..])]);
        match demuxer.finish(200) {
            Err(ContainerError::Docker {
                status: 200,
                message,
            }) => {
                assert_eq!(message, "container gone")
            }
            other => panic!("expected the engine's error, got {other:?}"),
        }
    }

    fn progress(stream: &str, chunk: usize) -> Result<Option<String>, ContainerError> {
        let mut lines = ProgressLines::new();
        for piece in stream.as_bytes().chunks(chunk) {
            lines.push(piece)?;
        }
        lines.finish(200)
    }

    #[test]
    fn progress_lines() {
        let ok = "{\"status\":\"Pulling from library/busybox\",\"id\":\"latest\"}\r\n\
                  {\"status\":\"Downloading\",\"progressDetail\":{\"current\":1,\"total\":2}}\r\n\
                  {\"status\":\"Status: Downloaded newer image for busybox:latest\"}\r\n";
        let failed = "{\"status\":\"Pulling from library/nope\"}\n\
                      {\"errorDetail\":{\"message\":\"manifest unknown\"},\"error\":\"manifest unknown\"}\n";
        let import = "{\"status\":\"sha256:98d7\"}";
        let only_error = "\n\nnot json\n{\"error\":\"write /var/lib: no space\"}";
        for chunk in [1, 5, 64, 10_000] {
            assert_eq!(
                progress(ok, chunk).expect("ok"),
                Some("Status: Downloaded newer image for busybox:latest".into())
            );
            assert_eq!(
                progress(import, chunk).expect("ok"),
                Some("sha256:98d7".into())
            );
            for (stream, message) in [
                (failed, "manifest unknown"),
                (only_error, "write /var/lib: no space"),
            ] {
                match progress(stream, chunk) {
                    Err(ContainerError::Docker {
                        status: 200,
                        message: got,
                    }) => {
                        assert_eq!(got, message)
                    }
                    other => panic!("expected {message:?}, got {other:?}"),
                }
            }
        }
        assert_eq!(progress("", 1).expect("empty"), None);
    }

    #[test]
    fn overlong_progress_line_fails() {
        let mut lines = ProgressLines::new();
        let chunk = vec![b'x'; 600 * 1024];
        lines.push(&chunk).expect("first half");
        assert!(matches!(
            lines.push(&chunk),
            Err(ContainerError::DockerTransport(_))
        ));
    }

    #[test]
    fn error_bodies() {
        for (status, body, want) in [
            (
                404,
                &br#"{"message":"No such container: abc"}"#[..],
                "No such container: abc",
            ),
            (409, br#"{"message":"conflict","extra":1}"#, "conflict"),
            (500, b"plain text failure\n", "plain text failure"),
            (500, br#"{"other":"shape"}"#, r#"{"other":"shape"}"#),
            (404, b"", "not found"),
            (599, b"  ", "no message"),
        ] {
            assert_eq!(error_message(status, body), want, "body {body:?}");
        }
        let long = vec![b'z'; 5000];
        assert_eq!(error_message(500, &long).len(), 1000);
        match engine_error(404, br#"{"message":"gone"}"#) {
            ContainerError::Docker { status, message } => {
                assert_eq!((status, message.as_str()), (404, "gone"))
            }
            other => panic!("{other:?}"),
        }
    }
}
