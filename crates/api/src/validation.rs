//! Validation of framework-supplied messages that is shared by the master and the agent:
//! role names and `FrameworkInfo` (reference §1.4).

use crate::messages::FrameworkInfo;

/// `*` is allowed; otherwise no leading or trailing `/`, no `//`, and no path component
/// that is `.`, `..`, `*`, starts with `-`, or holds whitespace or a backspace.
pub fn validate_role(field: &str, role: &str) -> Result<(), String> {
    if role == "*" {
        return Ok(());
    }
    if role.is_empty() {
        return Err(format!("{field}: role must not be empty"));
    }
    if role.starts_with('/') || role.ends_with('/') || role.contains("//") {
        return Err(format!(
            "{field}: role '{role}' has a leading, trailing or double '/'"
        ));
    }
    for part in role.split('/') {
        if part == "." || part == ".." || part == "*" {
            return Err(format!(
                "{field}: role '{role}' has the invalid component '{part}'"
            ));
        }
        if part.starts_with('-') {
            return Err(format!(
                "{field}: role '{role}' has a component starting with '-'"
            ));
        }
        if part.chars().any(|c| c.is_whitespace() || c == '\u{8}') {
            return Err(format!("{field}: role '{role}' contains whitespace"));
        }
    }
    Ok(())
}

pub fn validate_framework_info(info: &FrameworkInfo) -> Result<(), String> {
    let multi_role = info.has_capability("MULTI_ROLE");
    if !multi_role && !info.roles.is_empty() {
        return Err("framework_info.roles requires the MULTI_ROLE capability".into());
    }
    if multi_role && info.role.is_some() {
        return Err(
            "framework_info.role must not be set together with the MULTI_ROLE capability".into(),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, role) in info.effective_roles().iter().enumerate() {
        validate_role(&format!("framework_info.roles[{i}]"), role)?;
        if !seen.insert(role) {
            return Err(format!(
                "framework_info.roles: role '{role}' appears more than once"
            ));
        }
    }
    if !info.failover_timeout.is_finite() || info.failover_timeout < 0.0 {
        return Err("framework_info.failover_timeout must be a non-negative number".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(role: &str, ok: bool) {
        assert_eq!(validate_role("role", role).is_ok(), ok, "{role}");
    }

    #[test]
    fn roles() {
        check("*", true);
        check("eng", true);
        check("eng/backend", true);
        check("", false);
        check("/eng", false);
        check("eng/", false);
        check("a//b", false);
        check("a/./b", false);
        check("a/*", false);
        check("-eng", false);
        check("e g", false);
    }

    #[test]
    fn framework_info_rules() {
        let info = |v: serde_json::Value| serde_json::from_value::<FrameworkInfo>(v).unwrap();
        assert!(validate_framework_info(&info(serde_json::json!({"user":"u","name":"n"}))).is_ok());
        assert!(validate_framework_info(&info(
            serde_json::json!({"user":"u","name":"n","roles":["a"]})
        ))
        .is_err());
        assert!(
            validate_framework_info(&info(serde_json::json!({"user":"u","name":"n",
            "roles":["a","a"],"capabilities":[{"type":"MULTI_ROLE"}]})))
            .is_err()
        );
        assert!(
            validate_framework_info(&info(serde_json::json!({"user":"u","name":"n",
            "roles":["a","b"],"capabilities":[{"type":"MULTI_ROLE"}]})))
            .is_ok()
        );
    }
}
