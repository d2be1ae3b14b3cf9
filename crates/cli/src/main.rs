//! The `revkv` command: a thin shell over the library, for trying a store out and scripting it.

#![forbid(unsafe_code)]

mod cli;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // Decided before `run` consumes the arguments: the error line takes the command's format.
    let json = args.wants_json();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", cli::error_line(&failure, json));
            ExitCode::FAILURE
        }
    }
}
