//! Cally Square project exports: the format, the checker and the dry-run runner.

pub mod check;
pub mod format;
pub mod model;
pub mod run;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use bankid::messages::Language;

use crate::exit;
use crate::hook::{self, Hook};
use bankid_backend::{Backend, SimulatorPolicy};

/// `flow check FILE…`: prints every problem; exit 0 only when all files are clean.
pub fn check_files(files: &[PathBuf]) -> i32 {
    let mut bad = 0;
    for f in files {
        let problems = match std::fs::read_to_string(f) {
            Err(e) => vec![format!("cannot read: {e}")],
            Ok(text) => match model::Flow::parse(&text) {
                Err(e) => vec![e.to_string()],
                Ok(flow) => check::check(&flow)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            },
        };
        if problems.is_empty() {
            println!("{}: ok", f.display());
        } else {
            bad += 1;
            for p in problems {
                println!("{}: {p}", f.display());
            }
        }
    }
    if bad > 0 {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// Arguments of `flow run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The project export to run.
    pub file: PathBuf,
    /// DTMF entries, one per Menu read (`t` = nothing entered, `hangup` = the caller hangs up).
    #[arg(long, num_args = 0..)]
    pub dtmf: Vec<String>,
    /// Path of libbankid.so (default: $BANKID_LIB, then beside this program).
    #[arg(long)]
    pub lib: Option<PathBuf>,
    /// Library configuration (TOML) for bankid_init; default: BANKID_* variables, else an embedded simulator.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The caller hangs up this many milliseconds after the BankID order starts.
    #[arg(long)]
    pub hangup_after_ms: Option<u64>,
    /// Prompt language: sv or en.
    #[arg(long, default_value = "sv")]
    pub lang: String,
}

/// `flow run`: exit 0 when the call reached a queue or a hang-up block, 1 when the caller hung
/// up, 2 when the flow or the set-up is broken.
pub fn run_file(args: RunArgs) -> i32 {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", args.file.display());
            return exit::USAGE;
        }
    };
    let flow = match model::Flow::parse(&text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {e}", args.file.display());
            return exit::USAGE;
        }
    };
    // --lib, else the block's own `library` parameter, else the usual places.
    let from_block = flow
        .blocks
        .iter()
        .find_map(|b| b.param(format::param::LIBRARY))
        .map(PathBuf::from);
    let lib = match hook::locate(args.lib.as_deref().or(from_block.as_deref()))
        .and_then(|p| Hook::load(&p))
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("bankid-ivr flow run: {e}");
            return exit::USAGE;
        }
    };
    // A dry run: with nothing configured, the embedded simulator.
    let backend = match Backend::resolve(
        args.config.as_deref(),
        SimulatorPolicy::Default,
        false,
        0.25,
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bankid-ivr flow run: {e}");
            return exit::USAGE;
        }
    };
    if backend.is_simulated() {
        println!("(no BankID configured: libbankid.so talks to an embedded simulator — no real identities)");
    }
    if let Err(e) = lib.init(backend.config_file.as_deref()) {
        eprintln!("bankid-ivr flow run: bankid_init: {e}");
        return exit::USAGE;
    }
    println!("libbankid: {}", lib.path().display());
    let dir = args
        .file
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let script = run::Script {
        dtmf: args.dtmf.into_iter().collect::<VecDeque<_>>(),
        hangup_after: args.hangup_after_ms.map(Duration::from_millis),
        lang: Language::parse(&args.lang).unwrap_or_default(),
    };
    let mut runner = run::Runner::new(&dir, script, Some(&lib), std::io::stdout());
    // The company name the prompts say (the library checked the file at init).
    if let Some(c) = backend
        .config_file
        .as_deref()
        .and_then(|p| bankid::Config::from_file(p).ok())
    {
        runner.company = c.company_name;
    }
    if let Some(lab) = backend.lab() {
        // A System block's `bankid-ivr identify` talks to this run's simulator too.
        let path = |p: PathBuf| p.display().to_string();
        runner.child_env = vec![
            ("BANKID_URL".into(), lab.base_url()),
            ("BANKID_CA_FILE".into(), path(lab.ca_file())),
            ("BANKID_CERT_FILE".into(), path(lab.cert_file())),
            ("BANKID_KEY_FILE".into(), path(lab.key_file())),
            (
                "BANKID_POLL_INTERVAL_MS".into(),
                backend.config.poll_interval.as_millis().max(1).to_string(),
            ),
            ("BANKID_PRESET".into(), String::new()),
            ("BANKID_SIMULATOR".into(), String::new()),
            // Its records stay in the run's directory with the library's own.
            ("BANKID_AUDIT_DATABASE".into(), path(lab.audit_db_file())),
            ("BANKID_AUDIT_SPOOL_DIR".into(), path(lab.audit_spool_dir())),
            ("BANKID_AUDIT_KEY_FILE".into(), path(lab.audit_key_file())),
        ];
    }
    let ending = runner.run(&flow);
    let code = match &ending {
        run::Ending::Queue(q) => {
            println!("call reached queue {q}");
            exit::OK
        }
        run::Ending::Hangup => {
            println!("call ended by the flow");
            exit::OK
        }
        run::Ending::CallerHungUp => {
            println!("caller hung up");
            exit::FAILED
        }
        run::Ending::Broken(e) => {
            println!("flow broken: {e}");
            exit::USAGE
        }
    };
    runner.print_variables();
    lib.shutdown();
    drop(backend);
    code
}
