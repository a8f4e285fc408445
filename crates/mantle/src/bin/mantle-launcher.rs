//! `mantle-launcher CONFIG`: starts one container task as described by the launch config
//! the agent wrote, and stays its parent until it exits (see `mantle_containerizer::launch`).
//! `mantle-launcher --serve`: the agent's long-lived launcher, which forks one of those
//! per config path it reads on stdin (see `mantle_containerizer::launch::serve`).
//!
//! Kept to a bare `main`: start-up cost counts. It carries the built-in executor
//! (`mantle executor`), which a config may ask it to run in the forked task process: on
//! this machine loading the `mantle` binary costs about as much CPU as the rest of a
//! command task's launch.

const BUILTINS: &[mantle_containerizer::launch::Builtin] = &[("executor", mantle_executor::main)];

fn main() {
    let mut args = std::env::args_os().skip(1);
    let code = match (args.next(), args.next()) {
        (Some(flag), None) if flag == "--serve" => mantle_containerizer::launch::serve(BUILTINS),
        (Some(config), None) => {
            mantle_containerizer::launch::run_launcher_with(std::path::Path::new(&config), BUILTINS)
        }
        _ => {
            eprintln!("usage: mantle-launcher CONFIG | mantle-launcher --serve\n\nstarts the task described by the launch config CONFIG (usually <rundir>/launch.json);\nwith --serve, starts one for each config path read on stdin and reports on stdout");
            2
        }
    };
    std::process::exit(code);
}
