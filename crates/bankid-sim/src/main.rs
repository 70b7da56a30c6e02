//! `bankid-sim`: runs the simulator until SIGINT/SIGTERM.
//! First line on stdout: `listening https://127.0.0.1:PORT/rp/v6.0/`; logs go to stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A BankID RP API v6 simulator with mutual TLS.
#[derive(Parser, Debug)]
#[command(name = "bankid-sim", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory for ca.pem, client.pem, client.key, client-encrypted.key, client.p12
    /// (reused when present, written otherwise).
    #[arg(long)]
    certs: Option<PathBuf>,
    /// Scales every scenario duration (0.01 = 100x faster).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Latency added to every RP API response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Order lifetime until expiredTransaction, in seconds (before --speed).
    #[arg(long, default_value_t = 180)]
    order_lifetime_s: u64,
    /// Drop a connection whose TLS handshake has not finished after this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    handshake_timeout_ms: u64,
    /// Refuse request bodies larger than this (413, connection closed).
    #[arg(long, default_value_t = bankid_sim::MAX_BODY_BYTES)]
    max_body_bytes: usize,
}

/// The simulator could not start (address in use, certificates unreadable); the same status
/// clap gives bad arguments.
const EXIT_CANNOT_START: i32 = 2;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let args = Args::parse();
    let sim = match bankid_sim::Simulator::start(bankid_sim::SimConfig {
        listen: args.listen,
        speed: args.speed,
        latency_ms: args.latency_ms,
        order_lifetime: Duration::from_secs(args.order_lifetime_s),
        certs_dir: args.certs.clone(),
        handshake_timeout: Duration::from_millis(args.handshake_timeout_ms),
        max_body_bytes: args.max_body_bytes,
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bankid-sim: {e}");
            std::process::exit(EXIT_CANNOT_START);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening {}", sim.base_url());
    let _ = out.flush();
    if let Some(dir) = &args.certs {
        log::info!(
            "certificates in {} (password {})",
            dir.display(),
            bankid_sim::CLIENT_PASSWORD
        );
    }
    log::info!("control API at {}", sim.control_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    log::info!("stopping");
    sim.shutdown();
}
