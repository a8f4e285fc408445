//! The seeded simulation (issue 5): 1,000 seeds of 100 agents and 10 frameworks under
//! random crashes, restarts and partitions, in four shards that the test harness runs
//! in parallel. `MANTLE_SIM_SEED=N` replays one seed with a trace of its last events;
//! `MANTLE_SIM_SEEDS=N` runs seeds 0..N instead of the usual 1,000 (`MANTLE_SIM_FIRST`
//! moves the start).

use mantle_testkit::{run, Config, Recovery};

const SEEDS: u64 = 1_000;
const SHARDS: u64 = 4;
/// Events kept for the report of a failing seed (`MANTLE_SIM_TRACE` changes it).
const TRACE: usize = 400;

fn trace() -> usize {
    env_u64("MANTLE_SIM_TRACE").map_or(TRACE, |n| n as usize)
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got '{value}'")),
    )
}

/// Runs this shard's seeds; a failing seed is run again with a trace for the report.
fn shard(index: u64) {
    let config = Config::default();
    if let Some(seed) = env_u64("MANTLE_SIM_SEED") {
        if index == 0 {
            let traced = Config {
                trace: trace(),
                ..config
            };
            match run(seed, &traced) {
                Ok(report) => println!("{report:?}"),
                Err(failure) => panic!("{failure}"),
            }
        }
        return;
    }
    let first = env_u64("MANTLE_SIM_FIRST").unwrap_or(0);
    let count = env_u64("MANTLE_SIM_SEEDS").unwrap_or(SEEDS);
    let mut runs = 0;
    let mut failed = Vec::new();
    let mut recovery = Recovery::default();
    for seed in (first..first + count).filter(|s| s % SHARDS == index) {
        runs += 1;
        match run(seed, &config) {
            Ok(report) => recovery += report.recovery,
            Err(failure) => {
                println!("seed {seed} failed: {}", failure.message);
                failed.push(failure);
            }
        }
    }
    if let Some(failure) = failed.first() {
        let seeds: Vec<u64> = failed.iter().map(|f| f.seed).collect();
        let traced = Config {
            trace: trace(),
            ..config
        };
        let report = run(failure.seed, &traced).err().unwrap_or(failure.clone());
        panic!(
            "{} of {runs} seeds failed: {seeds:?}\n{report}",
            seeds.len()
        );
    }
    println!("shard {index}: {runs} seeds passed; {recovery:?}");
}

#[test]
fn seeds_shard_0() {
    shard(0);
}

#[test]
fn seeds_shard_1() {
    shard(1);
}

#[test]
fn seeds_shard_2() {
    shard(2);
}

#[test]
fn seeds_shard_3() {
    shard(3);
}

/// The same seed runs the same way twice.
#[test]
fn a_seed_replays_alike() {
    let config = Config {
        chaos_secs: 60.0,
        ..Config::default()
    };
    let a = run(7, &config);
    let b = run(7, &config);
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                (a.events, a.tasks_launched, a.faults),
                (b.events, b.tasks_launched, b.faults)
            );
            assert!(a.tasks_launched > 0, "{a:?}");
        }
        (Err(a), Err(b)) => assert_eq!((a.at, a.message), (b.at, b.message)),
        (a, b) => panic!("the two runs differ: {a:?} and {b:?}"),
    }
}
