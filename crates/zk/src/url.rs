//! `zk://[user:password@]host1:2181,host2:2181/path` URLs as Mesos accepts them for
//! `--zk` and `--master`, and the client-side checks of znode paths.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The port of a server named without one.
pub const DEFAULT_PORT: u16 = 2181;

/// A parsed `zk://` URL: the ensemble, the znode path under which the caller keeps its
/// nodes, and the optional digest credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ZkUrl {
    pub servers: Vec<Server>,
    /// An absolute znode path without a trailing slash (`/` when the URL has none).
    pub path: String,
    pub credentials: Option<Credentials>,
}

/// One server of the ensemble.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Server {
    pub host: String,
    pub port: u16,
}

/// Digest credentials (`user:password`), sent with `addauth` on every connection; nodes
/// created by a client with credentials get the ACL "creator all, world read".
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of logs and panics.
        write!(
            f,
            "Credentials {{ user: {:?}, password: \"***\" }}",
            self.user
        )
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Shown with the password masked, so a URL can be logged.
impl fmt::Display for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("zk://")?;
        if let Some(credentials) = &self.credentials {
            write!(f, "{}:***@", credentials.user)?;
        }
        for (i, server) in self.servers.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{server}")?;
        }
        f.write_str(&self.path)
    }
}

impl fmt::Debug for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZkUrl({self})")
    }
}

impl FromStr for ZkUrl {
    type Err = Error;

    fn from_str(url: &str) -> Result<ZkUrl, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: mask_password(url),
            reason,
        };
        let rest = url
            .strip_prefix("zk://")
            .ok_or_else(|| invalid("must start with zk://".to_string()))?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        // Hosts never contain '@', so the last one ends the credentials even when the
        // password has one.
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => (
                Some(parse_credentials(credentials).map_err(invalid)?),
                hosts,
            ),
            None => (None, authority),
        };
        if hosts.is_empty() {
            return Err(invalid("names no server".to_string()));
        }
        let servers = hosts
            .split(',')
            .map(parse_server)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let trimmed = path.trim_end_matches('/');
        let path = if trimmed.is_empty() { "/" } else { trimmed };
        validate_path(path, false).map_err(|err| match err {
            Error::InvalidPath { reason, .. } => invalid(format!("path {path:?} {reason}")),
            other => other,
        })?;
        Ok(ZkUrl {
            servers,
            path: path.to_string(),
            credentials,
        })
    }
}

impl ZkUrl {
    /// The servers as ZooKeeper's own clients write them: `h1:2181,h2:2181`.
    pub fn connect_string(&self) -> String {
        let servers: Vec<String> = self.servers.iter().map(Server::to_string).collect();
        servers.join(",")
    }
}

fn parse_credentials(credentials: &str) -> Result<Credentials, String> {
    let Some((user, password)) = credentials.split_once(':') else {
        return Err("credentials must be user:password".to_string());
    };
    if user.is_empty() {
        return Err("credentials have an empty user".to_string());
    }
    Ok(Credentials {
        user: user.to_string(),
        password: password.to_string(),
    })
}

fn parse_server(server: &str) -> Result<Server, String> {
    if server.is_empty() {
        return Err("has an empty entry in its server list".to_string());
    }
    let (host, port) = if let Some(bracketed) = server.strip_prefix('[') {
        // An IPv6 address: `[::1]` or `[::1]:2181`.
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(format!("server {server:?} has no closing ]"));
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("server {server:?} has text after ]")),
            },
        }
    } else {
        match server.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (server, None),
        }
    };
    if host.is_empty() {
        return Err(format!("server {server:?} has an empty host"));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return Err(format!("server {server:?} has an invalid host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!("server {server:?} has an invalid port {port:?}"))
            }
            Ok(port) => port,
        },
    };
    Ok(Server {
        host: host.to_string(),
        port,
    })
}

/// The URL with the password replaced, for error messages.
fn mask_password(url: &str) -> String {
    let Some(rest) = url.strip_prefix("zk://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((credentials, _)) => match credentials.split_once(':') {
            Some((user, _)) => format!("zk://{user}:***@{}", &rest[credentials.len() + 1..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Checks a znode path the way the server will, so that a bad path is an error naming
/// the problem instead of a bare "bad arguments". A sequential create may end in `/`
/// (the server appends the sequence number).
pub(crate) fn validate_path(path: &str, sequential: bool) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return invalid("is empty");
    }
    if !path.starts_with('/') {
        return invalid("must start with /");
    }
    if path == "/" {
        return if sequential {
            invalid("cannot be the root for a sequential node")
        } else {
            Ok(())
        };
    }
    let body = match path.strip_suffix('/') {
        Some(body) if sequential => body,
        Some(_) => return invalid("must not end with /"),
        None => path,
    };
    for component in body[1..].split('/') {
        if component.is_empty() {
            return invalid("has an empty component");
        }
        if component == "." || component == ".." {
            return invalid("has a relative component");
        }
    }
    if path.chars().any(|c| c == '\0') {
        return invalid("contains a null character");
    }
    if path
        .chars()
        .any(|c| ('\u{1}'..='\u{1f}').contains(&c) || ('\u{7f}'..='\u{9f}').contains(&c))
    {
        return invalid("contains a control character");
    }
    Ok(())
}

/// The parent of an absolute path (`/` for a top-level node), `None` for the root.
pub(crate) fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: &str) {
        let got = match url.parse::<ZkUrl>() {
            Ok(url) => {
                let auth = match &url.credentials {
                    Some(c) => format!("{}:{} ", c.user, c.password),
                    None => String::new(),
                };
                format!("{auth}{} {}", url.connect_string(), url.path)
            }
            Err(err) => format!("error: {err}"),
        };
        assert_eq!(got, expected, "parsing {url:?}");
    }

    #[test]
    fn parses_urls() {
        check("zk://h1:2181,h2:2182/mantle", "h1:2181,h2:2182 /mantle");
        check("zk://h1/mantle", "h1:2181 /mantle");
        check("zk://h1,h2:1/a/b/", "h1:2181,h2:1 /a/b");
        check("zk://10.0.0.1:2181", "10.0.0.1:2181 /");
        check("zk://h1:2181/", "h1:2181 /");
        check("zk://u:p@h1:2181/m", "u:p h1:2181 /m");
        check("zk://u:p@ss@h1/m", "u:p@ss h1:2181 /m");
        check("zk://u:@h1/m", "u: h1:2181 /m");
        check(
            "zk://[::1]:2182,[fe80::1]/m",
            "[::1]:2182,[fe80::1]:2181 /m",
        );
    }

    #[test]
    fn rejects_bad_urls_naming_the_problem() {
        check(
            "http://h1/m",
            "error: invalid zookeeper url \"http://h1/m\": must start with zk://",
        );
        check(
            "h1:2181/m",
            "error: invalid zookeeper url \"h1:2181/m\": must start with zk://",
        );
        check(
            "zk:///m",
            "error: invalid zookeeper url \"zk:///m\": names no server",
        );
        check(
            "zk://h1,,h2/m",
            "error: invalid zookeeper url \"zk://h1,,h2/m\": has an empty entry in its server list",
        );
        check(
            "zk://h1:x/m",
            "error: invalid zookeeper url \"zk://h1:x/m\": server \"h1:x\" has an invalid port \"x\"",
        );
        check(
            "zk://h1:0/m",
            "error: invalid zookeeper url \"zk://h1:0/m\": server \"h1:0\" has an invalid port \"0\"",
        );
        check(
            "zk://h1:70000/m",
            "error: invalid zookeeper url \"zk://h1:70000/m\": server \"h1:70000\" has an invalid port \"70000\"",
        );
        check(
            "zk://:2181/m",
            "error: invalid zookeeper url \"zk://:2181/m\": server \":2181\" has an empty host",
        );
        check(
            "zk://[::1/m",
            "error: invalid zookeeper url \"zk://[::1/m\": server \"[::1\" has no closing ]",
        );
        check(
            "zk://secret@h1/m",
            "error: invalid zookeeper url \"zk://secret@h1/m\": credentials must be user:password",
        );
        check(
            "zk://u:secret@h1//m",
            "error: invalid zookeeper url \"zk://u:***@h1//m\": path \"//m\" has an empty component",
        );
        check(
            "zk://h1/a/../b",
            "error: invalid zookeeper url \"zk://h1/a/../b\": path \"/a/../b\" has a relative component",
        );
    }

    #[test]
    fn display_masks_the_password() {
        let url: ZkUrl = "zk://u:secret@h1:2181,h2/m".parse().unwrap();
        assert_eq!(url.to_string(), "zk://u:***@h1:2181,h2:2181/m");
        assert!(!format!("{url:?}").contains("secret"));
        assert!(!format!("{:?}", url.credentials).contains("secret"));
    }

    fn check_path(path: &str, sequential: bool, expected: &str) {
        let got = match validate_path(path, sequential) {
            Ok(()) => "ok".to_string(),
            Err(err) => err.to_string(),
        };
        assert_eq!(got, expected, "validating {path:?}");
    }

    #[test]
    fn validates_paths() {
        check_path("/", false, "ok");
        check_path("/a", false, "ok");
        check_path("/a/json.info_", true, "ok");
        check_path("/a/", true, "ok");
        check_path("", false, "invalid zookeeper path \"\": is empty");
        check_path(
            "a",
            false,
            "invalid zookeeper path \"a\": must start with /",
        );
        check_path(
            "/a/",
            false,
            "invalid zookeeper path \"/a/\": must not end with /",
        );
        check_path(
            "/a//b",
            false,
            "invalid zookeeper path \"/a//b\": has an empty component",
        );
        check_path(
            "/a/./b",
            false,
            "invalid zookeeper path \"/a/./b\": has a relative component",
        );
        check_path(
            "/..",
            false,
            "invalid zookeeper path \"/..\": has a relative component",
        );
        check_path(
            "/a\0",
            false,
            "invalid zookeeper path \"/a\\0\": contains a null character",
        );
        check_path(
            "/a\tb",
            false,
            "invalid zookeeper path \"/a\\tb\": contains a control character",
        );
        check_path(
            "/",
            true,
            "invalid zookeeper path \"/\": cannot be the root for a sequential node",
        );
    }

    #[test]
    fn parents() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b/c"), Some("/a/b"));
    }
}
