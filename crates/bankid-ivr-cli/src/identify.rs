//! `bankid-ivr identify PERSONAL_NUMBER`: for Cally Square's System block. Starts a phone
//! order, waits, prints the result text on one stdout line; progress and diagnostics go to
//! stderr. Exit status: 0 identified, 1 failed, 2 usage or configuration error, 3 no usable
//! answer from BankID.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bankid::messages::Language;
use bankid::rp::CallInitiator;
use bankid::{Engine, Personnummer, StartOptions, State};

use bankid_backend::{Backend, SimulatorPolicy};
use bankid_ivr_cli::exit;

/// Arguments of `identify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The caller's personal number: 12 digits (YYYYMMDDNNNN) or 10 with - or +.
    pub personal_number: String,
    /// Library configuration file (TOML); default: BANKID_* variables. Without either, the
    /// command refuses to run (exit 2) unless --simulator is given.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Use the embedded simulator (a lab run: it identifies every valid number, no real
    /// identities); also BANKID_SIMULATOR=1.
    #[arg(long)]
    pub simulator: bool,
    /// Who started the call: user (the customer called us) or RP (we called them).
    #[arg(long)]
    pub call_initiator: Option<String>,
    /// Language of the progress messages on stderr: sv or en.
    #[arg(long, default_value = "sv")]
    pub lang: String,
    /// Give up (and cancel at BankID) after this many seconds.
    #[arg(long, default_value_t = 240)]
    pub timeout_s: u64,
    /// The call's identifier for the audit record (e.g. the IVR's call id or Asterisk's
    /// uniqueid): at most 128 characters, no control characters.
    #[arg(long)]
    pub call_id: Option<String>,
}

/// Set by SIGINT/SIGTERM/SIGHUP: the caller hung up or the IVR gave up. The handlers are
/// installed before this returns, so a signal from then on is never the default "die at once"
/// (which would leave the order pending at BankID and the simulator's directory behind).
fn interrupt_flag() -> Arc<AtomicBool> {
    use tokio::signal::unix::{signal, SignalKind};
    let flag = Arc::new(AtomicBool::new(false));
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return flag;
    };
    let signals = {
        let _in_rt = rt.enter();
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        )
    };
    let (Ok(mut a), Ok(mut b), Ok(mut c)) = signals else {
        return flag;
    };
    let f = flag.clone();
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async {
                tokio::select! { _ = a.recv() => {}, _ = b.recv() => {}, _ = c.recv() => {} }
                f.store(true, Ordering::SeqCst);
            });
        });
    if spawned.is_err() {
        eprintln!("bankid-ivr identify: cannot watch for signals");
    }
    flag
}

/// Runs `identify`; returns the exit status.
pub fn run(args: Args) -> i32 {
    let lang = match Language::parse(&args.lang) {
        Some(l) => l,
        None => {
            eprintln!("bankid-ivr identify: --lang must be sv or en");
            return exit::USAGE;
        }
    };
    let initiator = match args.call_initiator.as_deref().map(CallInitiator::parse) {
        None => None,
        Some(Some(i)) => Some(i),
        Some(None) => {
            eprintln!("bankid-ivr identify: --call-initiator must be user or RP");
            return exit::USAGE;
        }
    };
    if let Some(id) = &args.call_id {
        if id.chars().count() > bankid::audit::record::MAX_TAG_CHARS
            || id.chars().any(char::is_control)
        {
            eprintln!(
                "bankid-ivr identify: --call-id must be at most {} characters without control \
                 characters",
                bankid::audit::record::MAX_TAG_CHARS
            );
            return exit::USAGE;
        }
    }
    let pnr = match Personnummer::parse(&args.personal_number) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bankid-ivr identify: invalid personal number: {e}");
            return exit::USAGE;
        }
    };
    let interrupted = interrupt_flag();
    let backend = match Backend::resolve(
        args.config.as_deref(),
        SimulatorPolicy::OnlyWhenAsked,
        args.simulator,
        0.25,
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bankid-ivr identify: {e}");
            return exit::USAGE;
        }
    };
    if backend.is_simulated() {
        eprintln!(
            "bankid-ivr identify: using the embedded simulator (asked for) — no real identities"
        );
    }
    let engine = match Engine::new(backend.config.clone()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bankid-ivr identify: {e}");
            return exit::USAGE;
        }
    };
    let id = match engine.start(
        &pnr,
        StartOptions {
            call_initiator: initiator,
            context: bankid::audit::CallContext {
                channel: bankid::audit::Channel::Identify,
                agent: None,
                call_id: args.call_id.clone(),
            },
            ..Default::default()
        },
    ) {
        Ok(id) => id,
        // An anti-vishing refusal is an answer about this caller, not a usage error: the
        // System block gets the failed text and the failed status.
        Err(e @ bankid::order::Error::Refused(_)) => {
            eprintln!("bankid-ivr identify: {e}");
            println!("{}", backend.config.result_failed);
            return exit::FAILED;
        }
        Err(e) => {
            eprintln!("bankid-ivr identify: {e}");
            return exit::USAGE;
        }
    };
    eprintln!("identifying {} …", pnr.masked());
    let until = Instant::now() + Duration::from_secs(args.timeout_s);
    let mut last = String::new();
    let view = loop {
        let v = match engine.poll(id) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("bankid-ivr identify: {e}");
                return exit::ERROR;
            }
        };
        let hint = v.hint_code.as_ref().map(|h| h.as_str().to_string());
        let error = v.error.as_ref().map(ToString::to_string);
        let label = match v.state {
            State::Pending => hint.unwrap_or_else(|| "starting".into()),
            State::Complete => "complete".into(),
            State::Failed => format!("failed: {}", hint.or(error).as_deref().unwrap_or("-")),
            State::Error => format!("error: {}", error.as_deref().unwrap_or("-")),
        };
        let line = format!("[{label}] {}", v.message.text(lang));
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if v.state.is_final() {
            break v;
        }
        if interrupted.load(Ordering::SeqCst) || Instant::now() >= until {
            eprintln!("stopping: cancelling the order at BankID");
            let _ = engine.cancel(id);
            std::thread::sleep(Duration::from_millis(300));
            let _ = engine.release(id);
            drop(engine);
            println!("{}", backend.config.result_failed);
            return exit::FAILED;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = engine.release(id);
    println!("{}", view.result_text);
    match view.state {
        State::Complete => exit::OK,
        State::Failed => exit::FAILED,
        _ => exit::ERROR,
    }
}
