//! Output for people: aligned tables, human units ("3.5 GiB", "1.5"), short ids and ages.
//! Everything here is a pure function of its input, so the tables are tested as text.

/// A table with a header row; numeric columns are aligned right.
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Column names; a name ending in `>` is aligned right (the `>` is not shown).
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.trim_end_matches('>')).collect(),
            right: headers.iter().map(|h| h.ends_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text: columns two spaces apart, no trailing spaces, one line per
    /// row ending in a newline.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate() {
                if index > 0 {
                    line.push_str("  ");
                }
                let pad = widths[index].saturating_sub(cell.chars().count());
                if self.right[index] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A number without needless decimals: 4 → "4", 1.5 → "1.5", 0.126 → "0.13".
pub fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

/// Megabytes (the unit of Mesos's `mem` and `disk`) in binary units: "512 MiB",
/// "3.5 GiB", "2.0 TiB".
pub fn megabytes(mb: f64) -> String {
    if mb >= 1024.0 * 1024.0 {
        format!("{:.1} TiB", mb / (1024.0 * 1024.0))
    } else if mb >= 1024.0 {
        format!("{:.1} GiB", mb / 1024.0)
    } else {
        format!("{} MiB", number(mb))
    }
}

/// An id for a table: Mesos ids made of a 36-character UUID and a suffix
/// (`<master uuid>-S3`, `<master uuid>-0007`) keep the first 8 characters of the UUID
/// and the suffix, since ids of one cluster share the UUID; other ids stay whole.
/// [`matches_id`] accepts the short form back.
pub fn short_id(id: &str) -> String {
    match split_uuid(id) {
        Some((uuid, suffix)) => format!("{}-{suffix}", &uuid[..8]),
        None => id.to_string(),
    }
}

/// Splits `<uuid>-<suffix>` where the uuid is 36 characters of hex digits and dashes.
fn split_uuid(id: &str) -> Option<(&str, &str)> {
    let uuid = id.get(..36)?;
    let suffix = id.get(36..)?.strip_prefix('-')?;
    let shaped = uuid.char_indices().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => c == '-',
        _ => c.is_ascii_hexdigit(),
    });
    (shaped && !suffix.is_empty()).then_some((uuid, suffix))
}

/// Whether what a user typed names `id`: the whole id, or its short form.
pub fn matches_id(id: &str, typed: &str) -> bool {
    id == typed || short_id(id) == typed
}

/// How long ago `then` (Unix seconds) was, seen from `now`: "45s", "12m", "3h", "2d".
pub fn age(now: f64, then: f64) -> String {
    if then <= 0.0 || !then.is_finite() {
        return "-".into();
    }
    let secs = (now - then).max(0.0) as u64;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// The current time in Unix seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A task state without its `TASK_` prefix, as people read it ("RUNNING").
pub fn state_name(state: &str) -> &str {
    state.strip_prefix("TASK_").unwrap_or(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let mut table = Table::new(&["ID", "NAME", "CPUS>"]);
        table.row(vec!["a".into(), "long name".into(), "1.5".into()]);
        table.row(vec!["bbbb".into(), "x".into(), "12".into()]);
        assert_eq!(
            table.render(),
            "ID    NAME       CPUS\n\
             a     long name   1.5\n\
             bbbb  x            12\n"
        );
        let empty = Table::new(&["ID", "STATE"]);
        assert!(empty.is_empty());
        assert_eq!(empty.render(), "ID  STATE\n");
    }

    #[test]
    fn human_units() {
        let check = |value: f64, expected: &str| assert_eq!(megabytes(value), expected);
        check(0.0, "0 MiB");
        check(128.0, "128 MiB");
        check(1023.5, "1023.5 MiB");
        check(1024.0, "1.0 GiB");
        check(3584.0, "3.5 GiB");
        check(3.0 * 1024.0 * 1024.0, "3.0 TiB");
        let check = |value: f64, expected: &str| assert_eq!(number(value), expected);
        check(4.0, "4");
        check(1.5, "1.5");
        check(0.126, "0.13");
        check(0.0, "0");
        check(-0.001, "0");
    }

    #[test]
    fn short_ids_keep_the_suffix() {
        let agent = "5b1f3a2c-0d4e-4f5a-9b6c-7d8e9f0a1b2c-S12";
        assert_eq!(short_id(agent), "5b1f3a2c-S12");
        assert_eq!(
            short_id("5b1f3a2c-0d4e-4f5a-9b6c-7d8e9f0a1b2c-0003"),
            "5b1f3a2c-0003"
        );
        assert_eq!(short_id("my-task-1"), "my-task-1");
        assert_eq!(
            short_id("5b1f3a2c-0d4e-4f5a-9b6c-7d8e9f0a1b2c"),
            "5b1f3a2c-0d4e-4f5a-9b6c-7d8e9f0a1b2c"
        );
        assert_eq!(
            short_id("zzzzzzzz-0d4e-4f5a-9b6c-7d8e9f0a1b2c-S1"),
            "zzzzzzzz-0d4e-4f5a-9b6c-7d8e9f0a1b2c-S1"
        );
        assert!(matches_id(agent, "5b1f3a2c-S12"));
        assert!(matches_id(agent, agent));
        assert!(!matches_id(agent, "5b1f3a2c-S1"));
    }

    #[test]
    fn ages() {
        assert_eq!(age(1000.0, 955.0), "45s");
        assert_eq!(age(10_000.0, 10_000.0 - 720.0), "12m");
        assert_eq!(age(100_000.0, 100_000.0 - 3.0 * 3600.0), "3h");
        assert_eq!(age(1e6, 1e6 - 2.5 * 86400.0), "2d");
        assert_eq!(age(1e6, 0.0), "-");
        assert_eq!(age(1e6, 2e6), "0s");
        assert_eq!(state_name("TASK_RUNNING"), "RUNNING");
    }
}
