//! `bankid-ivr fastagi` over a real TCP socket, with this test playing Asterisk: the AGI session
//! headers, a reply to every command, and hang-ups as Asterisk sends them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bankid_sim::{Scenario, SimConfig, Simulator, Step};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(tag: &str) -> (Simulator, Server) {
    let dir = std::env::temp_dir().join(format!("bankid-fastagi-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sim = Simulator::start(SimConfig {
        speed: 0.01,
        certs_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap();
    let config: PathBuf = dir.join("bankid.toml");
    std::fs::write(
        &config,
        format!("url = \"{}\"\nca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"\npoll_interval_ms = 20\n", sim.base_url()),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bankid-ivr"))
        .args([
            "fastagi",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening agi://")
        .and_then(|s| s.strip_suffix("/bankid-identify"))
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    (sim, Server { child, addr })
}

/// What the fake Asterisk does.
#[derive(Clone)]
struct Caller {
    /// Replies to successive GET DATA commands (`None` = timeout, nothing entered).
    digits: Vec<Option<String>>,
    /// Send `HANGUP` and close after this STREAM FILE.
    hangup_after_prompt: Option<&'static str>,
}

/// Runs one call; returns every command the server sent.
fn call(addr: &str, caller: Caller) -> Vec<String> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    write!(
        w,
        "agi_network: yes\nagi_network_script: bankid-identify\nagi_request: agi://{addr}/bankid-identify\nagi_channel: SIP/trunk-00000001\nagi_uniqueid: 1700000000.1\nagi_callerid: 46700000000\nagi_arg_1: lang=sv,var=__BANKID_RESULT\n\n"
    )
    .unwrap();
    let mut commands = Vec::new();
    let mut digits = caller.digits.into_iter();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let cmd = line.trim_end().to_string();
        commands.push(cmd.clone());
        let reply = if cmd.starts_with("GET DATA") {
            match digits.next().flatten() {
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
        writeln!(w, "{reply}").unwrap();
        if let Some(p) = caller.hangup_after_prompt {
            if cmd.starts_with(&format!("STREAM FILE {p}")) {
                let _ = writeln!(w, "HANGUP");
                break;
            }
        }
    }
    commands
}

fn var(commands: &[String], name: &str) -> Option<String> {
    commands
        .iter()
        .find_map(|c| c.strip_prefix(&format!("SET VARIABLE {name} ")))
        .map(|v| v.trim_matches('"').to_string())
}

#[test]
fn a_full_successful_session_sets_the_agent_variable() {
    let (sim, server) = start("ok");
    let cmds = call(
        &server.addr,
        Caller {
            digits: vec![Some("198503121116".into())],
            hangup_after_prompt: None,
        },
    );
    assert_eq!(cmds[0], "GET DATA bankid-enter-pnr 10000 12");
    assert!(
        cmds.contains(&"STREAM FILE bankid-open-app \"\"".to_string()),
        "{cmds:?}"
    );
    assert!(
        cmds.iter()
            .any(|c| c.starts_with("STREAM FILE bankid-call-confirm")),
        "prompt followed the state: {cmds:?}"
    );
    assert_eq!(
        var(&cmds, "__BANKID_RESULT").as_deref(),
        Some("Identification successful for social security number 850312-1116")
    );
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("complete"));
    assert_eq!(cmds.last().unwrap(), "STREAM FILE bankid-success \"\"");
    assert_eq!(sim.orders().len(), 1);
}

#[test]
fn a_declined_call_and_bad_entries_fail_cleanly() {
    let (sim, server) = start("fail");
    let cmds = call(
        &server.addr,
        Caller {
            digits: vec![Some("197709083336".into())],
            hangup_after_prompt: None,
        },
    );
    assert_eq!(
        var(&cmds, "__BANKID_RESULT").as_deref(),
        Some("Identification failed")
    );
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("failed"));
    // Nothing entered, then a wrong check digit, then a valid number: re-prompted twice.
    let cmds = call(
        &server.addr,
        Caller {
            digits: vec![
                None,
                Some("198503121117".into()),
                Some("196801642395".into()),
            ],
            hangup_after_prompt: None,
        },
    );
    assert!(
        cmds.contains(&"STREAM FILE bankid-invalid-entry \"\"".to_string()),
        "{cmds:?}"
    );
    assert!(
        cmds.contains(&"STREAM FILE bankid-invalid-pnr \"\"".to_string()),
        "{cmds:?}"
    );
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("complete"));
    assert_eq!(
        sim.orders().len(),
        2,
        "the wrong check digit never reached BankID"
    );
    // Three tries without a number: the variable still tells the agent.
    let cmds = call(
        &server.addr,
        Caller {
            digits: vec![None, None, None],
            hangup_after_prompt: None,
        },
    );
    assert_eq!(
        var(&cmds, "__BANKID_RESULT").as_deref(),
        Some("Identification failed")
    );
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("no-number"));
}

#[test]
fn a_hangup_cancels_the_order_at_bankid() {
    let (sim, server) = start("hangup");
    sim.set_scenario(
        "198503121116",
        Scenario {
            steps: vec![Step {
                hint_code: "userCallConfirm".into(),
                ms: 3_000_000,
            }],
            outcome: "complete".into(),
        },
    );
    let cmds = call(
        &server.addr,
        Caller {
            digits: vec![Some("198503121116".into())],
            hangup_after_prompt: Some("bankid-call-confirm"),
        },
    );
    assert!(var(&cmds, "__BANKID_RESULT").is_none());
    let mut cancelled = false;
    for _ in 0..200 {
        cancelled = sim.orders().iter().any(|o| o.cancelled_by_rp);
        if cancelled {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cancelled, "{:?}", sim.orders());
}

fn valid_numbers(n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut serial = 100;
    while out.len() < n {
        let base = format!("19800101{serial:03}");
        let digits: Vec<u32> = base[2..].chars().map(|c| c.to_digit(10).unwrap()).collect();
        let sum: u32 = digits
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let p = d * if i % 2 == 0 { 2 } else { 1 };
                p / 10 + p % 10
            })
            .sum();
        out.push(format!("{base}{}", (10 - sum % 10) % 10));
        serial += 1;
    }
    out
}

#[test]
fn fifty_concurrent_calls_are_all_identified() {
    let (sim, server) = start("fifty");
    let threads: Vec<_> = valid_numbers(50)
        .into_iter()
        .map(|pnr| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                call(
                    &addr,
                    Caller {
                        digits: vec![Some(pnr)],
                        hangup_after_prompt: None,
                    },
                )
            })
        })
        .collect();
    let mut ok = 0;
    for t in threads {
        let cmds = t.join().unwrap();
        if var(&cmds, "BANKID_STATUS").as_deref() == Some("complete") {
            ok += 1;
        }
    }
    assert_eq!(ok, 50);
    let orders = sim.orders();
    assert_eq!(orders.len(), 50);
    assert!(orders.iter().all(|o| o.status == "complete"));
    // 50 simultaneous starts may open up to 50 connections (HTTP/1.1), which every later
    // collect then reuses: handshakes stay far below requests.
    let s = sim.stats();
    assert!(2 * s.handshakes < s.requests, "one shared pool: {s:?}");
}
