//! The web UI: the static files of `webui/` embedded in the binary and served at the
//! master's root URL (`/`, and `/static/...` for its scripts and styles), as Mesos's
//! master serves its own UI. Every master, standby or leader, serves it locally; the
//! page itself finds and follows the leader (it polls with JSONP, reference §4).

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
struct Asset {
    /// The path under `/static/` (the page itself is `index.html`, served at `/`).
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// A strong validator computed at build time, so revalidating costs one hash compare.
    etag: &'static str,
}

/// FNV-1a: a tiny hash that `const` evaluation can run over the embedded bytes.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `"<16 hex digits>"`, quotes included, as an ETag is written.
const fn etag_of(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {{
        const BODY: &[u8] = include_bytes!(concat!("../../../webui/", $path));
        const ETAG: [u8; 18] = etag_of(BODY);
        Asset {
            path: $path,
            content_type: $content_type,
            body: BODY,
            // The tag is made of ASCII hex digits and quotes only.
            etag: match std::str::from_utf8(&ETAG) {
                Ok(tag) => tag,
                Err(_) => panic!("etag is ascii"),
            },
        }
    }};
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `webui/`; a test checks that whatever the pages reference is here.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/format.js", JS),
    asset!("js/html.js", JS),
    asset!("js/widgets.js", JS),
    asset!("js/cluster.js", JS),
    asset!("js/overview.js", JS),
    asset!("js/agents.js", JS),
    asset!("js/frameworks.js", JS),
    asset!("js/tasks.js", JS),
    asset!("js/task.js", JS),
    asset!("js/sandbox.js", JS),
    asset!("js/roles.js", JS),
];

/// The UI's routes, merged into the master's routes that every master answers itself.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/static/{*path}", get(static_file))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn static_file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no web ui file '{path}'"),
        )
            .into_response();
    };
    // `no-cache` lets browsers keep the files but ask each time, so a master upgraded in
    // place is never shown with the scripts of the old one.
    let common = [
        (header::ETAG, asset.etag),
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(header::CONTENT_TYPE, asset.content_type)],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(uri: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut request = Request::get(uri);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        let response = routes::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, body.to_vec())
    }

    fn check(uri: &str, status: StatusCode, content_type: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (got, headers, body) = runtime.block_on(get(uri, None));
        assert_eq!(got, status, "{uri}");
        let got_type = headers.get(header::CONTENT_TYPE).unwrap().to_str().unwrap();
        assert_eq!(got_type, content_type, "{uri}");
        assert!(!body.is_empty(), "{uri}");
    }

    #[test]
    fn content_types() {
        check("/", StatusCode::OK, "text/html; charset=utf-8");
        check("/static/app.css", StatusCode::OK, "text/css; charset=utf-8");
        check("/static/js/app.js", StatusCode::OK, JS);
        check("/static/favicon.svg", StatusCode::OK, "image/svg+xml");
        check(
            "/static/js/nothing.js",
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
        );
        check(
            "/static/../Cargo.toml",
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
        );
    }

    #[tokio::test]
    async fn etag_revalidation() {
        let (status, headers, _) = get("/static/app.css", None).await;
        assert_eq!(status, StatusCode::OK);
        let tag = headers
            .get(header::ETAG)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(tag.len(), 18);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        let (status, _, body) = get("/static/app.css", Some(&format!("\"x\", {tag}"))).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        let (status, _, _) = get("/static/app.css", Some("\"0000000000000000\"")).await;
        assert_eq!(status, StatusCode::OK);
        // Different files get different tags.
        let (_, other, _) = get("/static/js/app.js", None).await;
        assert_ne!(other.get(header::ETAG).unwrap().to_str().unwrap(), tag);
    }

    /// The quoted strings in `text` that start with `prefix` (e.g. `"/static/` or `'./`).
    fn references<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        let mut found = Vec::new();
        for quote in ['"', '\''] {
            let start = format!("{quote}{prefix}");
            let mut rest = text;
            while let Some(at) = rest.find(&start) {
                rest = &rest[at + start.len()..];
                if let Some(end) = rest.find(quote) {
                    found.push(&rest[..end]);
                }
            }
        }
        found
    }

    /// Everything the page loads is embedded: the files `index.html` names under
    /// `/static/` and every module a script imports (`from './x.js'`).
    #[test]
    fn every_reference_is_embedded() {
        let text = |path: &str| {
            let asset = ASSETS.iter().find(|a| a.path == path).unwrap();
            std::str::from_utf8(asset.body).unwrap()
        };
        let embedded = |path: &str| ASSETS.iter().any(|a| a.path == path);
        let from_index = references(text("index.html"), "/static/");
        assert!(from_index.contains(&"js/app.js"), "{from_index:?}");
        for path in from_index {
            assert!(
                embedded(path),
                "index.html loads /static/{path}, not embedded"
            );
        }
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            for module in references(text(asset.path), "./") {
                let path = format!("js/{module}");
                assert!(
                    embedded(&path),
                    "{} imports ./{module}, not embedded",
                    asset.path
                );
            }
        }
    }

    /// The other direction: every file in `webui/` is embedded (a new file left out of
    /// `ASSETS` would be missing from the binary).
    #[test]
    fn every_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../webui");
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let relative = path.strip_prefix(&root).unwrap().to_str().unwrap();
                assert!(
                    ASSETS.iter().any(|a| a.path == relative),
                    "webui/{relative} is not in ASSETS"
                );
            }
        }
    }
}
