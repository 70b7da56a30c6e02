//! `bankid-ivr fastagi`: a FastAGI server running the identification flow for Cally Square's AGI
//! block (`agi://HOST:4573/bankid-identify`): `GET DATA` for the 12 digits with retries,
//! `STREAM FILE` prompts following the order's state, the order through the library, and
//! `SET VARIABLE` of the result. A hang-up (`HANGUP`, `-1`, `511`, a closed socket) releases the
//! order, which cancels it at BankID at once. One thread per call; the engine is shared.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bankid::messages::Language;
use bankid::{Engine, Personnummer, StartOptions, State};

use crate::prompts;
use bankid_ivr_cli::backend::{Backend, SimulatorPolicy};

/// Arguments of `fastagi`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (Asterisk's FastAGI default port is 4573).
    #[arg(long, default_value = "127.0.0.1:4573")]
    pub listen: SocketAddr,
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
}

/// Why a session stopped early.
#[derive(Debug)]
enum Stop {
    /// The caller hung up.
    HungUp,
    /// The connection broke or Asterisk said something unexpected.
    Broken(String),
}

type Step<T> = Result<T, Stop>;

/// One AGI reply: `200 result=N (data)`.
#[derive(Debug)]
struct Reply {
    result: String,
    /// The parenthesised part, e.g. `timeout`.
    #[allow(dead_code)]
    data: Option<String>,
}

struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    lang: Language,
    var: String,
    peer: String,
}

fn parse_reply(line: &str) -> Step<Reply> {
    let line = line.trim_end();
    if line == "HANGUP" {
        return Err(Stop::HungUp);
    }
    let (code, rest) = line.split_once(' ').unwrap_or((line, ""));
    match code {
        "200" => {
            let rest = rest.trim();
            let value = rest
                .strip_prefix("result=")
                .ok_or_else(|| Stop::Broken(format!("unexpected reply {line:?}")))?;
            let (result, data) = match value.split_once(' ') {
                Some((r, d)) => (
                    r.to_string(),
                    Some(
                        d.trim()
                            .trim_start_matches('(')
                            .trim_end_matches(')')
                            .to_string(),
                    ),
                ),
                None => (value.to_string(), None),
            };
            if result == "-1" {
                return Err(Stop::HungUp);
            }
            Ok(Reply { result, data })
        }
        "511" => Err(Stop::HungUp),
        _ => Err(Stop::Broken(format!("Asterisk answered {line:?}"))),
    }
}

impl Session {
    fn read_line(&mut self) -> Step<String> {
        let mut line = String::new();
        loop {
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(Stop::HungUp),
                Ok(_) => return Ok(line),
                Err(e)
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                        && !line.is_empty() =>
                {
                    continue
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(Stop::Broken("timeout".into()))
                }
                Err(e) => return Err(Stop::Broken(e.to_string())),
            }
        }
    }

    fn command(&mut self, cmd: &str) -> Step<Reply> {
        self.writer
            .write_all(format!("{cmd}\n").as_bytes())
            .map_err(|_| Stop::HungUp)?;
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(120)))
            .ok();
        loop {
            let line = self.read_line()?;
            if line.trim().is_empty() {
                continue;
            }
            return parse_reply(&line);
        }
    }

    fn play(&mut self, prompt: &str) -> Step<()> {
        self.command(&format!("STREAM FILE {prompt} \"\""))
            .map(|_| ())
    }

    fn set_var(&mut self, name: &str, value: &str) -> Step<()> {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        self.command(&format!("SET VARIABLE {name} \"{escaped}\""))
            .map(|_| ())
    }

    /// Waits up to `d` for Asterisk to say something unprompted (only a hang-up is expected).
    fn watch(&mut self, d: Duration) -> Step<()> {
        self.reader.get_ref().set_read_timeout(Some(d)).ok();
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(Stop::HungUp),
            Ok(_) if line.trim() == "HANGUP" => Err(Stop::HungUp),
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(()),
            Err(_) => Err(Stop::HungUp),
        }
    }
}

fn serve_call(stream: TcpStream, engine: &Engine, args: &Args) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut s = Session {
        reader: BufReader::new(stream),
        writer,
        lang: Language::parse(&args.lang).unwrap_or_default(),
        var: args.var.clone(),
        peer,
    };
    s.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok();
    // Session start: agi_* headers, then an empty line.
    let mut request = String::new();
    loop {
        let Ok(line) = s.read_line() else { return };
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(": ") {
            if k == "agi_network_script" || k == "agi_request" || k.starts_with("agi_arg_") {
                request.push(',');
                request.push_str(v);
            }
        }
    }
    // Options from the script URL's query or the AGI arguments: lang=en, var=NAME.
    for part in request.split(['?', '&', ',']) {
        match part.split_once('=') {
            Some(("lang", v)) => s.lang = Language::parse(v).unwrap_or(s.lang),
            Some(("var", v))
                if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                s.var = v.to_string()
            }
            _ => {}
        }
    }
    match identify(&mut s, engine, args) {
        Ok(outcome) => log::info!("call {}: {outcome}", s.peer),
        Err(Stop::HungUp) => log::info!("call {}: caller hung up", s.peer),
        Err(Stop::Broken(e)) => log::warn!("call {}: {e}", s.peer),
    }
}

/// Releases the order when dropped: a hang-up anywhere cancels it at BankID.
struct OrderGuard<'a>(&'a Engine, u64);
impl Drop for OrderGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.release(self.1);
    }
}

fn identify(s: &mut Session, engine: &Engine, args: &Args) -> Step<&'static str> {
    let failed_text = engine.config().result_failed.clone();
    let mut pnr = None;
    for _ in 0..args.attempts.max(1) {
        let reply = s.command("GET DATA bankid-enter-pnr 10000 12")?;
        let digits: String = reply.result.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            s.play("bankid-invalid-entry")?;
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
                s.play("bankid-invalid-pnr")?;
            }
        }
    }
    let Some(pnr) = pnr else {
        let var = s.var.clone();
        s.set_var(&var, &failed_text)?;
        s.set_var("BANKID_STATUS", "no-number")?;
        s.play("bankid-failed")?;
        return Ok("no valid number entered");
    };
    let id = match engine.start(&pnr, StartOptions::default()) {
        Ok(id) => id,
        Err(e) => {
            log::warn!("call {}: {e}", s.peer);
            let var = s.var.clone();
            s.set_var(&var, &failed_text)?;
            s.set_var("BANKID_STATUS", "error")?;
            s.play("bankid-error")?;
            return Ok("could not start");
        }
    };
    let guard = OrderGuard(engine, id);
    s.play("bankid-open-app")?;
    let until = Instant::now() + Duration::from_secs(args.timeout_s);
    let mut last_prompt = "";
    let view = loop {
        let v = engine.poll(id).map_err(|e| Stop::Broken(e.to_string()))?;
        if v.state.is_final() {
            break v;
        }
        let prompt = prompts::for_pending_hint(v.hint_code.as_deref().unwrap_or(""));
        if prompt != last_prompt {
            s.play(prompt)?;
            last_prompt = prompt;
        }
        if Instant::now() >= until {
            let _ = engine.cancel(id);
            continue;
        }
        s.watch(Duration::from_millis(50))?;
    };
    let var = s.var.clone();
    s.set_var(&var, &view.result_text)?;
    let (status, prompt, outcome) = match view.state {
        State::Complete => ("complete", "bankid-success", "identified"),
        State::Failed => ("failed", "bankid-failed", "failed"),
        _ => ("error", "bankid-error", "error"),
    };
    s.set_var("BANKID_STATUS", status)?;
    if view.hint_code.as_deref() == Some("userDeclinedCall") {
        log::warn!("SECURITY: call {}: the caller declined the call in the BankID app (possible fraud attempt)", s.peer);
    }
    drop(guard);
    s.play(prompt)?;
    Ok(outcome)
}

/// Runs the server until the process is stopped.
pub fn run(args: Args) -> i32 {
    let backend = match Backend::resolve(
        args.config.as_deref(),
        SimulatorPolicy::OnlyWhenAsked,
        args.simulator,
        0.25,
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bankid-ivr fastagi: {e}");
            return 2;
        }
    };
    let engine = match Engine::new(backend.config.clone()) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("bankid-ivr fastagi: {e}");
            return 2;
        }
    };
    let listener = match TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bankid-ivr fastagi: cannot listen on {}: {e}", args.listen);
            return 2;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("listening agi://{addr}/bankid-identify");
    if backend.is_simulated() {
        eprintln!(
            "bankid-ivr fastagi: using the embedded simulator (asked for) — no real identities"
        );
    }
    let _ = std::io::stdout().flush();
    let args = Arc::new(args);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let engine = engine.clone();
        let args = args.clone();
        std::thread::spawn(move || serve_call(stream, &engine, &args));
    }
    drop(backend);
    0
}
