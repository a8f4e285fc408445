//! A seeded simulation of a whole Mantle cluster in one process and in simulated time:
//! the real master core and agent cores, driven the way their event loops drive them,
//! with simulated executors, schedulers and network, and faults chosen by the seed.
//! One seed always replays the same run.
//!
//! (The model, the invariants and their exceptions are documented below once settled.)

mod agent;
mod executor;
mod faults;
mod master;
mod net;
mod queue;
mod scheduler;
mod truth;
mod world;

pub use world::{Config, Failure, Report};

/// Runs one seed.
pub fn run(seed: u64, config: &Config) -> Result<Report, Failure> {
    world::World::new(seed, config.clone()).run()
}
