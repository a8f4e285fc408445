//! Mesos duration text: `<number><unit>` with the units ns, us, ms, secs, mins, hrs, days
//! and weeks (`5secs`, `1.5mins`), as used by flags and executor environment variables.

use std::time::Duration;

const UNITS: [(&str, f64); 8] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("ms", 1e-3),
    ("secs", 1.0),
    ("mins", 60.0),
    ("hrs", 3600.0),
    ("days", 86400.0),
    ("weeks", 604800.0),
];

/// Parses Mesos duration text; the unit is required, as in Mesos.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| {
            !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')
        })
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 5secs or 10mins"))?;
    let scale = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, scale)| *scale)
        .ok_or_else(|| {
            format!("'{text}' needs a unit: ns, us, ms, secs, mins, hrs, days or weeks")
        })?;
    let seconds = value * scale;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("'{text}' must be a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a duration the way Mesos prints it in environment variables (`5secs`).
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs == 0.0 {
        return "0secs".into();
    }
    for (name, scale) in UNITS.iter().rev() {
        let value = secs / scale;
        if value >= 1.0 && (value - value.round()).abs() < 1e-9 {
            return format!("{}{name}", value.round() as u64);
        }
    }
    format!("{}ms", (secs * 1e3).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<f64>) {
        match (parse_duration(text), expected) {
            (Ok(d), Some(secs)) => assert!((d.as_secs_f64() - secs).abs() < 1e-9, "{text}: {d:?}"),
            (Err(_), None) => {}
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parse() {
        check("5secs", Some(5.0));
        check("1.5mins", Some(90.0));
        check("100ms", Some(0.1));
        check("2hrs", Some(7200.0));
        check("1weeks", Some(604800.0));
        check("3", None);
        check("0ns", Some(0.0));
        check("5s", None);
        check("secs", None);
        check("-1secs", None);
    }

    #[test]
    fn format() {
        assert_eq!(format_duration(Duration::from_secs(5)), "5secs");
        assert_eq!(format_duration(Duration::from_secs(600)), "10mins");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::ZERO), "0secs");
    }
}
