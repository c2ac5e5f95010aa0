//! `aaa`: the operator's command for aaa. Everything is in the library crate `aaa_cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    aaa_cli::main()
}
