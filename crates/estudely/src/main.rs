//! The `estudely` binary: parse the command line and hand over to the library.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    estudely::main_with(estudely::cli::Cli::parse())
}
