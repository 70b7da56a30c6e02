//! Asterisk's side of a FastAGI call, as `crates/bankid-ivr-cli/tests/fastagi.rs` plays it: the
//! session environment, a reply to every command, the caller's digits for `GET DATA`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Calls `bankid-ivr fastagi` at `addr` as Asterisk would for a caller with `caller_id` on
/// the call `unique_id` who keys in `digits`; every command the server sent.
pub fn call(addr: &str, unique_id: &str, caller_id: &str, digits: &str) -> Vec<String> {
    let stream = TcpStream::connect(addr).expect("fastagi listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let env = format!(
        "agi_network: yes\nagi_network_script: bankid-identify\nagi_request: agi://127.0.0.1/bankid-identify\n\
         agi_channel: SIP/trunk-00000001\nagi_uniqueid: {unique_id}\nagi_callerid: {caller_id}\n\
         agi_arg_1: lang=sv,var=__BANKID_RESULT\n\n"
    );
    w.write_all(env.as_bytes()).unwrap();
    let mut typed = Some(digits.to_string());
    let mut commands = Vec::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let cmd = line.trim_end().to_string();
        let reply = if cmd.starts_with("GET DATA") {
            match typed.take() {
                Some(d) => format!("200 result={d}"),
                None => "200 result= (timeout)".into(),
            }
        } else if cmd.starts_with("STREAM FILE") {
            "200 result=0 endpos=8000".into()
        } else if cmd.starts_with("SET VARIABLE") {
            "200 result=1".into()
        } else {
            "510 Invalid or unknown command".into()
        };
        commands.push(cmd);
        if writeln!(w, "{reply}").is_err() {
            break;
        }
    }
    commands
}

/// The value a call set for `name` (`SET VARIABLE name "value"`).
pub fn var(commands: &[String], name: &str) -> Option<String> {
    commands
        .iter()
        .find_map(|c| c.strip_prefix(&format!("SET VARIABLE {name} ")))
        .map(|v| v.trim_matches('"').to_string())
}
