//! ID messages (`{"value": "..."}`) for frameworks, agents, offers, tasks, executors and
//! containers, and the Mesos rules for user-supplied IDs.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// The text is shared: a clone is a reference count, so the master's many
        /// copies of one agent's or framework's ID (its maps, indexes and every task)
        /// hold the text once.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            pub value: Arc<str>,
        }

        impl $name {
            pub fn new(value: impl Into<Arc<str>>) -> Self {
                Self { value: value.into() }
            }

            pub fn as_str(&self) -> &str {
                &self.value
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.value)
            }
        }

        // Eq, Ord and Hash are the string's, so maps keyed by an ID take a `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.value
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                WireId { value: Cow::Borrowed(&self.value) }.serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let wire = WireId::deserialize(deserializer)?;
                Ok(Self::new(&*wire.value))
            }
        }
    };
}

/// An ID on the wire: `{"value": "..."}`, read without a copy when it has no escapes.
#[derive(Serialize, Deserialize)]
struct WireId<'a> {
    #[serde(borrow)]
    value: Cow<'a, str>,
}

id_type!(
    /// `<master-id>-NNNN`, assigned by the master on first SUBSCRIBE.
    FrameworkId
);
id_type!(
    /// `<master-id>-S<n>`, assigned by the master on agent registration.
    AgentId
);
id_type!(
    /// `<master-id>-O<n>`.
    OfferId
);
id_type!(
    /// Chosen by the framework; unique within it.
    TaskId
);
id_type!(
    /// Chosen by the framework; the command executor uses the task ID.
    ExecutorId
);
id_type!(
    /// A random UUID chosen by the agent for each executor run.
    ContainerId
);

/// Checks a framework-supplied ID the way Mesos does: not empty, at most 255 bytes,
/// not `.` or `..`, no control characters, no `/` or `\`.
pub fn validate_id(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.len() > 255 {
        return Err(format!("{field} is longer than 255 characters"));
    }
    if value == "." || value == ".." {
        return Err(format!("{field} must not be '.' or '..'"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(format!("{field} must not contain control characters"));
    }
    if value.contains('/') || value.contains('\\') {
        return Err(format!("{field} must not contain '/' or '\\'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, ok: bool) {
        assert_eq!(validate_id("task_id", value).is_ok(), ok, "{value:?}");
    }

    #[test]
    fn id_rules() {
        check("task-1", true);
        check("a.b_c:d", true);
        check("", false);
        check(".", false);
        check("..", false);
        check("a/b", false);
        check("a\\b", false);
        check("a\nb", false);
        check(&"x".repeat(255), true);
        check(&"x".repeat(256), false);
    }

    #[test]
    fn id_json_shape() {
        let id = TaskId::new("t1");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#"{"value":"t1"}"#);
    }

    #[test]
    fn ids_read_from_text_and_from_values_and_share_their_text() {
        let escaped: TaskId = serde_json::from_str(r#"{"value":"a\"b","extra":1}"#).unwrap();
        assert_eq!(escaped.as_str(), "a\"b");
        let from_value: AgentId =
            serde_json::from_value(serde_json::json!({"value": "S1"})).unwrap();
        assert_eq!(from_value, AgentId::new("S1"));
        let missing = serde_json::from_str::<TaskId>("{}").unwrap_err();
        assert!(
            missing.to_string().contains("missing field `value`"),
            "{missing}"
        );
        let copy = from_value.clone();
        assert!(Arc::ptr_eq(&copy.value, &from_value.value));
    }
}
