//! The Asterisk Gateway Interface as a FastAGI server speaks it, without any I/O: lines out of
//! a byte stream ([`LineBuffer`]), the session's environment ([`Environment`]), the replies
//! ([`ReplyParser`] → [`Reply`]) and the commands ([`Command`], whose `Display` is the exact
//! wire form).
//!
//! It is apart from the identification flow (`fastagi`) so that every reply form and every
//! command's bytes are unit-tested here, and so that quoting is done in one place: a value we
//! send comes partly from BankID (the user's name in the result text), and a newline in it
//! would otherwise end our command and start a second one of BankID's choosing.
//!
//! Replies, as Asterisk's `res_agi.c` writes them:
//!
//! ```text
//! 200 result=1985                      a result (digits, 0/1, …)
//! 200 result= (timeout)                a result with its parenthesised data
//! 200 result=0 endpos=8000             STREAM FILE: where playback stopped
//! 200 result=-1                        failure: the channel hung up
//! 100 result=0 Trying...               not final: keep reading
//! 510 Invalid or unknown command
//! 511 Command Not Permitted on a dead channel or intercepted channel
//! 520-Invalid command syntax.  Proper usage follows:
//! Usage: …                             (any number of lines)
//! 520 End of proper usage.
//! HANGUP                               sent unprompted when the caller hangs up
//! ```
//!
//! and the end of the stream, when Asterisk closes the connection.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Longest line accepted from Asterisk, newline included; a longer one closes the connection.
pub const MAX_LINE: usize = 8 * 1024;
/// Most `agi_*` lines accepted in a session's environment (Asterisk sends about 25).
pub const MAX_ENV_LINES: usize = 128;
/// Most lines accepted in one `520-` usage block (Asterisk's longest usage text has ~30).
pub const MAX_USAGE_LINES: usize = 256;
/// Most bytes kept of the script request and its arguments (the call's options).
pub const MAX_REQUEST: usize = 4096;

/// A peer broke the protocol or a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A line longer than [`MAX_LINE`].
    LineTooLong,
    /// More than [`MAX_ENV_LINES`] environment lines.
    TooManyEnvironmentLines,
    /// A `520-` block of more than [`MAX_USAGE_LINES`] lines.
    UsageTooLong,
    /// Not something we send as a channel variable name.
    BadVariableName(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::LineTooLong => write!(f, "a line longer than {MAX_LINE} bytes"),
            Error::TooManyEnvironmentLines => {
                write!(f, "more than {MAX_ENV_LINES} AGI environment lines")
            }
            Error::UsageTooLong => write!(f, "a usage reply of more than {MAX_USAGE_LINES} lines"),
            Error::BadVariableName(n) => write!(
                f,
                "{:?} is not a variable name (letters, digits, _ and (), at most 80)",
                n.chars().take(80).collect::<String>()
            ),
        }
    }
}

impl std::error::Error for Error {}

// ---------------------------------------------------------------------------------------------
// Lines

/// Bytes read so far and not yet a whole line. It belongs to the connection, not to one read:
/// a line that arrives in pieces (`HANG`, then `UP\n`) is still seen whole, whatever reads,
/// watches and timeouts came in between.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    /// An empty buffer.
    pub fn new() -> LineBuffer {
        LineBuffer::default()
    }

    /// Appends bytes read from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole line without its line end (`\n` or `\r\n`; invalid UTF-8 replaced), or
    /// `None` until one has arrived. A line over [`MAX_LINE`] — or that many bytes without a
    /// newline — is an error.
    pub fn next_line(&mut self) -> Result<Option<String>, Error> {
        if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            if i + 1 > MAX_LINE {
                return Err(Error::LineTooLong);
            }
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line);
            return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
        }
        if self.buf.len() >= MAX_LINE {
            return Err(Error::LineTooLong);
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------
// The environment

/// The session's environment: the `agi_*` lines Asterisk sends first, up to an empty line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Environment {
    /// The parts that carry the call's options, in order: `agi_network_script`, `agi_request`
    /// and every `agi_arg_N` (at most [`MAX_REQUEST`] bytes in all; later parts are dropped).
    pub script: Vec<String>,
    /// `agi_callerid`, when it is a plausible number (not `unknown`, at most 64 characters, no
    /// control characters).
    pub caller_id: Option<String>,
    /// `agi_uniqueid`, Asterisk's identifier of the call (at most 64 characters, no control
    /// characters), for the order's audit record.
    pub unique_id: Option<String>,
    lines: usize,
    script_len: usize,
}

impl Environment {
    /// Feeds one line; `Ok(true)` at the empty line that ends the environment. Lines that are
    /// not `key: value` are skipped, but count against [`MAX_ENV_LINES`].
    pub fn feed(&mut self, line: &str) -> Result<bool, Error> {
        if line.is_empty() {
            return Ok(true);
        }
        self.lines += 1;
        if self.lines >= MAX_ENV_LINES {
            return Err(Error::TooManyEnvironmentLines);
        }
        let Some((k, v)) = line.split_once(": ") else {
            return Ok(false);
        };
        if (k == "agi_network_script" || k == "agi_request" || k.starts_with("agi_arg_"))
            && self.script_len + v.len() < MAX_REQUEST
        {
            self.script_len += 1 + v.len();
            self.script.push(v.to_string());
        }
        let plausible = |v: &str| {
            let v = v.trim();
            (!v.is_empty() && v != "unknown" && v.len() <= 64 && v.chars().all(|c| !c.is_control()))
                .then(|| v.to_string())
        };
        if k == "agi_callerid" {
            if let Some(v) = plausible(v) {
                self.caller_id = Some(v);
            }
        }
        if k == "agi_uniqueid" {
            if let Some(v) = plausible(v) {
                self.unique_id = Some(v);
            }
        }
        Ok(false)
    }

    /// `key=value` options from the script URL's query or the arguments (`lang=en`,
    /// `var=NAME`), split at `?`, `&` and `,`; parts without `=` are skipped.
    pub fn options(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.script
            .iter()
            .flat_map(|s| s.split(['?', '&', ',']))
            .filter_map(|part| part.split_once('='))
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

/// `200 result=…`: a command ran.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Success {
    /// The value after `result=` (may be empty, as in `200 result= (timeout)`).
    pub result: String,
    /// The parenthesised part, e.g. `timeout`.
    pub data: Option<String>,
    /// `endpos=N` (STREAM FILE): the sample where playback stopped.
    pub endpos: Option<u64>,
}

/// One reply from Asterisk, every form it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `200 result=N [(data)] [endpos=N]`.
    Success(Success),
    /// `100 result=0 Trying...`: the command runs; its final reply follows.
    Trying,
    /// `510 …`: Asterisk does not know the command.
    InvalidCommand(String),
    /// `511 …`: the channel is dead (hung up).
    DeadChannel(String),
    /// `520-…` up to `520 End of proper usage.` (or a single `520 …` line): the command's
    /// syntax was wrong; the usage text's lines.
    Usage(Vec<String>),
    /// A bare `HANGUP` line: the caller hung up.
    Hangup,
    /// The connection was closed.
    EndOfStream,
    /// Anything else, as received.
    Unexpected(String),
}

impl Reply {
    /// False only for `100 Trying`: the final reply is still to come.
    pub fn is_final(&self) -> bool {
        !matches!(self, Reply::Trying)
    }

    /// The call is gone: `200 result=-1`, `511`, `HANGUP` or the end of the stream.
    pub fn is_hangup(&self) -> bool {
        match self {
            Reply::Success(s) => s.result == "-1",
            Reply::DeadChannel(_) | Reply::Hangup | Reply::EndOfStream => true,
            _ => false,
        }
    }
}

/// The reply's first line as Asterisk wrote it (for a log line).
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Success(s) => {
                write!(f, "200 result={}", s.result)?;
                if let Some(d) = &s.data {
                    write!(f, " ({d})")?;
                }
                if let Some(e) = s.endpos {
                    write!(f, " endpos={e}")?;
                }
                Ok(())
            }
            Reply::Trying => f.write_str("100 result=0 Trying..."),
            Reply::InvalidCommand(t) => write!(f, "510 {t}"),
            Reply::DeadChannel(t) => write!(f, "511 {t}"),
            Reply::Usage(lines) => write!(f, "520-{}", lines.first().map_or("", |l| l)),
            Reply::Hangup => f.write_str("HANGUP"),
            Reply::EndOfStream => f.write_str("(end of stream)"),
            Reply::Unexpected(l) => f.write_str(l),
        }
    }
}

/// Turns the lines of Asterisk's replies into [`Reply`]s: fed one line at a time, it yields a
/// reply once one is complete (a `520-` block spans lines). Empty lines between replies are
/// skipped.
#[derive(Debug, Default)]
pub struct ReplyParser {
    /// Inside a `520-` block: its lines so far.
    usage: Option<Vec<String>>,
}

impl ReplyParser {
    /// A parser between replies.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Feeds one line (without its line end); `Ok(None)` while a reply is incomplete.
    pub fn feed(&mut self, line: &str) -> Result<Option<Reply>, Error> {
        let line = line.trim_end();
        if let Some(lines) = &mut self.usage {
            if line == "520" || line.starts_with("520 ") {
                return Ok(self.usage.take().map(Reply::Usage));
            }
            if lines.len() >= MAX_USAGE_LINES {
                return Err(Error::UsageTooLong);
            }
            lines.push(line.to_string());
            return Ok(None);
        }
        if line.trim().is_empty() {
            return Ok(None);
        }
        if line == "HANGUP" {
            return Ok(Some(Reply::Hangup));
        }
        if let Some(first) = line.strip_prefix("520-") {
            self.usage = Some(vec![first.to_string()]);
            return Ok(None);
        }
        let (code, rest) = line.split_once(' ').unwrap_or((line, ""));
        Ok(Some(match code {
            "200" => {
                parse_success(rest).map_or_else(|| Reply::Unexpected(line.into()), Reply::Success)
            }
            "100" => Reply::Trying,
            "510" => Reply::InvalidCommand(rest.to_string()),
            "511" => Reply::DeadChannel(rest.to_string()),
            "520" => Reply::Usage(vec![rest.to_string()]),
            _ => Reply::Unexpected(line.to_string()),
        }))
    }

    /// The connection closed: [`Reply::EndOfStream`] (a `520-` block cut short is dropped).
    pub fn end_of_stream(&mut self) -> Reply {
        self.usage = None;
        Reply::EndOfStream
    }
}

/// `result=N [(data)] [endpos=N]`, the part after `200 `.
fn parse_success(rest: &str) -> Option<Success> {
    let value = rest.trim().strip_prefix("result=")?;
    let (result, mut tail) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let mut success = Success {
        result: result.to_string(),
        ..Success::default()
    };
    tail = tail.trim_start();
    if let Some(after) = tail.strip_prefix('(') {
        let (data, more) = after.split_once(')').unwrap_or((after, ""));
        success.data = Some(data.trim().to_string());
        tail = more;
    }
    for word in tail.split_whitespace() {
        if let Some(n) = word.strip_prefix("endpos=") {
            success.endpos = n.parse().ok();
        }
    }
    Some(success)
}

// ---------------------------------------------------------------------------------------------
// Commands

/// A channel variable name we may send: ASCII letters, digits, `_` and `()` (for functions
/// such as `CALLERID(name)`), 1 to 80 characters — nothing that could end the word on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarName(Cow<'static, str>);

const fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'(' | b')')
}

const fn is_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 80 {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if !is_name_byte(b[i]) {
            return false;
        }
        i += 1;
    }
    true
}

impl VarName {
    /// The name, when it is one.
    pub fn new(name: &str) -> Result<VarName, Error> {
        if is_name(name) {
            Ok(VarName(Cow::Owned(name.to_string())))
        } else {
            Err(Error::BadVariableName(name.to_string()))
        }
    }

    /// A name known when compiling; use it in a `const`, where a bad name fails the build.
    pub const fn from_static(name: &'static str) -> VarName {
        assert!(is_name(name), "not a variable name");
        VarName(Cow::Borrowed(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VarName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A command we send. `Display` writes its exact wire form (without the newline): file names
/// as one word, strings quoted with `\` and `"` escaped and every control character (CR, LF,
/// tab, …) replaced by a space, so nothing in a value can end the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `GET DATA file timeout_ms max_digits`: plays `file` and reads DTMF.
    GetData {
        /// The prompt.
        file: String,
        /// How long Asterisk waits for digits.
        timeout_ms: u64,
        /// The most digits read.
        max_digits: u32,
    },
    /// `STREAM FILE file "escape_digits"`: plays `file`; a key in `escape_digits` stops it.
    StreamFile {
        /// The prompt.
        file: String,
        /// Keys that interrupt playback (only `0`–`9`, `*`, `#` are sent).
        escape_digits: String,
    },
    /// `SET VARIABLE name "value"`.
    SetVariable {
        /// The variable.
        name: VarName,
        /// Its value (any text).
        value: String,
    },
    /// `VERBOSE "message" level`: a line in Asterisk's log.
    Verbose {
        /// The text.
        message: String,
        /// 1 to 4.
        level: u8,
    },
}

impl Command {
    /// `STREAM FILE file ""`: a prompt no key interrupts.
    pub fn stream_file(file: &str) -> Command {
        Command::StreamFile {
            file: file.to_string(),
            escape_digits: String::new(),
        }
    }

    /// `SET VARIABLE name "value"`.
    pub fn set_variable(name: &VarName, value: &str) -> Command {
        Command::SetVariable {
            name: name.clone(),
            value: value.to_string(),
        }
    }

    /// The command's name, e.g. `GET DATA` (for a log line).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::GetData { .. } => "GET DATA",
            Command::StreamFile { .. } => "STREAM FILE",
            Command::SetVariable { .. } => "SET VARIABLE",
            Command::Verbose { .. } => "VERBOSE",
        }
    }

    /// How much longer than usual its reply may take: a GET DATA waits for the caller.
    pub fn reply_allowance(&self) -> Duration {
        match self {
            Command::GetData { timeout_ms, .. } => Duration::from_millis(*timeout_ms),
            _ => Duration::ZERO,
        }
    }
}

/// `s` as one word: whitespace, control characters and `"` become `_`.
struct Word<'a>(&'a str);

impl fmt::Display for Word<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            let c = if c.is_whitespace() || c.is_control() || c == '"' {
                '_'
            } else {
                c
            };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

/// `s` in double quotes: `\` and `"` escaped, control characters replaced by a space.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                c if c.is_control() => f.write_str(" ")?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::GetData {
                file,
                timeout_ms,
                max_digits,
            } => write!(f, "GET DATA {} {timeout_ms} {max_digits}", Word(file)),
            Command::StreamFile {
                file,
                escape_digits,
            } => {
                let digits: String = escape_digits
                    .chars()
                    .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#'))
                    .collect();
                write!(f, "STREAM FILE {} {}", Word(file), Quoted(&digits))
            }
            Command::SetVariable { name, value } => {
                write!(f, "SET VARIABLE {name} {}", Quoted(value))
            }
            Command::Verbose { message, level } => {
                write!(f, "VERBOSE {} {}", Quoted(message), (*level).clamp(1, 4))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds lines; the replies they complete.
    fn replies(lines: &[&str]) -> Vec<Reply> {
        let mut p = ReplyParser::new();
        lines.iter().filter_map(|l| p.feed(l).unwrap()).collect()
    }

    fn one(line: &str) -> Reply {
        let r = replies(&[line]);
        assert_eq!(r.len(), 1, "{line:?} gave {r:?}");
        r.into_iter().next().unwrap()
    }

    fn success(result: &str, data: Option<&str>, endpos: Option<u64>) -> Reply {
        Reply::Success(Success {
            result: result.into(),
            data: data.map(Into::into),
            endpos,
        })
    }

    #[test]
    fn a_result_is_parsed() {
        assert_eq!(one("200 result=1985"), success("1985", None, None));
        assert_eq!(one("200 result=0\r"), success("0", None, None));
        assert!(one("200 result=1").is_final());
        assert!(!one("200 result=1").is_hangup());
    }

    #[test]
    fn a_result_with_data_is_parsed() {
        assert_eq!(
            one("200 result= (timeout)"),
            success("", Some("timeout"), None)
        );
        assert_eq!(
            one("200 result=1 (speech) endpos=1234"),
            success("1", Some("speech"), Some(1234))
        );
    }

    #[test]
    fn stream_files_endpos_is_parsed() {
        assert_eq!(
            one("200 result=0 endpos=8000"),
            success("0", None, Some(8000))
        );
    }

    #[test]
    fn result_minus_one_is_a_hangup() {
        let r = one("200 result=-1");
        assert_eq!(r, success("-1", None, None));
        assert!(r.is_hangup());
    }

    #[test]
    fn trying_is_not_final_and_the_final_reply_follows() {
        let r = replies(&["100 result=0 Trying...", "200 result=0"]);
        assert_eq!(r, vec![Reply::Trying, success("0", None, None)]);
        assert!(!r[0].is_final());
        assert!(r[1].is_final());
    }

    #[test]
    fn invalid_command_510() {
        let r = one("510 Invalid or unknown command");
        assert_eq!(
            r,
            Reply::InvalidCommand("Invalid or unknown command".into())
        );
        assert!(r.is_final() && !r.is_hangup());
        assert_eq!(r.to_string(), "510 Invalid or unknown command");
    }

    #[test]
    fn dead_channel_511_is_a_hangup() {
        let r = one("511 Command Not Permitted on a dead channel or intercepted channel");
        assert!(matches!(r, Reply::DeadChannel(_)));
        assert!(r.is_hangup());
    }

    #[test]
    fn the_520_usage_block_is_one_reply() {
        let lines = [
            "520-Invalid command syntax.  Proper usage follows:",
            " Usage: SET VARIABLE <variablename> <value>",
            "",
            "520 End of proper usage.",
            "200 result=1",
        ];
        let r = replies(&lines);
        assert_eq!(
            r,
            vec![
                Reply::Usage(vec![
                    "Invalid command syntax.  Proper usage follows:".into(),
                    " Usage: SET VARIABLE <variablename> <value>".into(),
                    "".into(),
                ]),
                success("1", None, None),
            ]
        );
        assert!(r[0].is_final() && !r[0].is_hangup());
        assert_eq!(
            r[0].to_string(),
            "520-Invalid command syntax.  Proper usage follows:"
        );
    }

    #[test]
    fn a_single_line_520() {
        assert_eq!(
            one("520 Invalid command syntax.  Proper usage not available."),
            Reply::Usage(vec![
                "Invalid command syntax.  Proper usage not available.".into()
            ])
        );
    }

    #[test]
    fn a_usage_block_without_end_is_bounded() {
        let mut p = ReplyParser::new();
        assert_eq!(p.feed("520-Invalid").unwrap(), None);
        for _ in 1..MAX_USAGE_LINES {
            assert_eq!(p.feed("more").unwrap(), None);
        }
        assert_eq!(p.feed("more"), Err(Error::UsageTooLong));
    }

    #[test]
    fn a_bare_hangup_line() {
        let r = one("HANGUP");
        assert_eq!(r, Reply::Hangup);
        assert!(r.is_hangup() && r.is_final());
    }

    #[test]
    fn end_of_stream_is_a_hangup_and_resets_a_usage_block() {
        let mut p = ReplyParser::new();
        assert_eq!(p.feed("520-Invalid").unwrap(), None);
        let r = p.end_of_stream();
        assert_eq!(r, Reply::EndOfStream);
        assert!(r.is_hangup());
        assert_eq!(p.feed("HANGUP").unwrap(), Some(Reply::Hangup));
    }

    #[test]
    fn empty_lines_between_replies_are_skipped() {
        assert_eq!(replies(&["", "  ", "200 result=1"]).len(), 1);
    }

    #[test]
    fn anything_else_is_unexpected() {
        for line in ["garbage", "200 nothing", "300 result=1", "HANGUP now"] {
            assert_eq!(one(line), Reply::Unexpected(line.into()), "{line:?}");
            assert!(!one(line).is_hangup());
        }
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut b = LineBuffer::new();
        b.push(b"HANG");
        assert_eq!(b.next_line().unwrap(), None);
        b.push(b"UP\r\n200 res");
        assert_eq!(b.next_line().unwrap().as_deref(), Some("HANGUP"));
        assert_eq!(b.next_line().unwrap(), None);
        b.push(b"ult=1\n\xff\n");
        assert_eq!(b.next_line().unwrap().as_deref(), Some("200 result=1"));
        assert_eq!(b.next_line().unwrap().as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn lines_are_bounded() {
        let mut b = LineBuffer::new();
        b.push(&vec![b'x'; MAX_LINE - 1]);
        b.push(b"\n");
        assert_eq!(b.next_line().unwrap().map(|l| l.len()), Some(MAX_LINE - 1));
        b.push(&vec![b'x'; MAX_LINE]);
        assert_eq!(b.next_line(), Err(Error::LineTooLong));
        let mut b = LineBuffer::new();
        b.push(&vec![b'x'; MAX_LINE]);
        b.push(b"\n");
        assert_eq!(b.next_line(), Err(Error::LineTooLong));
    }

    #[test]
    fn the_environment_gives_options_and_caller_id() {
        let mut env = Environment::default();
        let lines = [
            "agi_network: yes",
            "agi_network_script: bankid-identify?lang=en&var=RES",
            "agi_request: agi://127.0.0.1/bankid-identify?lang=en&var=RES",
            "agi_callerid: 46701234567",
            "agi_uniqueid: 1700000000.42",
            "no colon here",
            "agi_arg_1: lang=sv",
        ];
        for l in lines {
            assert!(!env.feed(l).unwrap(), "{l:?}");
        }
        assert!(env.feed("").unwrap());
        assert_eq!(env.caller_id.as_deref(), Some("46701234567"));
        assert_eq!(env.unique_id.as_deref(), Some("1700000000.42"));
        let opts: Vec<_> = env.options().collect();
        assert_eq!(
            opts,
            vec![
                ("lang", "en"),
                ("var", "RES"),
                ("lang", "en"),
                ("var", "RES"),
                ("lang", "sv")
            ]
        );
    }

    #[test]
    fn an_implausible_caller_id_is_ignored() {
        for v in ["unknown", "", "   ", &"1".repeat(65), "46\u{7}70"] {
            let mut env = Environment::default();
            env.feed(&format!("agi_callerid: {v}")).unwrap();
            assert_eq!(env.caller_id, None, "{v:?}");
            env.feed(&format!("agi_uniqueid: {v}")).unwrap();
            assert_eq!(env.unique_id, None, "{v:?}");
        }
    }

    #[test]
    fn the_environment_is_bounded() {
        let mut env = Environment::default();
        for _ in 1..MAX_ENV_LINES {
            assert!(!env.feed("agi_x: y").unwrap());
        }
        assert_eq!(env.feed("agi_x: y"), Err(Error::TooManyEnvironmentLines));
        let mut env = Environment::default();
        let long = "x".repeat(3000);
        env.feed(&format!("agi_arg_1: {long}")).unwrap();
        env.feed(&format!("agi_arg_2: {long}")).unwrap();
        assert_eq!(env.script.len(), 1, "the request is capped at 4096 bytes");
    }

    #[test]
    fn get_data_bytes() {
        let c = Command::GetData {
            file: "bankid-enter-pnr".into(),
            timeout_ms: 10_000,
            max_digits: 12,
        };
        assert_eq!(c.to_string(), "GET DATA bankid-enter-pnr 10000 12");
        assert_eq!(c.verb(), "GET DATA");
        assert_eq!(c.reply_allowance(), Duration::from_secs(10));
    }

    #[test]
    fn stream_file_bytes() {
        let c = Command::stream_file("bankid-open-app");
        assert_eq!(c.to_string(), "STREAM FILE bankid-open-app \"\"");
        assert_eq!(c.verb(), "STREAM FILE");
        assert_eq!(c.reply_allowance(), Duration::ZERO);
        let c = Command::StreamFile {
            file: "a b\nEXEC x".into(),
            escape_digits: "1#\"\n*x".into(),
        };
        assert_eq!(c.to_string(), "STREAM FILE a_b_EXEC_x \"1#*\"");
    }

    #[test]
    fn set_variable_bytes() {
        let name = VarName::new("__BANKID_RESULT").unwrap();
        let c = Command::set_variable(&name, "Identifierad: Anna Andersson");
        assert_eq!(
            c.to_string(),
            "SET VARIABLE __BANKID_RESULT \"Identifierad: Anna Andersson\""
        );
        assert_eq!(c.verb(), "SET VARIABLE");
    }

    #[test]
    fn set_variable_escapes_quotes_and_backslashes() {
        let name = VarName::new("BANKID_STATUS").unwrap();
        let c = Command::set_variable(&name, r#"a "b" c\d\"#);
        assert_eq!(
            c.to_string(),
            r#"SET VARIABLE BANKID_STATUS "a \"b\" c\\d\\""#
        );
    }

    #[test]
    fn a_newline_in_a_value_cannot_inject_a_command() {
        let name = VarName::new("R").unwrap();
        let c = Command::set_variable(&name, "Anna\"\nEXEC System rm\r\n\u{0}\t\u{85}x");
        let wire = c.to_string();
        assert_eq!(wire, "SET VARIABLE R \"Anna\\\" EXEC System rm     x\"");
        assert!(!wire.contains(['\n', '\r']));
        assert_eq!(format!("{c}\n").lines().count(), 1);
    }

    #[test]
    fn verbose_bytes() {
        let c = Command::Verbose {
            message: "call \"x\"\nok".into(),
            level: 9,
        };
        assert_eq!(c.to_string(), "VERBOSE \"call \\\"x\\\" ok\" 4");
    }

    #[test]
    fn variable_names_are_validated() {
        for ok in ["BANKID_STATUS", "__BANKID_RESULT", "CALLERID(name)", "x1"] {
            assert_eq!(VarName::new(ok).unwrap().as_str(), ok);
        }
        const STATUS: VarName = VarName::from_static("BANKID_STATUS");
        assert_eq!(STATUS, VarName::new("BANKID_STATUS").unwrap());
        for bad in ["", "A B", "A\nSET", "A\"", "Ä", &"A".repeat(81)] {
            assert!(
                matches!(VarName::new(bad), Err(Error::BadVariableName(_))),
                "{bad:?}"
            );
        }
    }
}
