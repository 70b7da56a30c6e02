//! `bankid-ivr`: the IVR side of bankid-ivr.
//!
//! - `bankid-ivr identify PERSONAL_NUMBER`: for Cally Square's System block.
//! - `bankid-ivr flow check FILE…` / `bankid-ivr flow run FILE --dtmf DIGITS…`: Cally Square exports.
//! - `bankid-ivr fastagi --listen ADDR`: the identification flow over FastAGI.
//! - `bankid-ivr doctor [--config FILE] [--json]`: whether this host can identify callers.

mod fastagi;
mod identify;

use bankid_ivr_cli::{doctor, flow};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "bankid-ivr",
    version,
    about = "BankID phone identification for IVRs (Cally Square / Asterisk)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Identify a caller (for the System block): prints the result text, exit 0/1/2/3.
    Identify(identify::Args),
    /// Cally Square project exports: check or dry-run them.
    #[command(subcommand)]
    Flow(FlowCommand),
    /// Serve the identification flow over FastAGI (Cally Square's AGI block).
    Fastagi(fastagi::Args),
    /// Check, before the first call, whether this host can identify callers: exit 0 when no
    /// check failed (warnings allowed), 1 otherwise.
    Doctor(doctor::Args),
}

#[derive(Subcommand, Debug)]
enum FlowCommand {
    /// Validate exports: exit 0 only when every file is clean.
    Check {
        /// Export files (XML).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Execute an export with scripted DTMF, the bankid request block through libbankid.so.
    Run(flow::RunArgs),
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Identify(args) => identify::run(args),
        Command::Flow(FlowCommand::Check { files }) => flow::check_files(&files),
        Command::Flow(FlowCommand::Run(args)) => flow::run_file(args),
        Command::Fastagi(args) => fastagi::run(args),
        Command::Doctor(args) => doctor::run(args),
    };
    std::process::exit(code);
}
