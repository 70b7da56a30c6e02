//! `bankid-agent`: the agent page for manual BankID identification of a caller.
//!
//! ```text
//! bankid-agent [--listen ADDR] [--accounts FILE] [--config BANKID_TOML] [--tls-cert PEM --tls-key PEM]
//!              [--base-path /bankid] [--trust-proxy ADDR/PREFIX]... [--frame-ancestors ORIGIN]...
//! bankid-agent add-agent [--supervisor] NAME [--accounts FILE]
//! ```
//! With no BankID configured (no `--config`, no `BANKID_*` variables) it runs against an
//! embedded simulator and says so on the page — by default only while it listens on a loopback
//! address; on any other address only with `--simulator` (or `BANKID_SIMULATOR=1`).
//!
//! Sessions, login counters and agent actions go to the audit database of the BankID
//! configuration (`audit_database`); with the embedded simulator to `audit-sim.db` beside the
//! accounts file, so simulated records never mix with real ones and a restart keeps the login.
//!
//! Exit status: 0 after SIGTERM/SIGINT (pending identifications cancelled first), 2 when it
//! cannot start or fails while serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bankid::audit::{AuditSettings, Database};
use bankid::config::Endpoint;
use bankid::order::Engine;
use bankid_agent::accounts::{self, Accounts, Role};
use bankid_agent::error::StartupError;
use bankid_agent::limits::Limit;
use bankid_agent::proxy::{parse_frame_ancestor, BasePath, Cidr};
use bankid_agent::store::AgentDb;
use bankid_agent::{App, Options};
use bankid_backend::{Backend, BackendError, SimulatorPolicy};
use clap::{Parser, Subcommand};

/// The agent could not start, or stopped on an error; the reason is on stderr. The same
/// status clap uses for bad arguments, so scripts check one number.
const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "bankid-agent",
    version,
    about = "The agent page: identify a caller with BankID"
)]
struct Cli {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Agent accounts (TOML, argon2 hashes); created with one generated agent if missing.
    /// Re-read on SIGHUP. Also accepted after `add-agent`.
    #[arg(long, global = true, default_value = "bankid-agent-accounts.toml")]
    accounts: PathBuf,
    /// BankID configuration (TOML, as for libbankid); default: BANKID_* variables, else an
    /// embedded simulator while --listen is a loopback address.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Use the embedded simulator (no real identities) even on a non-loopback --listen address;
    /// also BANKID_SIMULATOR=1.
    #[arg(long)]
    simulator: bool,
    /// Serve HTTPS with this certificate chain (PEM); cookies are then marked Secure.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key for --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mark cookies Secure although served over plain HTTP (behind a TLS-terminating proxy
    /// that is not --trust-proxy'd; a trusted one says so with X-Forwarded-Proto).
    #[arg(long)]
    secure_cookies: bool,
    /// Serve the page, its assets and API under this path, e.g. /bankid (the page is then
    /// /bankid/); "/" or /-separated names of letters, digits, -, _, . and ~, no trailing /.
    #[arg(long, default_value = "/", value_parser = BasePath::parse)]
    base_path: BasePath,
    /// Believe X-Forwarded-For and X-Forwarded-Proto from peers in this block, e.g.
    /// 127.0.0.1/32 for a proxy on this host (repeat for more; default: from nobody).
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = Cidr::parse)]
    trust_proxy: Vec<Cidr>,
    /// Allow this origin (https://host[:port]) to show the page in a frame (repeat for more;
    /// default: no framing). The session cookie is SameSite=Strict: the framing page must be
    /// on the same site (registrable domain) as this page.
    #[arg(long, value_name = "ORIGIN", value_parser = parse_frame_ancestor)]
    frame_ancestors: Vec<String>,
    /// Failed logins allowed per agent name, e.g. 5/15m.
    #[arg(long, default_value = "5/15m", value_parser = Limit::parse)]
    login_limit: Limit,
    /// Failed logins allowed per client address (any names), e.g. 20/15m.
    #[arg(long, default_value = "20/15m", value_parser = Limit::parse)]
    login_address_limit: Limit,
    /// Identifications allowed per agent, e.g. 20/15m.
    #[arg(long, default_value = "20/15m", value_parser = Limit::parse)]
    identify_limit: Limit,
    /// Minutes without a request after which an agent must log in again.
    #[arg(long, default_value_t = 60)]
    session_idle_min: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Adds an agent (or gives an existing one a new password and the role asked for) and
    /// prints the generated password.
    AddAgent {
        /// The agent's user name.
        name: String,
        /// A supervisor: also sees the supervisor view (records, charts, evidence).
        #[arg(long)]
        supervisor: bool,
    },
}

fn main() -> ExitCode {
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // sqlx logs every statement at debug: at RUST_LOG=debug that is a line per request (each
    // one checks its session), drowning what the page says. Only when asked for by name.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("sqlx")) {
        logger.filter_module("sqlx", log::LevelFilter::Warn);
    }
    logger.format_target(false).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bankid-agent: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> Result<(), StartupError> {
    if let Some(Command::AddAgent { name, supervisor }) = &cli.command {
        let role = if *supervisor {
            Role::Supervisor
        } else {
            Role::Agent
        };
        let password = accounts::generate_password();
        accounts::add_agent(&cli.accounts, name, &password, role)?;
        println!(
            "{} {name:?} in {}: password {password}",
            role.as_str(),
            cli.accounts.display()
        );
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| StartupError::os("the async runtime", e))?;
    // Installed before the embedded simulator's directory exists: SIGTERM/SIGINT from here on
    // end in the drops below (orders cancelled at BankID, the directory removed).
    let mut signals = {
        let _in_rt = rt.enter();
        Signals::install()?
    };
    let (accounts, first) = Accounts::load_or_create(&cli.accounts)?;
    let agents = accounts.len();
    // The simulator identifies every valid number: without configuration it is the default
    // only where nobody else can reach the page. It runs at half speed: a phone order takes
    // about 4 s, long enough to watch every step on the page.
    let loopback = cli.listen.ip().to_canonical().is_loopback();
    let policy = if loopback {
        SimulatorPolicy::Default
    } else {
        SimulatorPolicy::OnlyWhenAsked
    };
    let backend =
        Backend::resolve(cli.config.as_deref(), policy, cli.simulator, 0.5).map_err(|e| {
            StartupError::Backend(if matches!(e, BackendError::NotConfigured) {
                format!(
                    "--listen {} is not a loopback address, so the embedded simulator is not used without asking: {e}",
                    cli.listen
                )
            } else {
                e.to_string()
            })
        })?;
    let label = match &backend.config.endpoint {
        _ if backend.is_simulated() => "simulator".to_string(),
        Endpoint::Test => "BankID test".to_string(),
        Endpoint::Production => "BankID".to_string(),
        Endpoint::Custom { url, .. } => url.clone(),
    };
    let mut config = backend.config.clone();
    if backend.is_simulated() {
        simulated_records(&mut config.audit, &cli.accounts)?;
    }
    let database = config.audit.database.clone();
    // Connected (and the schema brought up to date) before the engine's audit writer starts
    // its own connection in the background: one migrator at a time on a new file.
    let agent_db = match &database {
        Some(db) => Some(rt.block_on(AgentDb::connect(db))?),
        None => None,
    };
    let engine = Engine::new(config)?;
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(c), Some(k)) => Some(bankid_agent::tls_config(c, k)?),
        _ => None,
    };
    let mut opts = Options::new(accounts, engine);
    opts.simulated = backend.is_simulated().then(bankid_agent::simulator_persons);
    opts.backend_label = label.clone();
    opts.secure_cookies = cli.secure_cookies || tls.is_some();
    opts.login_limit = cli.login_limit;
    opts.login_address_limit = cli.login_address_limit;
    opts.base_path = cli.base_path.clone();
    opts.trusted_proxies = cli.trust_proxy.clone();
    opts.frame_ancestors = cli.frame_ancestors.clone();
    opts.identify_limit = cli.identify_limit;
    opts.session_idle = Duration::from_secs(cli.session_idle_min.max(1) * 60);
    opts.database = agent_db;
    let app = App::new(opts);

    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(cli.listen)
            .await
            .map_err(|e| StartupError::os(format!("listen on {}", cli.listen), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartupError::os(format!("listen on {}", cli.listen), e))?;
        if backend.is_simulated() {
            println!("BankID: embedded simulator (no BankID configured) — simulated, no real identities");
        } else {
            println!("BankID: {label}");
        }
        match &first {
            Some(f) => println!(
                "created {} with one agent — user name: {}  password: {}  (shown once; more with `bankid-agent add-agent NAME`)",
                cli.accounts.display(),
                f.name,
                f.password
            ),
            None => println!(
                "agents: {agents} in {}",
                cli.accounts.display()
            ),
        }
        match &database {
            Some(db) => println!("records, sessions and agent actions: {db}"),
            None => println!(
                "records: off (audit_database = \"off\"): sessions in memory, no supervisor records"
            ),
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        for proxy in &cli.trust_proxy {
            println!("trusting X-Forwarded-For/-Proto from {proxy}");
        }
        println!("open {scheme}://{addr}{} and log in", cli.base_path.page());
        let served = bankid_agent::serve(listener, app.clone(), tls);
        tokio::pin!(served);
        loop {
            tokio::select! {
                r = &mut served => {
                    return r.map_err(|e| StartupError::os(format!("serving on {addr}"), e));
                }
                signal = signals.recv() => match signal {
                    Signal::Stop => {
                        println!("stopping: cancelling pending identifications");
                        return Ok(());
                    }
                    Signal::Reload => reload(&cli, &backend, &app).await,
                },
            }
        }
    })?;
    drop(rt);
    drop(app);
    drop(backend);
    Ok(())
}

/// SIGHUP: re-reads the accounts file and the BankID configuration (`--config`, or the
/// `BANKID_*` variables and the files they name — a renewed certificate). New logins and new
/// identifications use them at once; identifications in progress finish on the configuration
/// they started with, and nobody is logged out (but agents removed from the file). What cannot
/// be read is logged, and what runs stays.
async fn reload(cli: &Cli, backend: &Backend, app: &App) {
    match Accounts::load(&cli.accounts) {
        Ok(accounts) => app.replace_accounts(accounts).await,
        Err(e) => log::error!("SIGHUP: accounts not reloaded, the running ones stay: {e}"),
    }
    if let Some(refused) = moved_database(backend, app) {
        log::error!("SIGHUP: BankID configuration not reloaded, the running one stays: {refused}");
        return;
    }
    backend.reload_into(app.engine());
}

/// Why a reload must be refused: the re-read configuration names another `audit_database`
/// than the running one. The engine would write its records there while the page's own
/// connection (sessions, counters, agent actions, the supervisor view) stayed on the old one:
/// moving the records takes a restart. `None` when it is the same, or the configuration cannot
/// be read (then [`Backend::reload_into`] says why and keeps the running one).
fn moved_database(backend: &Backend, app: &App) -> Option<String> {
    if backend.is_simulated() {
        return None;
    }
    let config = match &backend.config_file {
        Some(path) => bankid::config::Config::from_file(path),
        None => bankid::config::Config::from_env(),
    }
    .ok()?;
    let running = app.database().map(AgentDb::database);
    let new = config.audit.database.as_ref();
    if running == new {
        return None;
    }
    let shown = |d: Option<&Database>| d.map_or_else(|| "off".to_string(), |d| d.to_string());
    Some(format!(
        "audit_database changed from {} to {}; restart bankid-agent to move its records, sessions \
         and agent actions",
        shown(running),
        shown(new)
    ))
}

/// The embedded simulator's records, key and spool: beside the accounts file (`audit-sim.db`,
/// `audit-sim.key`, `audit-sim-spool/`), never in a real state directory — simulated
/// identifications are not real ones — and not in the simulator's own directory either, which
/// goes with the process: a restart keeps the agents' sessions and the records.
fn simulated_records(audit: &mut AuditSettings, accounts: &Path) -> Result<(), StartupError> {
    let accounts = std::path::absolute(accounts).map_err(|e| StartupError::io(accounts, e))?;
    let dir = accounts.parent().unwrap_or(Path::new("/"));
    audit.database = Some(Database::Sqlite(dir.join("audit-sim.db")));
    audit.key_file = dir.join("audit-sim.key");
    audit.spool_dir = dir.join("audit-sim-spool");
    Ok(())
}

/// What a signal asks for.
enum Signal {
    /// SIGTERM, SIGINT: cancel pending orders and exit.
    Stop,
    /// SIGHUP: re-read the configuration and the accounts.
    Reload,
}

/// SIGTERM, SIGINT and SIGHUP.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; needs a runtime context.
    fn install() -> Result<Signals, StartupError> {
        use tokio::signal::unix::{signal, SignalKind};
        let signals = |e| StartupError::os("signals", e);
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(signals)?,
            int: signal(SignalKind::interrupt()).map_err(signals)?,
            hup: signal(SignalKind::hangup()).map_err(signals)?,
        })
    }

    async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
