//! The subcommands of the benchmark report, dispatched before the older
//! ones in main.rs: `latency` (RPCs next to their floor), `echo` (the
//! floor's partner process) and `report` (the table and the plots).

/// Runs one of these subcommands if the command line names it, and returns
/// the exit code; None for any other command line.
pub fn dispatch() -> Option<i32> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args.split_first()?;
    let res = match cmd.as_str() {
        "latency" => crate::latency::main(rest),
        "echo" => crate::floor::echo(rest).map_err(|e| format!("echo: {e}")),
        "report" => crate::report::main(rest),
        _ => return None,
    };
    Some(match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kata-cr-bench {cmd}: {e}");
            1
        }
    })
}
