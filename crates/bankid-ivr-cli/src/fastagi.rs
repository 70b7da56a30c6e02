//! `bankid-ivr fastagi`: a FastAGI server running the identification flow for Cally Square's AGI
//! block (`agi://HOST:4573/bankid-identify`): `GET DATA` for the 12 digits with retries,
//! `STREAM FILE` prompts following the order's state, the order through the library, and
//! `SET VARIABLE` of the result. A hang-up (`HANGUP`, `-1`, `511`, a closed socket) releases the
//! order, which cancels it at BankID at once.
//!
//! FastAGI has no authentication: whoever reaches the port can key in anybody's number and make
//! BankID ask that person to confirm a call with us. So only `--allow`ed peers (default:
//! loopback) get a byte read, and nothing a peer sends can exhaust the process: lines are at
//! most [`agi::MAX_LINE`] bytes, the AGI environment at most [`agi::MAX_ENV_LINES`] lines and
//! has a deadline, every command's reply has a deadline, and at most `--max-calls` calls run
//! at once (one task each on one async thread; beyond the cap a connection is closed at once).
//! On SIGTERM/SIGINT it stops accepting, cancels every pending order at BankID, tells live
//! calls `BANKID_STATUS=error`, and exits 0.
//!
//! The protocol itself (lines, replies, command bytes and their quoting) is
//! [`bankid_ivr_cli::agi`]; this file is the call flow and the server around it.

mod health;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, timeout, timeout_at, Instant};

use bankid::messages::Language;
use bankid::order::Reloadable;
use bankid::{Personnummer, StartOptions, State};

use bankid_backend::{Backend, SimulatorPolicy};
use bankid_ivr_cli::agi::{self, Command, Environment, LineBuffer, Reply, ReplyParser, VarName};
use bankid_ivr_cli::exit;

/// The `GET DATA` timeout given to Asterisk, in milliseconds.
const GET_DATA_TIMEOUT_MS: u64 = 10_000;
/// How long a call may take to hear that the server is stopping.
const SHUTDOWN_TELL: Duration = Duration::from_secs(2);

/// Arguments of `fastagi`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (Asterisk's FastAGI default port is 4573).
    #[arg(long, default_value = "127.0.0.1:4573")]
    pub listen: SocketAddr,
    /// Peers allowed to connect, ADDR/PREFIX (IPv4 or IPv6; repeatable), e.g. the Asterisk host
    /// 10.0.0.7/32. Default: loopback only (127.0.0.0/8 and ::1). Anyone else is disconnected
    /// before a byte is read.
    #[arg(long = "allow", value_name = "ADDR/PREFIX", value_parser = Cidr::parse)]
    pub allow: Vec<Cidr>,
    /// Calls served at once; a connection beyond it is closed at once.
    #[arg(long, default_value_t = 256)]
    pub max_calls: usize,
    /// Library configuration (TOML); default: BANKID_* variables. Without either, the server
    /// refuses to start (exit 2) unless --simulator is given.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Use the embedded simulator (a lab run: it identifies every valid number, no real
    /// identities); also BANKID_SIMULATOR=1.
    #[arg(long)]
    pub simulator: bool,
    /// Default prompt language (a call may pass `lang=en`).
    #[arg(long, default_value = "sv")]
    pub lang: String,
    /// Default result variable (a call may pass `var=NAME`).
    #[arg(long, default_value = "__BANKID_RESULT")]
    pub var: String,
    /// Tries at keying in a valid number.
    #[arg(long, default_value_t = 3)]
    pub attempts: u32,
    /// Give up on an order (and cancel it) after this many seconds.
    #[arg(long, default_value_t = 180)]
    pub timeout_s: u64,
    /// Serve /metrics, /healthz and /readyz over HTTP on this address (off unless given); a
    /// non-loopback address also needs --metrics-public.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Allow --metrics on a non-loopback address (the text has no personal data, but call
    /// volumes and outcomes; firewall it).
    #[arg(long, requires = "metrics")]
    pub metrics_public: bool,
    /// Deadline for Asterisk's AGI environment (the `agi_*` lines), in milliseconds.
    #[arg(long, default_value_t = 10_000, hide = true)]
    pub env_deadline_ms: u64,
    /// Deadline for each command's reply, in milliseconds (GET DATA: plus its own timeout).
    #[arg(long, default_value_t = 30_000, hide = true)]
    pub reply_deadline_ms: u64,
}

/// Why an `--allow` value is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// The address part is not an address; the value.
    NotAnAddress(String),
    /// The prefix is not 0 to `max`.
    BadPrefix {
        /// The value.
        value: String,
        /// 32 or 128.
        max: u8,
    },
    /// Bits are set beyond the prefix (`10.0.0.5/24`).
    HostBits {
        /// The value.
        value: String,
        /// The network the prefix gives.
        network: IpAddr,
        /// The address as written.
        addr: IpAddr,
        /// The prefix.
        prefix: u8,
        /// 32 or 128.
        max: u8,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::NotAnAddress(s) => {
                write!(f, "{s:?}: not an IPv4 or IPv6 address (ADDR/PREFIX)")
            }
            CidrError::BadPrefix { value, max } => {
                write!(f, "{value:?}: the prefix must be 0 to {max}")
            }
            CidrError::HostBits {
                value,
                network,
                addr,
                prefix,
                max,
            } => write!(
                f,
                "{value:?}: bits set beyond /{prefix}; write {network}/{prefix} for the network or {addr}/{max} for the host"
            ),
        }
    }
}

impl std::error::Error for CidrError {}

/// An address block, `ADDR/PREFIX` (a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.7/32`, `10.0.0.0/24`, `::1/128`, `fd00::/8` or a bare address. Bits set
    /// beyond the prefix (`10.0.0.5/24`) are refused: the intent is unclear.
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| CidrError::NotAnAddress(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| CidrError::BadPrefix {
                    value: s.to_string(),
                    max,
                })?,
        };
        let cidr = Cidr { addr, prefix };
        let net = cidr.network();
        if net != addr {
            return Err(CidrError::HostBits {
                value: s.to_string(),
                network: net,
                addr,
                prefix,
                max,
            });
        }
        Ok(cidr)
    }

    /// The default: loopback only.
    pub fn loopback() -> Vec<Cidr> {
        vec![
            Cidr {
                addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            },
            Cidr {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ]
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(self.prefix))),
        }
    }

    /// Whether `ip` is in this block (an IPv4-mapped IPv6 peer counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                (u32::from(net) ^ u32::from(ip)) & mask32(self.prefix) == 0
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                (u128::from(net) ^ u128::from(ip)) & mask128(self.prefix) == 0
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a session stopped early.
#[derive(Debug)]
enum Stop {
    /// The caller hung up.
    HungUp,
    /// The connection broke, a limit was hit, or Asterisk said something unexpected.
    Broken(String),
}

type Step<T> = Result<T, Stop>;

/// At most 80 characters of something a peer sent, for a log line.
fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The server's settings, shared by every call.
struct Settings {
    allow: Vec<Cidr>,
    max_calls: usize,
    lang: Language,
    var: VarName,
    attempts: u32,
    order_timeout: Duration,
    env_deadline: Duration,
    reply_deadline: Duration,
}

/// One call's connection: the stream, the bytes of a line not yet complete and the reply
/// parser's state. Both live here, not in a read: a line that arrives in pieces (`HANG`, then
/// `UP\n`) or a reply that spans lines is kept across reads, watches and their timeouts.
struct Conn {
    stream: TcpStream,
    lines: LineBuffer,
    replies: ReplyParser,
}

fn broken(e: agi::Error) -> Stop {
    Stop::Broken(e.to_string())
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            lines: LineBuffer::new(),
            replies: ReplyParser::new(),
        }
    }

    /// The next line without its line end; `None` at the end of the stream. Cancel-safe:
    /// whatever was read stays in the buffer.
    async fn read_line(&mut self) -> Step<Option<String>> {
        loop {
            if let Some(line) = self.lines.next_line().map_err(broken)? {
                return Ok(Some(line));
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| Stop::Broken(e.to_string()))?;
            if n == 0 {
                return Ok(None);
            }
            self.lines.push(&chunk[..n]);
        }
    }

    /// The next reply (`100 Trying` included).
    async fn read_reply(&mut self) -> Step<Reply> {
        loop {
            let Some(line) = self.read_line().await? else {
                return Ok(self.replies.end_of_stream());
            };
            if let Some(reply) = self.replies.feed(&line).map_err(broken)? {
                return Ok(reply);
            }
        }
    }
}

/// `BANKID_STATUS`, the variable the dialplan branches on.
const STATUS: VarName = VarName::from_static("BANKID_STATUS");
/// `checked` / `not-checked` after an order with `iddoc=1` completed.
const ID_DOCUMENT: VarName = VarName::from_static("BANKID_ID_DOCUMENT");
/// The text the caller approved, after `mode=sign` completed.
const SIGNED_TEXT: VarName = VarName::from_static("BANKID_SIGNED_TEXT");

struct Session {
    conn: Conn,
    lang: Language,
    var: VarName,
    peer: SocketAddr,
    /// The caller's number as Asterisk gives it (`agi_callerid`; `None` for `unknown`), for the
    /// per-caller-ID anti-vishing limit and the audit record.
    caller_id: Option<String>,
    /// Asterisk's `agi_uniqueid`, for the audit record.
    unique_id: Option<String>,
    /// The AGI environment has been read: commands may be sent.
    environment_read: bool,
    /// A command was sent and its final reply has not been read yet.
    awaiting_reply: bool,
    reply_deadline: Duration,
    /// Signing and step-up options from the AGI arguments; `Err` names a bad one.
    order: Result<OrderOptions, String>,
}

/// `mode=sign`, `text=…` (percent-encoded: `%2C` for a comma), `format=markdown`, `pin=1`,
/// `iddoc=1` from the AGI arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct OrderOptions {
    mode: bankid::Mode,
    text: Option<String>,
    markdown: bool,
    pin_code: bool,
    id_document: bool,
}

/// `%XX` decoding of an AGI argument (commas and `&` separate options, so a text carries
/// them encoded). `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl OrderOptions {
    /// Reads the options; the first bad value is an error naming it (never its text). The
    /// text's length is checked by the engine against BankID's limits.
    fn parse<'a>(
        options: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<OrderOptions, String> {
        let flag = |k: &str, v: &str| match v {
            "1" | "yes" | "true" => Ok(true),
            "0" | "no" | "false" => Ok(false),
            _ => Err(format!("{k} must be 1 or 0")),
        };
        let mut o = OrderOptions::default();
        for (k, v) in options {
            match k {
                "mode" => o.mode = bankid::Mode::parse(v).ok_or("mode must be identify or sign")?,
                "text" => {
                    o.text =
                        Some(percent_decode(v).ok_or("text has a bad %-escape or is not UTF-8")?)
                }
                "format" => {
                    o.markdown = match v {
                        "plain" => false,
                        "markdown" | "simpleMarkdownV1" => true,
                        _ => return Err("format must be plain or markdown".into()),
                    }
                }
                "pin" => o.pin_code = flag(k, v)?,
                "iddoc" => o.id_document = flag(k, v)?,
                _ => {}
            }
        }
        if o.mode == bankid::Mode::Sign && o.text.as_deref().is_none_or(str::is_empty) {
            return Err("mode=sign needs text=…: the text the caller approves".into());
        }
        Ok(o)
    }

    /// The engine's options; the record names FastAGI, the call's `uniqueid` and caller ID.
    fn start_options(&self, caller_id: Option<String>, unique_id: Option<String>) -> StartOptions {
        let mut s = StartOptions {
            context: bankid::audit::CallContext {
                channel: bankid::audit::Channel::FastAgi,
                agent: None,
                call_id: unique_id,
            },
            mode: self.mode,
            user_visible_data: self.text.clone(),
            user_visible_data_format: self
                .markdown
                .then_some(bankid::rp::VisibleDataFormat::SimpleMarkdownV1),
            caller_id,
            ..Default::default()
        };
        if self.pin_code {
            s = s.require_pin_code();
        }
        if self.id_document {
            s = s.require_id_document();
        }
        s
    }
}

impl Session {
    /// Sends `cmd` and waits for its final reply: a hang-up in any form (`200 result=-1`,
    /// `511`, `HANGUP`, the end of the stream) is [`Stop::HungUp`]; any other reply but `200`
    /// breaks the session.
    async fn command(&mut self, cmd: &Command) -> Step<agi::Success> {
        let deadline = self.reply_deadline + cmd.reply_allowance();
        let exchange = async {
            self.awaiting_reply = true;
            self.conn
                .stream
                .write_all(format!("{cmd}\n").as_bytes())
                .await
                .map_err(|_| Stop::HungUp)?;
            loop {
                let reply = self.conn.read_reply().await?;
                if !reply.is_final() {
                    continue;
                }
                self.awaiting_reply = false;
                return match reply {
                    r if r.is_hangup() => Err(Stop::HungUp),
                    Reply::Success(s) => Ok(s),
                    r => Err(Stop::Broken(format!(
                        "Asterisk answered {:?}",
                        short(&r.to_string())
                    ))),
                };
            }
        };
        timeout(deadline, exchange).await.map_err(|_| {
            Stop::Broken(format!(
                "no reply to {} within {} ms",
                cmd.verb(),
                deadline.as_millis()
            ))
        })?
    }

    async fn play(&mut self, prompt: &str) -> Step<()> {
        self.command(&Command::stream_file(prompt))
            .await
            .map(|_| ())
    }

    async fn set_var(&mut self, name: &VarName, value: &str) -> Step<()> {
        self.command(&Command::set_variable(name, value))
            .await
            .map(|_| ())
    }

    /// The result variable gets `result`, `BANKID_STATUS` gets `status`.
    async fn set_result(&mut self, result: &str, status: &str) -> Step<()> {
        let var = self.var.clone();
        self.set_var(&var, result).await?;
        self.set_var(&STATUS, status).await
    }

    /// Waits up to `d` for Asterisk to say something unprompted (only a hang-up is expected).
    async fn watch(&mut self, d: Duration) -> Step<()> {
        tokio::select! {
            line = self.conn.read_line() => match line? {
                None => Err(Stop::HungUp),
                Some(l) => match self.conn.replies.feed(&l).map_err(broken)? {
                    Some(Reply::Hangup) => Err(Stop::HungUp),
                    _ => Ok(()),
                },
            },
            _ = sleep(d) => Ok(()),
        }
    }

    /// Reads the `agi_*` lines up to the empty line, within the deadline and the line cap.
    async fn read_environment(&mut self, deadline: Duration) -> Step<Environment> {
        let until = Instant::now() + deadline;
        let read = async {
            let mut env = Environment::default();
            loop {
                let Some(line) = self.conn.read_line().await? else {
                    return Err(Stop::HungUp);
                };
                if env.feed(&line).map_err(broken)? {
                    return Ok(env);
                }
            }
        };
        timeout_at(until, read).await.map_err(|_| {
            Stop::Broken(format!(
                "AGI environment not complete within {} ms",
                deadline.as_millis()
            ))
        })?
    }
}

/// Releases the order when dropped: a hang-up, a broken connection or a shutdown anywhere
/// cancels it at BankID.
struct OrderGuard(Arc<Reloadable>, u64);
impl Drop for OrderGuard {
    fn drop(&mut self) {
        let _ = self.0.release(self.1);
    }
}

async fn serve_call(
    stream: TcpStream,
    peer: SocketAddr,
    engine: Arc<Reloadable>,
    settings: Arc<Settings>,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let mut s = Session {
        conn: Conn::new(stream),
        lang: settings.lang,
        var: settings.var.clone(),
        peer,
        caller_id: None,
        unique_id: None,
        environment_read: false,
        awaiting_reply: false,
        reply_deadline: settings.reply_deadline,
        order: Ok(OrderOptions::default()),
    };
    let outcome = tokio::select! {
        r = session(&mut s, &engine, &settings) => Some(r),
        _ = stopping.wait_for(|stop| *stop) => None,
    };
    // The session's future is gone here: an order it held has been released (cancelled at
    // BankID).
    match outcome {
        Some(Ok(outcome)) => log::info!("call {peer}: {outcome}"),
        Some(Err(Stop::HungUp)) => log::info!("call {peer}: caller hung up"),
        Some(Err(Stop::Broken(e))) => log::warn!("call {peer}: closed: {e}"),
        None if s.environment_read => {
            let failed = engine.config().result_failed.clone();
            let tell = async {
                let cmds = format!(
                    "{}\n{}\n",
                    Command::set_variable(&s.var, &failed),
                    Command::set_variable(&STATUS, "error")
                );
                // The reply to a command the session was waiting on comes first.
                let expected = 2 + usize::from(s.awaiting_reply);
                s.conn.stream.write_all(cmds.as_bytes()).await.ok()?;
                let mut seen = 0;
                while seen < expected {
                    match s.conn.read_reply().await.ok()? {
                        Reply::EndOfStream => return None,
                        r if r.is_final() => seen += 1,
                        _ => {}
                    }
                }
                Some(())
            };
            let told = timeout(SHUTDOWN_TELL, tell).await.ok().flatten().is_some();
            log::warn!(
                "call {peer}: server stopping: BANKID_STATUS=error {}",
                if told { "set" } else { "sent (no reply)" }
            );
        }
        None => log::info!("call {peer}: server stopping before the call started"),
    }
}

async fn session(
    s: &mut Session,
    engine: &Arc<Reloadable>,
    settings: &Settings,
) -> Step<&'static str> {
    let env = s.read_environment(settings.env_deadline).await?;
    s.environment_read = true;
    s.caller_id = env.caller_id.clone();
    s.unique_id = env.unique_id.clone();
    // Options from the script URL's query or the AGI arguments: lang=en, var=NAME.
    for (k, v) in env.options() {
        match k {
            "lang" => s.lang = Language::parse(v).unwrap_or(s.lang),
            "var" if v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                if let Ok(name) = VarName::new(v) {
                    s.var = name;
                }
            }
            _ => {}
        }
    }
    s.order = OrderOptions::parse(env.options());
    identify(s, engine, settings).await
}

async fn identify(
    s: &mut Session,
    engine: &Arc<Reloadable>,
    settings: &Settings,
) -> Step<&'static str> {
    let failed_text = engine.config().result_failed.clone();
    let order = match s.order.clone() {
        Ok(o) => o,
        Err(e) => {
            // Fail closed: a misspelt option never turns into a weaker order.
            log::warn!("call {}: bad AGI argument: {e}; nothing started", s.peer);
            s.set_result(&failed_text, "error").await?;
            s.play("bankid-error").await?;
            return Ok("bad AGI arguments");
        }
    };
    let mut pnr = None;
    for _ in 0..settings.attempts.max(1) {
        let reply = s
            .command(&Command::GetData {
                file: "bankid-enter-pnr".into(),
                timeout_ms: GET_DATA_TIMEOUT_MS,
                max_digits: 12,
            })
            .await?;
        let digits: String = reply.result.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            s.play("bankid-invalid-entry").await?;
            continue;
        }
        match Personnummer::parse_dtmf(&digits) {
            Ok(p) => {
                pnr = Some(p);
                break;
            }
            Err(e) => {
                log::info!(
                    "call {}: number refused locally ({e}); re-prompting",
                    s.peer
                );
                s.play("bankid-invalid-pnr").await?;
            }
        }
    }
    let Some(pnr) = pnr else {
        s.set_result(&failed_text, "no-number").await?;
        s.play("bankid-failed").await?;
        return Ok("no valid number entered");
    };
    // The caller ID counts against the per-caller anti-vishing limit.
    let options = order.start_options(s.caller_id.clone(), s.unique_id.clone());
    let sign = order.mode == bankid::Mode::Sign;
    for p in bankid_ivr_cli::prompts::before_start(sign, order.pin_code, order.id_document) {
        s.play(p).await?;
    }
    let id = match engine.start(&pnr, options) {
        Ok(id) => id,
        Err(bankid::order::Error::Refused(r)) => {
            // Nothing reached BankID; the engine logged the security event.
            log::warn!("call {}: refused before BankID: {r}", s.peer);
            s.set_result(&failed_text, "blocked").await?;
            s.play("bankid-blocked").await?;
            return Ok("refused by an anti-vishing limit");
        }
        Err(e) => {
            log::warn!("call {}: {e}", s.peer);
            s.set_result(&failed_text, "error").await?;
            s.play("bankid-error").await?;
            return Ok("could not start");
        }
    };
    let guard = OrderGuard(engine.clone(), id);
    s.play("bankid-open-app").await?;
    let until = Instant::now() + settings.order_timeout;
    let mut last_prompt = "";
    let view = loop {
        let v = engine.poll(id).map_err(|e| Stop::Broken(e.to_string()))?;
        if v.state.is_final() {
            break v;
        }
        let prompt = v.guidance().prompt;
        if prompt != last_prompt {
            s.play(prompt).await?;
            last_prompt = prompt;
        }
        if Instant::now() >= until {
            let _ = engine.cancel(id);
            continue;
        }
        s.watch(Duration::from_millis(50)).await?;
    };
    let (status, prompt, outcome) = match view.state {
        State::Complete => ("complete", "bankid-success", "identified"),
        State::Failed => ("failed", "bankid-failed", "failed"),
        _ => ("error", "bankid-error", "error"),
    };
    s.set_result(&view.result_text, status).await?;
    if view.state == State::Complete && order.id_document {
        let checked = if view.step_up.mrtd {
            "checked"
        } else {
            "not-checked"
        };
        s.set_var(&ID_DOCUMENT, checked).await?;
    }
    if let Some(text) = view.signed_text.as_deref() {
        s.set_var(&SIGNED_TEXT, text).await?;
    }
    if view.guidance().fraud_warning {
        log::warn!("SECURITY: call {}: the caller declined the call in the BankID app (possible fraud attempt)", s.peer);
    }
    drop(guard);
    s.play(prompt).await?;
    Ok(outcome)
}

/// Accepts calls until SIGTERM/SIGINT, then stops the live ones; on SIGHUP calls `reload`.
/// Returns the exit status.
async fn serve(
    listener: TcpListener,
    engine: Arc<Reloadable>,
    settings: Arc<Settings>,
    mut signals: Signals,
    reload: impl Fn(),
) -> i32 {
    let slots = Arc::new(Semaphore::new(settings.max_calls));
    let (stop, stopping) = watch::channel(false);
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            signal = signals.next() => match signal {
                Signal::Stop => break,
                Signal::Reload => {
                    reload();
                    continue;
                }
            },
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::ZERO;
                a
            }
            Err(e) => {
                // EMFILE and the like: the listener stays readable, so back off instead of
                // spinning.
                backoff = (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(1));
                log::warn!("accept failed: {e}; next try in {} ms", backoff.as_millis());
                tokio::select! {
                    signal = signals.next() => match signal {
                        Signal::Stop => break,
                        Signal::Reload => {
                            reload();
                            continue;
                        }
                    },
                    _ = sleep(backoff) => continue,
                }
            }
        };
        if !settings.allow.iter().any(|c| c.contains(peer.ip())) {
            log::warn!("refused a connection from {peer}: not in --allow");
            drop(stream);
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            log::warn!(
                "refused a connection from {peer}: {} calls already (--max-calls)",
                settings.max_calls
            );
            drop(stream);
            continue;
        };
        tokio::spawn(serve_call(
            stream,
            peer,
            engine.clone(),
            settings.clone(),
            stopping.clone(),
            slot,
        ));
    }
    drop(listener);
    let live = settings.max_calls - slots.available_permits();
    log::warn!(
        "stopping: {live} live call(s) get BANKID_STATUS=error, their orders are cancelled at BankID"
    );
    let _ = stop.send(true);
    let all = u32::try_from(settings.max_calls).unwrap_or(u32::MAX);
    let _ = timeout(
        SHUTDOWN_TELL + Duration::from_secs(1),
        slots.acquire_many(all),
    )
    .await;
    exit::OK
}

/// What a signal asks for.
enum Signal {
    /// SIGTERM, SIGINT: stop accepting, end the live calls, exit.
    Stop,
    /// SIGHUP: re-read the BankID configuration (a renewed certificate).
    Reload,
}

/// SIGTERM, SIGINT and SIGHUP.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

/// Runs the server until SIGTERM/SIGINT (SIGHUP reloads the configuration); returns the exit
/// status.
pub fn run(args: Args) -> i32 {
    let lang = match Language::parse(&args.lang) {
        Some(l) => l,
        None => {
            eprintln!("bankid-ivr fastagi: --lang must be sv or en");
            return exit::USAGE;
        }
    };
    let var = match VarName::new(&args.var) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bankid-ivr fastagi: --var: {e}");
            return exit::USAGE;
        }
    };
    if let Some(m) = args.metrics {
        if !m.ip().is_loopback() && !args.metrics_public {
            eprintln!(
                "bankid-ivr fastagi: --metrics {m} is not a loopback address: add --metrics-public \
                 to serve metrics there (and firewall the port)"
            );
            return exit::USAGE;
        }
    }
    if args.max_calls == 0 || args.max_calls > Semaphore::MAX_PERMITS {
        eprintln!("bankid-ivr fastagi: --max-calls must be at least 1");
        return exit::USAGE;
    }
    // One thread serves every call: each waits on Asterisk or on a 50 ms tick, nothing more.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bankid-ivr fastagi: {e}");
            return exit::USAGE;
        }
    };
    // Signals from here on stop the server cleanly (the embedded simulator's directory too).
    let signals = {
        let _in_rt = rt.enter();
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(int), Ok(hup)) => Signals { term, int, hup },
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                eprintln!("bankid-ivr fastagi: signals: {e}");
                return exit::USAGE;
            }
        }
    };
    let backend = match Backend::resolve(
        args.config.as_deref(),
        SimulatorPolicy::OnlyWhenAsked,
        args.simulator,
        0.25,
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bankid-ivr fastagi: {e}");
            return exit::USAGE;
        }
    };
    let engine = match Reloadable::new(backend.config.clone()) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("bankid-ivr fastagi: {e}");
            return exit::USAGE;
        }
    };
    let listener = match rt.block_on(TcpListener::bind(args.listen)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bankid-ivr fastagi: cannot listen on {}: {e}", args.listen);
            return exit::USAGE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let allow = if args.allow.is_empty() {
        Cidr::loopback()
    } else {
        args.allow.clone()
    };
    let mut metrics_at = None;
    if let Some(m) = args.metrics {
        match rt.block_on(TcpListener::bind(m)) {
            Ok(l) => {
                metrics_at = Some(l.local_addr().map(|a| a.to_string()).unwrap_or_default());
                rt.spawn(health::serve(l, engine.clone()));
            }
            Err(e) => {
                eprintln!("bankid-ivr fastagi: cannot listen on --metrics {m}: {e}");
                return exit::USAGE;
            }
        }
    }
    println!("listening agi://{addr}/bankid-identify");
    if let Some(at) = metrics_at {
        use std::io::Write;
        // Not println!: a reader that stopped reading must not end the server.
        let _ = writeln!(std::io::stdout(), "metrics http://{at}/metrics");
    }
    eprintln!(
        "bankid-ivr fastagi: allowing {} (at most {} calls)",
        allow
            .iter()
            .map(Cidr::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        args.max_calls
    );
    if backend.is_simulated() {
        eprintln!(
            "bankid-ivr fastagi: using the embedded simulator (asked for) — no real identities"
        );
    }
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    let settings = Arc::new(Settings {
        allow,
        max_calls: args.max_calls,
        lang,
        var,
        attempts: args.attempts,
        order_timeout: Duration::from_secs(args.timeout_s),
        env_deadline: Duration::from_millis(args.env_deadline_ms.max(1)),
        reply_deadline: Duration::from_millis(args.reply_deadline_ms.max(1)),
    });
    // SIGHUP: new calls use the re-read configuration, calls in progress finish on theirs.
    let reload = || backend.reload_into(&engine);
    let code = rt.block_on(serve(listener, engine.clone(), settings, signals, reload));
    // Calls still running are dropped with the runtime: their orders are released.
    drop(rt);
    // Cancels whatever is still pending and waits until BankID has been told (a few seconds at
    // most), while the embedded simulator (if any) still runs.
    engine.shutdown();
    drop(engine);
    drop(backend);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn order_options_come_from_the_agi_arguments_and_bad_ones_are_refused() {
        let parse =
            |args: &[(&'static str, &'static str)]| OrderOptions::parse(args.iter().copied());
        assert_eq!(parse(&[("lang", "en")]), Ok(OrderOptions::default()));
        let o = parse(&[
            ("mode", "sign"),
            ("text", "Flytt till Storgatan 1%2C Ort %25"),
            ("format", "markdown"),
            ("pin", "1"),
            ("iddoc", "yes"),
        ])
        .unwrap();
        assert_eq!(o.mode, bankid::Mode::Sign);
        assert_eq!(o.text.as_deref(), Some("Flytt till Storgatan 1, Ort %"));
        assert!(o.markdown && o.pin_code && o.id_document);
        let s = o.start_options(Some("4670".into()), Some("1700000000.9".into()));
        assert_eq!(s.context.channel, bankid::audit::Channel::FastAgi);
        assert_eq!(s.context.call_id.as_deref(), Some("1700000000.9"));
        assert_eq!(s.caller_id.as_deref(), Some("4670"));
        let r = s.requirement.unwrap();
        assert_eq!((r.pin_code, r.mrtd), (Some(true), Some(true)));
        for (args, want) in [
            (&[("mode", "approve")][..], "mode must be"),
            (&[("mode", "sign")][..], "needs text"),
            (&[("pin", "2")][..], "pin must be"),
            (&[("iddoc", "ja")][..], "iddoc must be"),
            (&[("text", "bad %zz")][..], "%-escape"),
            (&[("format", "html")][..], "format must be"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn cidr_parses_hosts_networks_and_both_families() {
        let c = Cidr::parse("10.0.0.7/32").unwrap();
        assert!(c.contains(ip("10.0.0.7")));
        assert!(!c.contains(ip("10.0.0.8")));
        let c = Cidr::parse("10.0.0.7").unwrap();
        assert_eq!(c.to_string(), "10.0.0.7/32");
        let c = Cidr::parse("192.168.4.0/22").unwrap();
        assert!(c.contains(ip("192.168.7.255")));
        assert!(!c.contains(ip("192.168.8.0")));
        let c = Cidr::parse("fd00::/8").unwrap();
        assert!(c.contains(ip("fd12:3456::1")));
        assert!(!c.contains(ip("fe80::1")));
        assert!(!c.contains(ip("10.0.0.1")), "families never mix");
        let c = Cidr::parse("::1/128").unwrap();
        assert!(c.contains(ip("::1")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn cidr_refuses_what_is_unclear() {
        for bad in [
            "10.0.0.5/24",
            "10.0.0.0/33",
            "::1/129",
            "10.0.0/8",
            "host/32",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Cidr::parse("10.0.0.5/24")
            .unwrap_err()
            .to_string()
            .contains("10.0.0.0/24"));
        assert_eq!(
            Cidr::parse("10.0.0.5/24").unwrap_err().to_string(),
            "\"10.0.0.5/24\": bits set beyond /24; write 10.0.0.0/24 for the network or 10.0.0.5/32 for the host"
        );
        assert_eq!(
            Cidr::parse("host/32").unwrap_err().to_string(),
            "\"host/32\": not an IPv4 or IPv6 address (ADDR/PREFIX)"
        );
        assert_eq!(
            Cidr::parse("::1/129").unwrap_err().to_string(),
            "\"::1/129\": the prefix must be 0 to 128"
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_their_ipv4_block() {
        let c = Cidr::parse("127.0.0.1/32").unwrap();
        assert!(c.contains(ip("::ffff:127.0.0.1")));
        assert!(!c.contains(ip("::ffff:127.0.0.2")));
    }

    #[test]
    fn the_default_is_loopback_only() {
        let d = Cidr::loopback();
        let allowed = |s: &str| d.iter().any(|c| c.contains(ip(s)));
        assert!(allowed("127.0.0.1") && allowed("127.4.5.6") && allowed("::1"));
        assert!(!allowed("10.0.0.7") && !allowed("::2") && !allowed("0.0.0.0"));
    }

    /// A session on a local socket whose peer answers every command with `reply`; the
    /// command's outcome and the line the peer received.
    async fn exchange(reply: &'static str, cmd: Command) -> (Step<agi::Success>, String) {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            BufReader::new(r).read_line(&mut line).await.unwrap();
            w.write_all(reply.as_bytes()).await.unwrap();
            line
        });
        let mut s = Session {
            conn: Conn::new(TcpStream::connect(addr).await.unwrap()),
            lang: Language::Sv,
            var: VarName::new("R").unwrap(),
            peer: addr,
            caller_id: None,
            unique_id: None,
            environment_read: true,
            awaiting_reply: false,
            reply_deadline: Duration::from_secs(5),
            order: Ok(OrderOptions::default()),
        };
        let outcome = s.command(&cmd).await;
        assert!(!s.awaiting_reply || outcome.is_err());
        (outcome, peer.await.unwrap())
    }

    #[tokio::test]
    async fn trying_waits_for_the_final_reply() {
        let (r, sent) = exchange(
            "100 result=0 Trying...\n200 result=5\n",
            Command::stream_file("bankid-rfa1"),
        )
        .await;
        assert_eq!(sent, "STREAM FILE bankid-rfa1 \"\"\n");
        assert_eq!(r.unwrap().result, "5");
    }

    #[tokio::test]
    async fn every_hangup_form_is_a_hang_up() {
        for reply in [
            "200 result=-1\n",
            "511 Command Not Permitted on a dead channel or intercepted channel\n",
            "HANGUP\n",
            "",
        ] {
            let (r, _) = exchange(reply, Command::stream_file("x")).await;
            assert!(matches!(r, Err(Stop::HungUp)), "{reply:?}: {r:?}");
        }
    }

    #[tokio::test]
    async fn a_usage_block_or_510_breaks_the_session() {
        let (r, _) = exchange(
            "520-Invalid command syntax.  Proper usage follows:\nUsage: x\n520 End of proper usage.\n",
            Command::stream_file("x"),
        )
        .await;
        assert!(
            matches!(&r, Err(Stop::Broken(e)) if e.contains("520-Invalid command syntax")),
            "{r:?}"
        );
        let (r, _) = exchange(
            "510 Invalid or unknown command\n",
            Command::stream_file("x"),
        )
        .await;
        assert!(
            matches!(&r, Err(Stop::Broken(e)) if e.contains("510")),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn a_value_with_a_newline_goes_out_as_one_line() {
        let (r, sent) = exchange(
            "200 result=1\n",
            Command::set_variable(&STATUS, "Anna\nEXEC Dial x"),
        )
        .await;
        assert!(r.is_ok());
        assert_eq!(sent, "SET VARIABLE BANKID_STATUS \"Anna EXEC Dial x\"\n");
    }
}
