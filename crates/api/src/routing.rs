//! The libprocess routing rules that clients depend on (reference §0.4): every endpoint
//! also answers under its process prefix (`/master/state` and `/state`), a trailing `/`
//! is ignored, and the pre-0.25 `.json` suffixes still work.

/// The canonical path for `path`, given the daemon's process id (`master` or `slave(1)`).
pub fn canonical_path(path: &str, process_id: &str) -> String {
    let mut path = path.trim_end_matches('/');
    if path.is_empty() {
        return "/".to_string();
    }
    let prefix = format!("/{process_id}");
    if let Some(rest) = path.strip_prefix(&prefix) {
        if rest.is_empty() {
            return "/".to_string();
        }
        if rest.starts_with('/') {
            path = rest;
        }
    }
    path.strip_suffix(".json").unwrap_or(path).to_string()
}

/// Wraps a JSON body for `?jsonp=CB`: `CB(<json>)`. Callback names are limited to
/// JavaScript identifier characters and dots so the answer cannot carry markup.
pub fn jsonp(callback: &str, json: &[u8]) -> Option<Vec<u8>> {
    let valid = !callback.is_empty()
        && callback.len() <= 128
        && callback
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$');
    if !valid {
        return None;
    }
    let mut out = Vec::with_capacity(json.len() + callback.len() + 3);
    out.extend_from_slice(callback.as_bytes());
    out.push(b'(');
    out.extend_from_slice(json);
    out.extend_from_slice(b");");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, process: &str, expected: &str) {
        assert_eq!(canonical_path(path, process), expected, "{path}");
    }

    #[test]
    fn aliases() {
        check("/master/state", "master", "/state");
        check("/master/state.json", "master", "/state");
        check("/state.json", "master", "/state");
        check("/master/frameworks/", "master", "/frameworks");
        check("/master/redirect", "master", "/redirect");
        check("/master", "master", "/");
        check("/", "master", "/");
        check("/mastery/x", "master", "/mastery/x");
        check("/slave(1)/state.json", "slave(1)", "/state");
        check(
            "/slave(1)/monitor/statistics.json",
            "slave(1)",
            "/monitor/statistics",
        );
        check("/api/v1/scheduler", "master", "/api/v1/scheduler");
        check("/files/read.json", "slave(1)", "/files/read");
    }

    #[test]
    fn jsonp_wrapping() {
        assert_eq!(jsonp("cb", b"{}").unwrap(), b"cb({});");
        assert_eq!(
            jsonp("angular.callbacks._0", b"1").unwrap(),
            b"angular.callbacks._0(1);"
        );
        assert!(jsonp("<script>", b"1").is_none());
        assert!(jsonp("", b"1").is_none());
    }
}
