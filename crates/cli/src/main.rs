//! The `costfloor` binary: argument parsing and glue. Everything it computes comes
//! from the libraries; this crate reads files, renders output and sets exit codes.

mod bench;
mod calibrate;
mod chart;
mod commands;
mod from_ledger;
mod from_usage;
mod html;
mod keys;
mod keys_db;
mod output;
mod quality;
mod search;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc: the gateway allocates per request on two or more
/// threads, where glibc's arena locks showed up in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for bad input (flags, files, ids): the user can fix it.
pub const EXIT_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = match commands::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(EXIT_INPUT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            if let Some(commands::ExitWith(code)) = err.downcast_ref::<commands::ExitWith>() {
                return ExitCode::from(*code);
            }
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            if err.downcast_ref::<commands::InputFailure>().is_some() {
                ExitCode::from(EXIT_INPUT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
