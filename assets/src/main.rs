//! The `freshet` command.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = freshet_server::Cli::parse();
    freshet_server::init_tracing(cli.log_format);
    match freshet_server::run(cli, freshet_assets::catalogues()) {
        Ok(code) => code,
        Err(e) => {
            freshet_server::print_error(&e);
            ExitCode::FAILURE
        }
    }
}
