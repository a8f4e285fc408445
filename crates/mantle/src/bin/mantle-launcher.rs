//! `mantle-launcher CONFIG`: starts one container task as described by the launch config
//! the agent wrote, and stays its parent until it exits (see `mantle_containerizer::launch`).
//!
//! Kept to a bare `main`: it runs once per container launch, so start-up cost counts. It
//! carries the built-in executor (`mantle executor`), which a config may ask it to run in
//! the forked task process: on this machine loading the `mantle` binary costs about as
//! much CPU as the rest of a command task's launch.

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(config), None) = (args.next(), args.next()) else {
        eprintln!("usage: mantle-launcher CONFIG\n\nstarts the task described by the launch config CONFIG (usually <rundir>/launch.json)");
        std::process::exit(2);
    };
    std::process::exit(mantle_containerizer::launch::run_launcher_with(
        std::path::Path::new(&config),
        &[("executor", mantle_executor::main)],
    ));
}
