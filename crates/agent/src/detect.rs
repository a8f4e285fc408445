//! Auto-detection of the resources missing from `--resources`, as the Mesos agent does
//! (reference §7): cpus = cores, mem = total − 1 GiB (half below 2 GiB), disk = the
//! work_dir filesystem − 5 GiB (half below 10 GiB), ports = [31000-32000].

use mantle_api::{Resource, Resources};
use std::collections::BTreeSet;
use std::path::Path;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// What the machine reports; `None` where probing failed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Probe {
    pub cpus: Option<u64>,
    pub mem_total_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
}

impl Probe {
    /// Reads the online cores, `/proc/meminfo` and the size of `work_dir`'s filesystem.
    pub fn read(work_dir: &Path) -> Probe {
        // SAFETY: sysconf only reads a system value.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let mem_total_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| parse_meminfo(&t));
        Probe {
            cpus: u64::try_from(cpus).ok().filter(|&n| n > 0),
            mem_total_bytes,
            disk_total_bytes: filesystem_size(work_dir),
        }
    }
}

/// `MemTotal` of `/proc/meminfo` text, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let factor = match parts.next() {
        Some("kB") | Some("KB") | Some("kb") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(factor)
}

/// The size of the filesystem holding `path`, in bytes.
pub fn filesystem_size(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid out pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    (stat.f_blocks as u64).checked_mul(stat.f_frsize as u64)
}

/// Memory to offer, in MB: total − 1 GiB when total ≥ 2 GiB, else half.
pub fn mem_mb(total_bytes: u64) -> u64 {
    let bytes = if total_bytes >= 2 * GIB {
        total_bytes - GIB
    } else {
        total_bytes / 2
    };
    bytes / MIB
}

/// Disk to offer, in MB: size − 5 GiB when size ≥ 10 GiB, else half.
pub fn disk_mb(total_bytes: u64) -> u64 {
    let bytes = if total_bytes >= 10 * GIB {
        total_bytes - 5 * GIB
    } else {
        total_bytes / 2
    };
    bytes / MIB
}

/// The resource names a `--resources` value mentions, including those given as zero
/// (which the resources algebra drops, but which must not be auto-detected).
pub fn explicit_names(flag: &str) -> BTreeSet<String> {
    let trimmed = flag.trim();
    if trimmed.starts_with('[') && trimmed.contains('{') {
        if let Ok(wire) = serde_json::from_str::<Vec<Resource>>(trimmed) {
            return wire.into_iter().map(|r| r.name).collect();
        }
    }
    trimmed
        .split(';')
        .filter_map(|item| {
            let name = item.split([':', '(']).next()?.trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

/// Adds the detected amount of every standard resource the flag does not mention.
/// Probing failures fall back to 1 cpu, 1 GB of memory and 10 GB of disk.
pub fn fill_missing(
    given: &Resources,
    explicit: &BTreeSet<String>,
    probe: &Probe,
    role: &str,
) -> Result<Resources, String> {
    let mut out = given.clone();
    let mut add = |text: String| -> Result<(), String> {
        out.add(&Resources::parse_text(&text, role)?);
        Ok(())
    };
    if !explicit.contains("cpus") {
        add(format!("cpus:{}", probe.cpus.unwrap_or(1)))?;
    }
    if !explicit.contains("mem") {
        add(format!(
            "mem:{}",
            probe.mem_total_bytes.map_or(1024, mem_mb)
        ))?;
    }
    if !explicit.contains("disk") {
        add(format!(
            "disk:{}",
            probe.disk_total_bytes.map_or(10240, disk_mb)
        ))?;
    }
    if !explicit.contains("ports") {
        add("ports:[31000-32000]".to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str =
        "MemTotal:        8029072 kB\nMemFree:          402040 kB\nMemAvailable:    5120000 kB\n";

    #[test]
    fn meminfo() {
        assert_eq!(parse_meminfo(MEMINFO), Some(8029072 * 1024));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: lots kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: 5 MB\n"), None);
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn sizes() {
        let check = |f: fn(u64) -> u64, bytes: u64, mb: u64| assert_eq!(f(bytes), mb, "{bytes}");
        check(mem_mb, 8029072 * 1024, 8029072 / 1024 - 1024);
        check(mem_mb, 2 * GIB, 1024);
        check(mem_mb, GIB, 512);
        check(mem_mb, 0, 0);
        check(disk_mb, 100 * GIB, 95 * 1024);
        check(disk_mb, 10 * GIB, 5 * 1024);
        check(disk_mb, 8 * GIB, 4 * 1024);
    }

    #[test]
    fn explicit() {
        let check = |flag: &str, names: &[&str]| {
            let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
            assert_eq!(explicit_names(flag), want, "{flag}");
        };
        check(
            "cpus:0;mem(role):10; ports:[1-2]",
            &["cpus", "mem", "ports"],
        );
        check("", &[]);
        check(
            r#"[{"name":"disk","type":"SCALAR","scalar":{"value":1}}]"#,
            &["disk"],
        );
    }

    #[test]
    fn fills_what_is_missing() {
        let probe = Probe {
            cpus: Some(8),
            mem_total_bytes: Some(16 * GIB),
            disk_total_bytes: Some(100 * GIB),
        };
        let check = |flag: &str, probe: &Probe, want: &str| {
            let given = Resources::parse_flag(flag, "*").unwrap();
            let got = fill_missing(&given, &explicit_names(flag), probe, "*").unwrap();
            assert_eq!(got.to_text(), want, "{flag}");
        };
        check(
            "",
            &probe,
            "cpus:8;disk:97280;mem:15360;ports:[31000-32000]",
        );
        check(
            "cpus:0;mem:100",
            &probe,
            "disk:97280;mem:100;ports:[31000-32000]",
        );
        check(
            "ports:[1-2];gpus:1",
            &probe,
            "cpus:8;disk:97280;gpus:1;mem:15360;ports:[1-2]",
        );
        check(
            "",
            &Probe::default(),
            "cpus:1;disk:10240;mem:1024;ports:[31000-32000]",
        );
    }

    #[test]
    fn probes_this_machine() {
        let probe = Probe::read(Path::new("/"));
        assert!(probe.cpus.is_some_and(|n| n >= 1));
        assert!(probe.disk_total_bytes.is_some_and(|n| n > 0));
    }
}
