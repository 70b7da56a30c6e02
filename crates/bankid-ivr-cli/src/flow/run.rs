//! `bankid-ivr flow run`: executes a project the way the IVR would, with scripted DTMF, printing
//! each block, prompt and variable. The bankid request block runs through the real
//! `libbankid.so` (see [`crate::hook`]).

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bankid::ffi::bankid_call_initiator::*;
use bankid::ffi::bankid_lang::*;
use bankid::ffi::bankid_mode;
use bankid::ffi::bankid_state::{self, *};
use bankid::ffi::bankid_status::*;
use bankid::messages::Language;
use bankid::rp::HintCode;

use super::format::{exit, param, Kind};
use super::model::{Block, Flow};
use crate::hook::{Extra, Hook};
use crate::prompts;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Transferred to this queue.
    Queue(String),
    /// A Hangup or End block.
    Hangup,
    /// The caller hung up (scripted).
    CallerHungUp,
    /// A block could not run; the text says why.
    Broken(String),
}

/// Inputs of a run.
pub struct Script {
    /// DTMF entries, one per Menu read; `t` = nothing entered, `hangup` = the caller hangs up.
    pub dtmf: VecDeque<String>,
    /// Hang up this long after a BankID order started.
    pub hangup_after: Option<Duration>,
    /// Prompt language.
    pub lang: Language,
}

/// A run in progress.
pub struct Runner<'a, W: Write> {
    dir: PathBuf,
    script: Script,
    hook: Option<&'a Hook>,
    /// Channel variables.
    pub vars: BTreeMap<String, String>,
    out: W,
    steps: usize,
    /// Extra environment for a System block's `bankid-ivr` (the dry run's embedded simulator).
    pub child_env: Vec<(String, String)>,
    /// The configured `company_name` for prompt texts (empty: "oss"/"us").
    pub company: String,
}

const MAX_STEPS: usize = 500;

fn subst(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut s = text.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
        let bare = k.trim_start_matches('_');
        if bare != k {
            s = s.replace(&format!("{{{bare}}}"), v);
        }
    }
    s
}

/// The library's order state for a state read back through the C ABI.
fn order_state(s: bankid_state) -> bankid::State {
    match s {
        BANKID_STATE_PENDING => bankid::State::Pending,
        BANKID_STATE_COMPLETE => bankid::State::Complete,
        BANKID_STATE_FAILED => bankid::State::Failed,
        BANKID_STATE_ERROR => bankid::State::Error,
    }
}

/// Masks a value that looks like a personal number before printing it.
fn shown(name: &str, value: &str) -> String {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let _ = name;
    if digits >= 10
        && value.len() <= 13
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '+')
    {
        bankid::personnummer::mask_str(value)
    } else {
        value.to_string()
    }
}

impl<'a, W: Write> Runner<'a, W> {
    /// A runner for flows in `dir` (where SubProject files are looked up).
    pub fn new(dir: &Path, script: Script, hook: Option<&'a Hook>, out: W) -> Self {
        let mut vars = BTreeMap::new();
        vars.insert("CALLERID(num)".to_string(), "46700000000".to_string());
        Runner {
            dir: dir.to_path_buf(),
            script,
            hook,
            vars,
            out,
            steps: 0,
            child_env: Vec::new(),
            company: String::new(),
        }
    }

    fn say(&mut self, line: String) {
        let _ = writeln!(self.out, "{line}");
    }

    fn play(&mut self, audio: &str) {
        let audio = subst(audio, &self.vars);
        let company = match (self.company.is_empty(), self.script.lang) {
            (false, _) => self.company.clone(),
            (true, Language::Sv) => "oss".into(),
            (true, Language::En) => "us".into(),
        };
        let text = prompts::script(&audio, self.script.lang, &company)
            .unwrap_or_else(|| "(no text known for this file)".into());
        self.say(format!("    ♪ {audio}: \"{text}\""));
    }

    fn set(&mut self, name: &str, value: String) {
        self.say(format!("    {name} = \"{}\"", shown(name, &value)));
        self.vars.insert(name.to_string(), value);
    }

    /// Runs `flow` from its Start block.
    pub fn run(&mut self, flow: &Flow) -> Ending {
        let Some(start) = flow.blocks.iter().find(|b| b.kind == Some(Kind::Start)) else {
            return Ending::Broken("no Start block".into());
        };
        let mut current = start.clone();
        loop {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Ending::Broken(format!(
                    "more than {MAX_STEPS} blocks run: a loop without end?"
                ));
            }
            self.say(format!("→ {}", current.describe()));
            let next: Result<Option<&Block>, Ending> = self.step(flow, &current);
            match next {
                Ok(Some(b)) => current = b.clone(),
                Ok(None) => {
                    return Ending::Broken(format!("{} has no exit to follow", current.describe()))
                }
                Err(end) => return end,
            }
        }
    }

    fn step<'f>(&mut self, flow: &'f Flow, b: &Block) -> Result<Option<&'f Block>, Ending> {
        let p = |n: &str| b.param(n).unwrap_or("").to_string();
        match b.kind {
            None => Err(Ending::Broken(format!(
                "{}: unknown block type",
                b.describe()
            ))),
            Some(Kind::Start) => {
                if !p(param::ANSWER).eq_ignore_ascii_case("no") {
                    self.say("    (call answered)".into());
                }
                Ok(flow.next(&b.id))
            }
            Some(Kind::Playback) => {
                self.play(&p(param::AUDIO));
                Ok(flow.next(&b.id))
            }
            Some(Kind::Set) => {
                let v = subst(&p(param::VALUE), &self.vars);
                self.set(&p(param::VARIABLE), v);
                Ok(flow.next(&b.id))
            }
            Some(Kind::NoOp) => {
                let v = subst(&p(param::OUTPUT), &self.vars);
                self.say(format!("    log: {v}"));
                Ok(flow.next(&b.id))
            }
            Some(Kind::Math) | Some(Kind::CustomApp) => {
                self.say("    (not evaluated in a dry run)".into());
                Ok(flow.next(&b.id))
            }
            Some(Kind::Menu) => self.menu(flow, b),
            Some(Kind::BankIdRequest) => self.bankid(flow, b),
            Some(Kind::System) => {
                let value = self.system(&p(param::COMMAND))?;
                self.set(&p(param::VARIABLE), value);
                Ok(flow.next(&b.id))
            }
            Some(Kind::Agi) => {
                self.say(format!(
                    "    AGI {} {} (not connected in a dry run; see `bankid-ivr fastagi`)",
                    p(param::COMMAND),
                    p(param::ARGUMENTS)
                ));
                Ok(flow.next(&b.id))
            }
            Some(Kind::SubProject) => {
                let name = p(param::PROJECT);
                let path = self.dir.join(format!("{name}.xml"));
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    Ending::Broken(format!("SubProject {name}: {}: {e}", path.display()))
                })?;
                let sub = Flow::parse(&text)
                    .map_err(|e| Ending::Broken(format!("SubProject {name}: {e}")))?;
                self.say(format!("    entering project {name}"));
                match self.run(&sub) {
                    Ending::Broken(e) if e.contains("has no exit") => Ok(flow.next(&b.id)),
                    end => Err(end),
                }
            }
            Some(Kind::Queue) => {
                let q = p(param::QUEUE);
                self.say(format!(
                    "    Queue({q}) — the agent sees the channel variables below"
                ));
                Err(Ending::Queue(q))
            }
            Some(Kind::Dial) => Err(Ending::Queue(format!("dial {}", p("number")))),
            Some(Kind::Hangup) | Some(Kind::End) | Some(Kind::Finally) => Err(Ending::Hangup),
            Some(Kind::Goto) => Ok(flow.block(&p(param::TARGET))),
        }
    }

    fn menu<'f>(&mut self, flow: &'f Flow, b: &Block) -> Result<Option<&'f Block>, Ending> {
        let retries: usize = b
            .param(param::RETRIES)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let max_digits: usize = b
            .param(param::MAX_DIGITS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let mut last_exit = exit::TIMEOUT;
        for attempt in 0..=retries {
            self.play(b.param(param::AUDIO).unwrap_or(""));
            let input = self.script.dtmf.pop_front().unwrap_or_else(|| "t".into());
            if input.eq_ignore_ascii_case("hangup") {
                self.say("    caller hung up".into());
                return Err(Ending::CallerHungUp);
            }
            let digits: String = input
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '*' || *c == '#')
                .collect();
            let digits: String = digits
                .trim_end_matches('#')
                .chars()
                .take(max_digits)
                .collect();
            if input == "t" || digits.is_empty() {
                self.say(format!(
                    "    DTMF: (nothing, timeout) attempt {}",
                    attempt + 1
                ));
                last_exit = exit::TIMEOUT;
                continue;
            }
            self.say(format!("    DTMF: {}", shown("PNR", &digits)));
            if let Some(v) = b.param(param::VARIABLE) {
                self.set(v, digits.clone());
            }
            if let Some(t) = flow.exit_to(&b.id, &digits) {
                return Ok(Some(t));
            }
            if let Some(t) = flow.exit_to(&b.id, exit::ANY) {
                return Ok(Some(t));
            }
            self.say("    (no exit for this entry: invalid)".into());
            last_exit = exit::INVALID;
        }
        Ok(flow.exit_to(&b.id, last_exit))
    }

    fn system(&mut self, command: &str) -> Result<String, Ending> {
        let command = subst(command, &self.vars);
        let mut parts = command.split_whitespace();
        let program = parts.next().unwrap_or("");
        let args: Vec<&str> = parts.collect();
        if Path::new(program).file_name().and_then(|f| f.to_str()) != Some("bankid-ivr") {
            self.say(format!(
                "    System {program} … (only bankid-ivr is run in a dry run)"
            ));
            return Ok(String::new());
        }
        let exe = std::env::current_exe().map_err(|e| Ending::Broken(e.to_string()))?;
        self.say(format!(
            "    System: bankid-ivr {}",
            args.iter()
                .map(|a| shown("PNR", a))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        let out = std::process::Command::new(exe)
            .args(&args)
            .envs(self.child_env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(|e| Ending::Broken(format!("System: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        self.say(format!(
            "    exit status {}",
            out.status.code().unwrap_or(-1)
        ));
        Ok(stdout)
    }

    fn bankid<'f>(&mut self, flow: &'f Flow, b: &Block) -> Result<Option<&'f Block>, Ending> {
        let hook = self
            .hook
            .ok_or_else(|| Ending::Broken("the bankid request block needs libbankid.so".into()))?;
        let pnr_var = b.param(param::PNR_VARIABLE).unwrap_or("PNR");
        let result_var = b
            .param(param::RESULT_VARIABLE)
            .unwrap_or("__BANKID_RESULT")
            .to_string();
        let lang = match b.param(param::LANGUAGE).and_then(Language::parse) {
            Some(Language::En) => BANKID_LANG_EN,
            _ => BANKID_LANG_SV,
        };
        let initiator = match b.param(param::CALL_INITIATOR) {
            Some(v) if v.eq_ignore_ascii_case("rp") => BANKID_CALL_INITIATOR_RP,
            Some(_) => BANKID_CALL_INITIATOR_USER,
            None => BANKID_CALL_INITIATOR_DEFAULT,
        };
        let timeout = Duration::from_secs(
            b.param(param::BANKID_TIMEOUT)
                .and_then(|v| v.parse().ok())
                .unwrap_or(180),
        );
        let max_invalid: u32 = b
            .param(param::MAX_INVALID)
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        // Unknown values were refused by `flow check`; at run time they fail closed: the
        // block's error exit, nothing sent.
        let mode = match b.param(param::MODE).map(bankid::Mode::parse) {
            None => Some(bankid::Mode::Identify),
            Some(m) => m,
        };
        let flag = |n: &str| b.param(n).map_or(Some(false), crate::flow::format::yes_no);
        let (Some(mode), Some(pin_code), Some(id_document)) = (
            mode,
            flag(param::REQUIRE_PIN_CODE),
            flag(param::REQUIRE_ID_DOCUMENT),
        ) else {
            self.say("    bad mode/requirePinCode/requireIdDocument value (see flow check)".into());
            self.set(&result_var, "Identification failed".into());
            return Ok(flow.exit_to(&b.id, exit::ERROR));
        };
        let text = b
            .param(param::USER_VISIBLE_DATA)
            .map(|t| subst(t, &self.vars));
        let extra = Extra {
            mode: match mode {
                bankid::Mode::Identify => bankid_mode::BANKID_MODE_IDENTIFY,
                bankid::Mode::Sign => bankid_mode::BANKID_MODE_SIGN,
            },
            text,
            pin_code,
            id_document,
            call_id: None,
            // The record says this order came from a dry run, not from a caller.
            channel: bankid::ffi::bankid_channel::BANKID_CHANNEL_FLOW_RUN,
        };
        for p in prompts::before_start(mode == bankid::Mode::Sign, pin_code, id_document) {
            self.play(p);
        }
        let pnr = self.vars.get(pnr_var).cloned().unwrap_or_default();
        let order = match hook.start_with(&pnr, initiator, &extra) {
            Ok(o) => o,
            Err(e) if e.status() == Some(BANKID_INVALID_PERSONAL_NUMBER) => {
                let count = self
                    .vars
                    .get("BANKID_INVALID_COUNT")
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
                    + 1;
                self.say(format!(
                    "    number refused locally, nothing sent to BankID: {e}"
                ));
                self.set("BANKID_INVALID_COUNT", count.to_string());
                if count >= max_invalid {
                    self.set(&result_var, "Identification failed".into());
                    return Ok(flow.exit_to(&b.id, exit::ERROR));
                }
                return Ok(flow.exit_to(&b.id, exit::BAD_NUMBER));
            }
            Err(e)
                if matches!(
                    e.status(),
                    Some(BANKID_DECLINED_RECENTLY | BANKID_RATE_LIMITED)
                ) =>
            {
                // Anti-vishing: nothing reached BankID. The failed path, told apart by status.
                self.say(format!("    SECURITY: refused before BankID: {e}"));
                self.set(&result_var, "Identification failed".into());
                self.set("BANKID_STATUS", "blocked".into());
                self.play("bankid-blocked");
                return Ok(flow.exit_to(&b.id, exit::FAILED));
            }
            Err(e) => {
                self.say(format!("    bankid_start failed: {e}"));
                self.set(&result_var, "Identification failed".into());
                return Ok(flow.exit_to(&b.id, exit::ERROR));
            }
        };
        if let Some(a) = b.param(param::START_AUDIO) {
            self.play(a);
        }
        let started = Instant::now();
        let mut last_prompt = String::new();
        let state = loop {
            let state = hook
                .poll(order)
                .map_err(|e| Ending::Broken(e.to_string()))?;
            if state != BANKID_STATE_PENDING {
                break state;
            }
            let prompt = prompts::for_pending_hint(&hook.hint_code(order));
            if prompt != last_prompt {
                self.say(format!(
                    "    BankID: {} — {}",
                    hook.hint_code(order),
                    hook.message(order, lang)
                ));
                self.play(prompt);
                last_prompt = prompt.to_string();
            }
            if self
                .script
                .hangup_after
                .is_some_and(|d| started.elapsed() >= d)
            {
                self.say("    caller hung up: releasing the order (cancelled at BankID)".into());
                hook.release(order);
                return Err(Ending::CallerHungUp);
            }
            if started.elapsed() >= timeout {
                self.say("    gave up waiting: cancelling at BankID".into());
                hook.cancel(order);
                break hook.poll(order).unwrap_or(BANKID_STATE_FAILED);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let hint = hook.hint_code(order);
        let text = hook.result_text(order);
        let outcome = match state {
            BANKID_STATE_COMPLETE => "complete".to_string(),
            BANKID_STATE_FAILED => format!("failed ({hint})"),
            _ => format!("error ({hint})"),
        };
        self.say(format!(
            "    BankID: {outcome} — {}",
            hook.message(order, lang)
        ));
        let hint_code = (!hint.is_empty()).then(|| HintCode::from(hint.as_str()));
        if bankid::messages::guidance(order_state(state), hint_code.as_ref(), None).fraud_warning {
            self.say("    SECURITY: the caller declined the call in the BankID app (possible fraud attempt)".into());
        }
        self.set(&result_var, text);
        if state == BANKID_STATE_COMPLETE && mode == bankid::Mode::Sign {
            self.set("BANKID_SIGNED_TEXT", hook.signed_text(order));
        }
        if state == BANKID_STATE_COMPLETE && id_document {
            let checked = hook.id_document_checked(order);
            self.set(
                "BANKID_ID_DOCUMENT",
                if checked { "checked" } else { "not-checked" }.into(),
            );
        }
        hook.release(order);
        let label = match state {
            BANKID_STATE_COMPLETE => exit::SUCCESS,
            BANKID_STATE_FAILED => exit::FAILED,
            _ => exit::ERROR,
        };
        Ok(flow.exit_to(&b.id, label))
    }

    /// Prints the final channel variables.
    pub fn print_variables(&mut self) {
        let vars: Vec<(String, String)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.say("final variables:".into());
        for (k, v) in vars {
            self.say(format!("  {k} = \"{}\"", shown(&k, &v)));
        }
    }
}
