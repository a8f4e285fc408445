//! The agent's `/files/*` endpoints (reference §4, Mesos's files process): `browse`,
//! `read`, `download` and `debug`, and the file access behind the operator calls
//! LIST_FILES and READ_FILE. Only attached directories are served: each executor run's
//! sandbox under its real path, and the newest run of each executor also under
//! `/frameworks/<fid>/executors/<eid>/runs/latest` and the `runs/latest` link, as Mesos
//! attaches them. A path with `..`, one outside every attachment, or one that a symlink
//! leads out of its sandbox is refused with 403.

use crate::http::{current_view, error_response, json_response, shutting_down, AppState};
use crate::view::View;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Reads are capped at 16 pages, as in Mesos.
pub(crate) const MAX_READ_LENGTH: u64 = 16 * 4096;

/// Why a file request is refused.
#[derive(Debug, PartialEq)]
pub(crate) enum FilesError {
    BadRequest(String),
    Forbidden(String),
    NotFound(String),
    Internal(String),
}

impl FilesError {
    pub fn status(&self) -> StatusCode {
        match self {
            FilesError::BadRequest(_) => StatusCode::BAD_REQUEST,
            FilesError::Forbidden(_) => StatusCode::FORBIDDEN,
            FilesError::NotFound(_) => StatusCode::NOT_FOUND,
            FilesError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            FilesError::BadRequest(m)
            | FilesError::Forbidden(m)
            | FilesError::NotFound(m)
            | FilesError::Internal(m) => m,
        }
    }

    fn response(&self) -> Response {
        error_response(self.status(), self.message())
    }
}

/// Virtual paths and the real directories they stand for.
#[derive(Debug, Default)]
pub(crate) struct Attachments {
    paths: BTreeMap<String, PathBuf>,
    /// Paths under these prefixes name sandboxes: one that is not attached (an unknown
    /// or forgotten executor) is not found rather than forbidden.
    sandbox_prefixes: Vec<String>,
}

impl Attachments {
    pub fn of(view: &View) -> Attachments {
        let mut paths = BTreeMap::new();
        for sandbox in view.sandboxes() {
            let real = sandbox.directory.clone();
            paths.insert(path_text(&real), real.clone());
            if sandbox.latest {
                let virtual_path = format!(
                    "/frameworks/{}/executors/{}/runs/latest",
                    sandbox.framework_id, sandbox.executor_id
                );
                paths.insert(virtual_path, real.clone());
                if let Some(runs) = real.parent() {
                    paths.insert(path_text(&runs.join("latest")), real.clone());
                }
            }
        }
        let slaves = crate::sandbox::slaves_dir(&view.config.work_dir);
        Attachments {
            paths,
            sandbox_prefixes: vec![
                "/frameworks/".to_string(),
                format!("{}/", path_text(&slaves)),
            ],
        }
    }

    /// The map `/files/debug` shows.
    pub fn debug_json(&self) -> Value {
        let map: Map<String, Value> = self
            .paths
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(path_text(v))))
            .collect();
        Value::Object(map)
    }

    /// The real path behind `path`, canonical and inside its attachment.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, FilesError> {
        if path.is_empty() {
            return Err(FilesError::BadRequest(
                "expecting 'path=value' in query".into(),
            ));
        }
        if path.contains('\0') {
            return Err(FilesError::BadRequest("'path' holds a NUL byte".into()));
        }
        let tokens: Vec<&str> = path.split('/').filter(|t| !t.is_empty()).collect();
        if tokens.iter().any(|t| *t == ".." || *t == ".") {
            return Err(FilesError::Forbidden(format!(
                "'path' '{path}' may not hold '.' or '..' components"
            )));
        }
        // The longest attached prefix wins, as in Mesos.
        for cut in (1..=tokens.len()).rev() {
            let prefix = format!("/{}", tokens[..cut].join("/"));
            let Some(root) = self.paths.get(&prefix) else {
                continue;
            };
            let root = match fs::canonicalize(root) {
                Ok(root) => root,
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    return Err(FilesError::NotFound(format!(
                        "'path' '{path}': the sandbox is gone"
                    )))
                }
                Err(err) => return Err(FilesError::Internal(format!("'path' '{path}': {err}"))),
            };
            let joined = tokens[cut..]
                .iter()
                .fold(root.clone(), |path, token| path.join(token));
            let real = match fs::canonicalize(&joined) {
                Ok(real) => real,
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    return Err(FilesError::NotFound(format!(
                        "'path' '{path}' does not exist"
                    )))
                }
                Err(err) => return Err(FilesError::Forbidden(format!("'path' '{path}': {err}"))),
            };
            if !real.starts_with(&root) {
                return Err(FilesError::Forbidden(format!(
                    "'path' '{path}' leads outside its sandbox"
                )));
            }
            return Ok(real);
        }
        let normalized = format!("/{}", tokens.join("/"));
        let sandbox_like = self
            .sandbox_prefixes
            .iter()
            .any(|p| format!("{normalized}/").starts_with(p.as_str()));
        if sandbox_like {
            Err(FilesError::NotFound(format!(
                "'path' '{path}' is not an attached sandbox"
            )))
        } else {
            Err(FilesError::Forbidden(format!(
                "'path' '{path}' is outside the directories this agent serves"
            )))
        }
    }

    /// The entries of a directory (or the file itself), sorted by path; `path` is the
    /// name asked for, which the entries' paths extend.
    pub fn browse(&self, path: &str) -> Result<Vec<FileInfo>, FilesError> {
        let real = self.resolve(path)?;
        let shown = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        let names = Names::load();
        let metadata = fs::metadata(&real).map_err(|e| io_error(path, e))?;
        if !metadata.is_dir() {
            return Ok(vec![FileInfo::new(shown.to_string(), &metadata, &names)]);
        }
        let mut out = Vec::new();
        for entry in fs::read_dir(&real).map_err(|e| io_error(path, e))? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            // Like Mesos, entries are described by what they point to; a dangling link
            // is left out.
            let Ok(metadata) = fs::metadata(entry.path()) else {
                continue;
            };
            let entry_path = format!("{}/{name}", shown.trim_end_matches('/'));
            out.push(FileInfo::new(entry_path, &metadata, &names));
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Up to `length` bytes from `offset`, capped at [`MAX_READ_LENGTH`]; `None` for
    /// either means the file's end. Returns the file's size and the bytes.
    pub fn read(
        &self,
        path: &str,
        offset: Option<u64>,
        length: Option<u64>,
    ) -> Result<Chunk, FilesError> {
        let real = self.resolve(path)?;
        let mut file = fs::File::open(&real).map_err(|e| io_error(path, e))?;
        let metadata = file.metadata().map_err(|e| io_error(path, e))?;
        if metadata.is_dir() {
            return Err(FilesError::BadRequest(format!(
                "'path' '{path}' is a directory; cannot read a directory"
            )));
        }
        let size = metadata.len();
        let offset = offset.unwrap_or(size);
        if offset >= size {
            return Ok(Chunk {
                offset: size,
                size,
                data: Vec::new(),
                eof: true,
            });
        }
        let wanted = length.unwrap_or(size - offset).min(MAX_READ_LENGTH);
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error(path, e))?;
        let mut data = Vec::with_capacity(wanted as usize);
        file.take(wanted)
            .read_to_end(&mut data)
            .map_err(|e| io_error(path, e))?;
        let eof = offset + data.len() as u64 >= size;
        Ok(Chunk {
            offset,
            size,
            data,
            eof,
        })
    }
}

/// What a read returned.
pub(crate) struct Chunk {
    /// Where the data starts (the file's size when nothing was read past its end).
    pub offset: u64,
    pub size: u64,
    pub data: Vec<u8>,
    /// The data reaches the end of the file.
    pub eof: bool,
}

impl Chunk {
    /// The data as a JSON string for `/files/read`. Mesos writes the raw bytes; JSON
    /// needs text, so invalid UTF-8 is replaced, and a character cut at the end of a
    /// chunk that is not the file's last is left for the next read, so that a pager
    /// advancing by the bytes it got never splits one.
    pub fn text(&self) -> String {
        let mut data = self.data.as_slice();
        if !self.eof {
            if let Err(err) = std::str::from_utf8(data) {
                if err.error_len().is_none() {
                    data = &data[..err.valid_up_to()];
                }
            }
        }
        String::from_utf8_lossy(data).into_owned()
    }
}

fn io_error(path: &str, err: std::io::Error) -> FilesError {
    match err.kind() {
        ErrorKind::NotFound => FilesError::NotFound(format!("'path' '{path}' does not exist")),
        ErrorKind::PermissionDenied => {
            FilesError::Forbidden(format!("'path' '{path}': permission denied"))
        }
        _ => FilesError::Internal(format!("'path' '{path}': {err}")),
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// One entry of a listing (Mesos's `FileInfo`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FileInfo {
    pub path: String,
    pub nlink: u64,
    pub size: u64,
    pub mtime_secs: i64,
    pub mtime_nanos: i64,
    /// `st_mode`.
    pub mode: u32,
    pub uid: String,
    pub gid: String,
}

impl FileInfo {
    fn new(path: String, metadata: &fs::Metadata, names: &Names) -> FileInfo {
        FileInfo {
            path,
            nlink: metadata.nlink(),
            size: metadata.size(),
            mtime_secs: metadata.mtime(),
            mtime_nanos: metadata.mtime_nsec(),
            mode: file_type_bits(metadata) | (metadata.mode() & 0o7777),
            uid: names.user(metadata.uid()),
            gid: names.group(metadata.gid()),
        }
    }

    /// The legacy form of `/files/browse`.
    pub fn legacy_json(&self) -> Value {
        json!({
            "path": self.path,
            "nlink": self.nlink,
            "size": self.size,
            "mtime": self.mtime_secs as f64 + self.mtime_nanos as f64 / 1e9,
            "mode": mode_string(self.mode),
            "uid": self.uid,
            "gid": self.gid,
        })
    }

    /// The v1 `FileInfo` of LIST_FILES.
    pub fn v1_json(&self) -> Value {
        json!({
            "path": self.path,
            "nlink": self.nlink,
            "size": self.size,
            "mtime": {"nanoseconds": self.mtime_secs * 1_000_000_000 + self.mtime_nanos},
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
        })
    }
}

const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFBLK: u32 = 0o060000;
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;

fn file_type_bits(metadata: &fs::Metadata) -> u32 {
    let kind = metadata.file_type();
    if kind.is_dir() {
        S_IFDIR
    } else if kind.is_symlink() {
        S_IFLNK
    } else if kind.is_block_device() {
        S_IFBLK
    } else if kind.is_char_device() {
        S_IFCHR
    } else if kind.is_fifo() {
        S_IFIFO
    } else if kind.is_socket() {
        S_IFSOCK
    } else {
        S_IFREG
    }
}

/// `drwxr-xr-x`, as `ls -l` writes a mode.
pub(crate) fn mode_string(mode: u32) -> String {
    let kind = match mode & S_IFMT {
        S_IFDIR => 'd',
        S_IFLNK => 'l',
        S_IFBLK => 'b',
        S_IFCHR => 'c',
        S_IFIFO => 'p',
        S_IFSOCK => 's',
        _ => '-',
    };
    let mut out = String::with_capacity(10);
    out.push(kind);
    // (read, write, execute bit, special bit, letter when both, letter when special only)
    let triads = [
        (0o400, 0o200, 0o100, 0o4000, 's', 'S'),
        (0o040, 0o020, 0o010, 0o2000, 's', 'S'),
        (0o004, 0o002, 0o001, 0o1000, 't', 'T'),
    ];
    for (r, w, x, special, both, only) in triads {
        out.push(if mode & r != 0 { 'r' } else { '-' });
        out.push(if mode & w != 0 { 'w' } else { '-' });
        out.push(match (mode & x != 0, mode & special != 0) {
            (true, true) => both,
            (false, true) => only,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}

/// User and group names by id, from `/etc/passwd` and `/etc/group`; an id without a
/// name is shown as its number, as Mesos does.
struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    fn load() -> Names {
        Names {
            users: parse_id_file(&fs::read_to_string("/etc/passwd").unwrap_or_default()),
            groups: parse_id_file(&fs::read_to_string("/etc/group").unwrap_or_default()),
        }
    }

    fn user(&self, uid: u32) -> String {
        self.users.get(&uid).cloned().unwrap_or(uid.to_string())
    }

    fn group(&self, gid: u32) -> String {
        self.groups.get(&gid).cloned().unwrap_or(gid.to_string())
    }
}

/// `name:password:id:...` lines to a map from id to name.
fn parse_id_file(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse().ok()?;
            Some((id, name.to_string()))
        })
        .collect()
}

/// Builds the attachments from a current snapshot and runs `work` on them off the
/// runtime's workers (file system calls block).
async fn with_attachments<T: Send + 'static>(
    app: &AppState,
    work: impl FnOnce(&Attachments) -> T + Send + 'static,
) -> Result<T, Response> {
    let view = current_view(app).await.ok_or_else(shutting_down)?;
    tokio::task::spawn_blocking(move || work(&Attachments::of(&view)))
        .await
        .map_err(|err| error_response(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))
}

/// A query parameter that must be an integer of at least -1; -1 and absence mean none.
fn optional_position(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<u64>, FilesError> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    match text.trim().parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(value) if value >= 0 => Ok(Some(value as u64)),
        Ok(value) => Err(FilesError::BadRequest(format!(
            "'{name}' must be -1 or more, not {value}"
        ))),
        Err(err) => Err(FilesError::BadRequest(format!(
            "failed to parse '{name}' '{text}': {err}"
        ))),
    }
}

fn query_path(query: &HashMap<String, String>) -> Result<String, FilesError> {
    match query.get("path") {
        Some(path) if !path.is_empty() => Ok(path.clone()),
        _ => Err(FilesError::BadRequest(
            "expecting 'path=value' in query".into(),
        )),
    }
}

/// `GET /files/browse?path=`.
pub(crate) async fn browse_endpoint(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = match query_path(&query) {
        Ok(path) => path,
        Err(err) => return err.response(),
    };
    match with_attachments(&app, move |a| a.browse(&path)).await {
        Ok(Ok(listing)) => {
            let listing: Vec<Value> = listing.iter().map(FileInfo::legacy_json).collect();
            json_response(&Value::Array(listing), &query)
        }
        Ok(Err(err)) => err.response(),
        Err(response) => response,
    }
}

/// `GET /files/read?path=&offset=&length=`.
pub(crate) async fn read_endpoint(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let parsed = query_path(&query).and_then(|path| {
        let offset = optional_position(&query, "offset")?;
        let length = optional_position(&query, "length")?;
        Ok((path, offset, length))
    });
    let (path, offset, length) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.response(),
    };
    match with_attachments(&app, move |a| a.read(&path, offset, length)).await {
        Ok(Ok(chunk)) => json_response(
            &json!({"data": chunk.text(), "offset": chunk.offset}),
            &query,
        ),
        Ok(Err(err)) => err.response(),
        Err(response) => response,
    }
}

/// `GET /files/download?path=`: the file as an attachment.
pub(crate) async fn download_endpoint(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = match query_path(&query) {
        Ok(path) => path,
        Err(err) => return err.response(),
    };
    let opened = with_attachments(&app, move |a| {
        let real = a.resolve(&path)?;
        if real.is_dir() {
            return Err(FilesError::BadRequest(format!(
                "'path' '{path}' is a directory; cannot download a directory"
            )));
        }
        let file = fs::File::open(&real).map_err(|e| io_error(&path, e))?;
        let name = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok((file, name))
    })
    .await;
    let (file, name) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(err)) => return err.response(),
        Err(response) => return response,
    };
    let stream = futures_util::stream::unfold(tokio::fs::File::from_std(file), |mut file| async {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), file))
            }
            Err(err) => Some((Err(err), file)),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // Quotes and control characters cannot reach the header: the name is cleaned.
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{clean}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /files/debug`: the virtual paths and what they stand for.
pub(crate) async fn debug_endpoint(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match current_view(&app).await {
        Some(view) => json_response(&Attachments::of(&view).debug_json(), &query),
        None => shutting_down(),
    }
}

#[cfg(test)]
mod tests;
