//! Reading a container's usage into [`Stats`], the shape of Mesos's
//! `ResourceStatistics` behind `/monitor/statistics`, from the v1 and v2 kernel files.
//! Files of controllers a container does not use are missing and read as zero or `None`.

use std::path::{Path, PathBuf};

use super::files::{self, Keyed};
use super::Stats;
use crate::ContainerError;

/// A v1 memory limit at or above this is the kernel's "unlimited": `PAGE_COUNTER_MAX`
/// pages, which is `i64::MAX` rounded down to the page size (64 KiB pages at most).
const UNLIMITED_MEMORY: u64 = 0x7fff_ffff_ffff_0000;

const NANOS_PER_SEC: f64 = 1e9;
const MICROS_PER_SEC: f64 = 1e6;

/// `USER_HZ`, the unit of v1 `cpuacct.stat`.
pub(super) fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value; it takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// A v1 container's directory in each hierarchy stats come from, `None` when that
/// hierarchy is not mounted.
pub(super) struct V1Dirs {
    pub(super) cpuacct: Option<PathBuf>,
    pub(super) cpu: Option<PathBuf>,
    pub(super) memory: Option<PathBuf>,
    pub(super) pids: Option<PathBuf>,
}

pub(super) fn read_v1(dirs: &V1Dirs, clock_ticks: f64) -> Result<Stats, ContainerError> {
    let mut stats = Stats::default();
    if let Some(dir) = &dirs.cpuacct {
        // The nanosecond counters are exact; cpuacct.stat (in USER_HZ ticks) is all that
        // kernels before 4.6 offer.
        if let Some(user_ns) = files::read_u64_optional(&dir.join("cpuacct.usage_user"))? {
            let sys_ns = files::read_u64_optional(&dir.join("cpuacct.usage_sys"))?;
            stats.cpus_user_time_secs = user_ns as f64 / NANOS_PER_SEC;
            stats.cpus_system_time_secs = sys_ns.unwrap_or(0) as f64 / NANOS_PER_SEC;
        } else {
            let ticks = Keyed::read(dir.join("cpuacct.stat"))?;
            stats.cpus_user_time_secs = ticks.get_or_zero("user")? as f64 / clock_ticks;
            stats.cpus_system_time_secs = ticks.get_or_zero("system")? as f64 / clock_ticks;
        }
    }
    if let Some(dir) = &dirs.cpu {
        let cpu = Keyed::read(dir.join("cpu.stat"))?;
        stats.cpus_nr_periods = cpu.get_or_zero("nr_periods")?;
        stats.cpus_nr_throttled = cpu.get_or_zero("nr_throttled")?;
        stats.cpus_throttled_time_secs = cpu.get_or_zero("throttled_time")? as f64 / NANOS_PER_SEC;
    }
    if let Some(dir) = &dirs.memory {
        // The total_* keys include nested cgroups; plain rss/cache do not.
        let memory = Keyed::read(dir.join("memory.stat"))?;
        stats.mem_rss_bytes = memory.first_or_zero(&["total_rss", "rss"])?;
        stats.mem_cache_bytes = memory.first_or_zero(&["total_cache", "cache"])?;
        stats.mem_total_bytes =
            files::read_u64_optional(&dir.join("memory.usage_in_bytes"))?.unwrap_or(0);
        stats.mem_max_bytes = files::read_u64_optional(&dir.join("memory.max_usage_in_bytes"))?;
        stats.mem_limit_bytes = files::read_u64_optional(&dir.join("memory.limit_in_bytes"))?
            .filter(|&limit| limit < UNLIMITED_MEMORY);
        stats.oom_kills = Keyed::read(dir.join("memory.oom_control"))?.get_or_zero("oom_kill")?;
    }
    if let Some(dir) = &dirs.pids {
        stats.pids_current = files::read_u64_optional(&dir.join("pids.current"))?;
    }
    Ok(stats)
}

pub(super) fn read_v2(dir: &Path) -> Result<Stats, ContainerError> {
    // cpu.stat always has the usage keys; the throttling keys only come with the cpu
    // controller.
    let cpu = Keyed::read(dir.join("cpu.stat"))?;
    let memory = Keyed::read(dir.join("memory.stat"))?;
    let memory_max = dir.join("memory.max");
    let mem_limit_bytes = match files::read_optional(&memory_max)? {
        Some(text) if text.trim() == "max" => None,
        Some(text) => Some(files::parse_u64(&memory_max, &text)?),
        None => None,
    };
    Ok(Stats {
        cpus_user_time_secs: cpu.get_or_zero("user_usec")? as f64 / MICROS_PER_SEC,
        cpus_system_time_secs: cpu.get_or_zero("system_usec")? as f64 / MICROS_PER_SEC,
        cpus_nr_periods: cpu.get_or_zero("nr_periods")?,
        cpus_nr_throttled: cpu.get_or_zero("nr_throttled")?,
        cpus_throttled_time_secs: cpu.get_or_zero("throttled_usec")? as f64 / MICROS_PER_SEC,
        mem_rss_bytes: memory.get_or_zero("anon")?,
        mem_cache_bytes: memory.get_or_zero("file")?,
        mem_total_bytes: files::read_u64_optional(&dir.join("memory.current"))?.unwrap_or(0),
        mem_max_bytes: files::read_u64_optional(&dir.join("memory.peak"))?,
        mem_limit_bytes,
        oom_kills: Keyed::read(dir.join("memory.events"))?.get_or_zero("oom_kill")?,
        pids_current: files::read_u64_optional(&dir.join("pids.current"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::testutil::put;

    /// Compares a result with the expected stats, or with the expected error: the
    /// failing file (relative to `root`) and the message.
    fn compare(
        got: Result<Stats, ContainerError>,
        root: &Path,
        expected: Result<Stats, (&str, &str)>,
    ) {
        match (got, expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(err), Err((file, message))) => assert_eq!(
                err.to_string(),
                format!("parse cgroup file {}: {message}", root.join(file).display())
            ),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    const V1_MEMORY_STAT: &str = "cache 4096\nrss 8192\nrss_huge 0\nshmem 0\nmapped_file 0\n\
        hierarchical_memory_limit 134217728\ntotal_cache 1081344\ntotal_rss 2736128\n\
        total_rss_huge 0\ntotal_inactive_file 0\n";

    /// Reads v1 stats from controller directories holding `files` (relative paths
    /// start with the controller); an expected error is the failing file and the message.
    fn check_v1(files: &[(&str, &str)], expected: Result<Stats, (&str, &str)>) {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), files);
        let dirs = V1Dirs {
            cpuacct: Some(dir.path().join("cpuacct")),
            cpu: Some(dir.path().join("cpu")),
            memory: Some(dir.path().join("memory")),
            pids: Some(dir.path().join("pids")),
        };
        compare(read_v1(&dirs, clock_ticks()), dir.path(), expected);
    }

    #[test]
    fn v1_files_are_parsed() {
        // No file written: a container whose controllers report nothing yet.
        check_v1(&[], Ok(Stats::default()));
        let full = [
            ("cpuacct/cpuacct.usage_user", "1500000000\n"),
            ("cpuacct/cpuacct.usage_sys", "250000000\n"),
            ("cpuacct/cpuacct.stat", "user 999\nsystem 999\n"),
            (
                "cpu/cpu.stat",
                "nr_periods 120\nnr_throttled 7\nthrottled_time 350000000\nnr_bursts 0\nburst_time 0\n",
            ),
            ("memory/memory.stat", V1_MEMORY_STAT),
            ("memory/memory.usage_in_bytes", "3932160\n"),
            ("memory/memory.max_usage_in_bytes", "5242880\n"),
            ("memory/memory.limit_in_bytes", "134217728\n"),
            (
                "memory/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            ("pids/pids.current", "3\n"),
        ];
        let want = Stats {
            cpus_user_time_secs: 1.5,
            cpus_system_time_secs: 0.25,
            cpus_nr_periods: 120,
            cpus_nr_throttled: 7,
            cpus_throttled_time_secs: 0.35,
            mem_rss_bytes: 2_736_128,
            mem_cache_bytes: 1_081_344,
            mem_total_bytes: 3_932_160,
            mem_max_bytes: Some(5_242_880),
            mem_limit_bytes: Some(134_217_728),
            oom_kills: 2,
            pids_current: Some(3),
        };
        check_v1(&full, Ok(want.clone()));

        // Before Linux 4.6 only the tick counts exist, and older kernels have neither
        // total_* keys nor an oom_kill line.
        let ticks = clock_ticks();
        check_v1(
            &[
                ("cpuacct/cpuacct.stat", "user 250\nsystem 50\n"),
                ("memory/memory.stat", "cache 4096\nrss 8192\n"),
                ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
                (
                    "memory/memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\n",
                ),
            ],
            Ok(Stats {
                cpus_user_time_secs: 250.0 / ticks,
                cpus_system_time_secs: 50.0 / ticks,
                mem_rss_bytes: 8192,
                mem_cache_bytes: 4096,
                ..Stats::default()
            }),
        );
        check_v1(
            &[("pids/pids.current", "three\n")],
            Err(("pids/pids.current", "\"three\" is not an unsigned integer")),
        );
        check_v1(
            &[("memory/memory.stat", "total_rss 12k\n")],
            Err((
                "memory/memory.stat",
                "total_rss \"12k\" is not an unsigned integer",
            )),
        );
    }

    const CPU_STAT: &str = "usage_usec 2750000\nuser_usec 2000000\nsystem_usec 750000\n\
        core_sched.force_idle_usec 0\nnr_periods 40\nnr_throttled 4\nthrottled_usec 125000\n\
        nr_bursts 0\nburst_usec 0\n";
    const V2_MEMORY_STAT: &str = "anon 2650112\nfile 1204224\nkernel 389120\nkernel_stack 49152\n\
        pagetables 122880\nsock 0\nshmem 0\nfile_mapped 876544\n";
    const MEMORY_EVENTS: &str = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";

    fn check_v2(files: &[(&str, &str)], expected: Result<Stats, (&str, &str)>) {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), files);
        compare(read_v2(dir.path()), dir.path(), expected);
    }

    #[test]
    fn v2_files_are_parsed() {
        check_v2(&[], Ok(Stats::default()));
        // Without the cpu controller cpu.stat has only the usage keys.
        check_v2(
            &[(
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
            )],
            Ok(Stats {
                cpus_user_time_secs: 0.001,
                cpus_system_time_secs: 0.0005,
                ..Stats::default()
            }),
        );
        check_v2(
            &[
                ("cpu.stat", CPU_STAT),
                ("memory.stat", V2_MEMORY_STAT),
                ("memory.current", "4243456\n"),
                ("memory.peak", "8388608\n"),
                ("memory.max", "33554432\n"),
                ("memory.events", MEMORY_EVENTS),
                ("pids.current", "5\n"),
            ],
            Ok(Stats {
                cpus_user_time_secs: 2.0,
                cpus_system_time_secs: 0.75,
                cpus_nr_periods: 40,
                cpus_nr_throttled: 4,
                cpus_throttled_time_secs: 0.125,
                mem_rss_bytes: 2_650_112,
                mem_cache_bytes: 1_204_224,
                mem_total_bytes: 4_243_456,
                mem_max_bytes: Some(8_388_608),
                mem_limit_bytes: Some(33_554_432),
                oom_kills: 1,
                pids_current: Some(5),
            }),
        );
        check_v2(
            &[("memory.max", "max\n"), ("memory.current", "4096\n")],
            Ok(Stats {
                mem_total_bytes: 4096,
                ..Stats::default()
            }),
        );
        check_v2(
            &[("memory.max", "lots\n")],
            Err(("memory.max", "\"lots\" is not an unsigned integer")),
        );
        check_v2(
            &[("cpu.stat", "user_usec 1.5\n")],
            Err(("cpu.stat", "user_usec \"1.5\" is not an unsigned integer")),
        );
    }
}
