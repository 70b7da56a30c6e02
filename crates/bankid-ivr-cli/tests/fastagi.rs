//! `bankid-ivr fastagi` over a real TCP socket, with this test playing Asterisk: the AGI session
//! headers, a reply to every command, and hang-ups as Asterisk sends them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bankid_sim::{Lab, Scenario, SimConfig, Simulator, Step};

struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// What the server logged on stderr so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A `/proc/PID/status` field in KiB (VmRSS, VmHWM) or a count (Threads).
    fn status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{field} in {text}"))
    }

    fn signal(&self, name: &str) {
        let st = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits for the process to exit; its status.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "still running after {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn start() -> (Lab, Server) {
    start_with(&[])
}

/// The simulator, and `bankid-ivr fastagi` on 127.0.0.1:0 in front of it with `extra` arguments.
fn start_with(extra: &[&str]) -> (Lab, Server) {
    start_wrapped(extra, None, "warn")
}

/// Like [`start_with`]; with `nofile`, the server runs under that file-descriptor limit; it
/// logs at `log_level`.
fn start_wrapped(extra: &[&str], nofile: Option<u32>, log_level: &str) -> (Lab, Server) {
    let sim = SimConfig {
        speed: 0.01,
        ..Default::default()
    };
    start_on(sim, extra, nofile, log_level)
}

/// Like [`start_wrapped`], in front of a simulator with these settings.
fn start_on(sim: SimConfig, extra: &[&str], nofile: Option<u32>, log_level: &str) -> (Lab, Server) {
    let sim = Lab::start(sim).unwrap();
    let config = sim.write_client_toml("poll_interval_ms = 20").unwrap();
    let server = spawn_server(
        &config,
        &sim.dir().join("server.log"),
        extra,
        nofile,
        log_level,
    );
    (sim, server)
}

/// `bankid-ivr fastagi` on 127.0.0.1:0 with the configuration file `config`, its stderr in
/// `log`.
fn spawn_server(
    config: &std::path::Path,
    log: &std::path::Path,
    extra: &[&str],
    nofile: Option<u32>,
    log_level: &str,
) -> Server {
    let log = log.to_path_buf();
    let mut command = match nofile {
        None => Command::new(env!("CARGO_BIN_EXE_bankid-ivr")),
        Some(n) => {
            let mut c = Command::new("sh");
            c.args([
                "-c",
                &format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                env!("CARGO_BIN_EXE_bankid-ivr"),
            ]);
            c
        }
    };
    let mut child = command
        .args([
            "fastagi",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .args(extra)
        .env_remove("BANKID_PRESET")
        .env_remove("BANKID_URL")
        .env_remove("BANKID_SIMULATOR")
        .env("RUST_LOG", log_level)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
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
    Server { child, addr, log }
}

/// A connection to `addr` from the local address `from` (e.g. 127.0.0.2, a second loopback
/// address), as a peer on another host would make.
fn connect_from(addr: &str, from: &str) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let stream = sock.connect(addr.parse().unwrap()).await.unwrap();
        let std = stream.into_std().unwrap();
        std.set_nonblocking(false).unwrap();
        std
    })
}

const ENVIRONMENT: &str = "agi_network: yes\nagi_network_script: bankid-identify\nagi_request: agi://127.0.0.1/bankid-identify\nagi_channel: SIP/trunk-00000001\nagi_uniqueid: 1700000000.1\nagi_callerid: 46700000000\nagi_arg_1: lang=sv,var=__BANKID_RESULT\n\n";

/// The caller ID in [`ENVIRONMENT`].
const CALLER_ID: &str = "46700000000";

/// Whether the server closes `stream` within `within` without sending a byte.
fn closed_without_a_word(stream: &TcpStream, within: Duration) -> Result<(), String> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    match (&*stream).read(&mut buf) {
        Ok(0) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Ok(n) => Err(format!(
            "the server spoke: {:?}",
            String::from_utf8_lossy(&buf[..n])
        )),
        Err(e) => Err(format!("still open after {within:?}: {e}")),
    }
}

/// An order that stays pending (userCallConfirm) until cancelled.
fn pending_forever(sim: &Simulator, pnr: &str) {
    sim.set_scenario(
        pnr,
        Scenario {
            steps: vec![Step {
                hint_code: "userCallConfirm".into(),
                ms: 3_000_000,
            }],
            outcome: "complete".into(),
        },
    );
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the fake Asterisk does.
#[derive(Clone)]
struct Caller {
    /// Replies to successive GET DATA commands (`None` = timeout, nothing entered).
    digits: Vec<Option<String>>,
    /// Send `HANGUP` and close after this STREAM FILE.
    hangup_after_prompt: Option<&'static str>,
    /// `agi_callerid` instead of [`CALLER_ID`].
    caller_id: Option<String>,
}

/// Runs one call; returns every command the server sent.
fn call(addr: &str, caller: Caller) -> Vec<String> {
    call_on(TcpStream::connect(addr).unwrap(), caller)
}

/// Runs one call on a connected stream.
fn call_on(stream: TcpStream, caller: Caller) -> Vec<String> {
    call_with_args(stream, caller, "")
}

/// Runs one call whose environment has `args` as `agi_arg_2`, when not empty.
fn call_with_args(stream: TcpStream, caller: Caller, args: &str) -> Vec<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut environment = match &caller.caller_id {
        Some(id) => ENVIRONMENT.replace(CALLER_ID, id),
        None => ENVIRONMENT.to_string(),
    };
    if !args.is_empty() {
        environment = environment.replace("\n\n", &format!("\nagi_arg_2: {args}\n\n"));
    }
    w.write_all(environment.as_bytes()).unwrap();
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
    let (sim, server) = start();
    // Each step long enough (0.3 s) that its prompt is played even on a loaded machine.
    sim.set_scenario(
        "198503121116",
        Scenario {
            steps: ["outstandingTransaction", "userCallConfirm", "userSign"]
                .map(|h| Step {
                    hint_code: h.into(),
                    ms: 30_000,
                })
                .to_vec(),
            outcome: "complete".into(),
        },
    );
    let cmds = call(
        &server.addr,
        Caller {
            digits: vec![Some("198503121116".into())],
            hangup_after_prompt: None,
            caller_id: None,
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
    let (sim, server) = start();
    let cmds = call(
        &server.addr,
        Caller {
            digits: vec![Some("197709083336".into())],
            hangup_after_prompt: None,
            caller_id: None,
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
            caller_id: None,
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
            caller_id: None,
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
    let (sim, server) = start();
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
            caller_id: None,
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
    let (sim, server) = start();
    // Each order is pending for about 0.5 s, so it is collected many times: on a loaded machine
    // the default 80 ms could be over before the first collect, leaving one start and one
    // collect per order and nothing to tell a shared pool from a connection per order.
    let numbers = valid_numbers(50);
    for n in &numbers {
        sim.set_scenario(
            n,
            Scenario {
                steps: vec![Step {
                    hint_code: "userCallConfirm".into(),
                    ms: 50_000,
                }],
                outcome: "complete".into(),
            },
        );
    }
    let threads: Vec<_> = numbers
        .into_iter()
        .enumerate()
        .map(|(i, pnr)| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                call(
                    &addr,
                    Caller {
                        digits: vec![Some(pnr)],
                        hangup_after_prompt: None,
                        // Fifty callers, not one caller fifty times (the per-caller limit).
                        caller_id: Some(format!("4670000{i:04}")),
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

fn anna() -> Caller {
    Caller {
        digits: vec![Some("198503121116".into())],
        hangup_after_prompt: None,
        caller_id: None,
    }
}

#[test]
fn a_peer_outside_allow_is_closed_before_a_byte_is_read_and_served_once_allowed() {
    let (_sim, server) = start_with(&["--allow", "127.0.0.1/32"]);
    let stranger = connect_from(&server.addr, "127.0.0.2");
    let _ = (&stranger).write_all(ENVIRONMENT.as_bytes());
    closed_without_a_word(&stranger, Duration::from_secs(3)).unwrap();
    wait_for("the refusal is logged", Duration::from_secs(3), || {
        server
            .log()
            .contains("refused a connection from 127.0.0.2:")
    });
    // The allowed host is served.
    let cmds = call_on(connect_from(&server.addr, "127.0.0.1"), anna());
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("complete"));
    drop(server);

    // The same peer, once allowed, is served (and loopback is no longer implied).
    let (_sim, server) = start_with(&["--allow", "127.0.0.2/32"]);
    let cmds = call_on(connect_from(&server.addr, "127.0.0.2"), anna());
    assert_eq!(
        var(&cmds, "BANKID_STATUS").as_deref(),
        Some("complete"),
        "{cmds:?}"
    );
    let local = connect_from(&server.addr, "127.0.0.1");
    closed_without_a_word(&local, Duration::from_secs(3)).unwrap();
}

#[test]
fn ten_megabytes_without_a_newline_close_that_connection_with_memory_bounded() {
    let (sim, server) = start();
    // One call first, so the process has its working set.
    assert_eq!(
        var(&call(&server.addr, anna()), "BANKID_STATUS").as_deref(),
        Some("complete")
    );
    let before = server.status("VmRSS");
    let flood = TcpStream::connect(&server.addr).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0usize;
    while sent < 10 * 1024 * 1024 {
        match (&flood).write_all(&chunk) {
            Ok(()) => sent += chunk.len(),
            Err(_) => break,
        }
    }
    closed_without_a_word(&flood, Duration::from_secs(5)).unwrap();
    let after = server.status("VmRSS");
    let peak = server.status("VmHWM");
    assert!(
        after < before + 4 * 1024,
        "RSS {before} KiB → {after} KiB after {sent} bytes"
    );
    assert!(
        peak < before + 20 * 1024,
        "peak RSS {peak} KiB, {before} KiB before"
    );
    assert!(server.log().contains("a line longer than 8192 bytes"));
    // Every other call goes on.
    let cmds = call(&server.addr, anna());
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("complete"));
    assert_eq!(sim.orders().len(), 2);
}

#[test]
fn a_sender_trickling_one_byte_every_two_seconds_is_dropped_by_the_environment_deadline() {
    let (sim, server) = start_with(&["--env-deadline-ms", "4000"]);
    let slow = TcpStream::connect(&server.addr).unwrap();
    let started = Instant::now();
    let mut w = slow.try_clone().unwrap();
    std::thread::spawn(move || {
        for b in ENVIRONMENT.bytes() {
            if w.write_all(&[b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    });
    closed_without_a_word(&slow, Duration::from_secs(12)).unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(3500) && took < Duration::from_secs(8),
        "closed after {took:?}"
    );
    assert!(
        server
            .log()
            .contains("AGI environment not complete within 4000 ms"),
        "{}",
        server.log()
    );
    assert!(sim.orders().is_empty());
}

#[test]
fn a_silent_asterisk_is_dropped_by_the_reply_deadline_and_its_order_cancelled() {
    let (sim, server) = start_with(&["--reply-deadline-ms", "1000"]);
    pending_forever(&sim, "198503121116");
    let stream = TcpStream::connect(&server.addr).unwrap();
    let mut w = stream.try_clone().unwrap();
    w.write_all(ENVIRONMENT.as_bytes()).unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("GET DATA"), "{line:?}");
    w.write_all(b"200 result=198503121116\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("STREAM FILE bankid-open-app"), "{line:?}");
    // No reply to the prompt, ever.
    let started = Instant::now();
    closed_without_a_word(&stream, Duration::from_secs(5)).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    wait_for(
        "the order cancelled at BankID",
        Duration::from_secs(3),
        || sim.orders().iter().all(|o| o.cancelled_by_rp),
    );
    assert!(server
        .log()
        .contains("no reply to STREAM FILE within 1000 ms"));
}

#[test]
fn connections_beyond_max_calls_are_closed_at_once_while_a_call_completes() {
    let (sim, server) = start_with(&["--max-calls", "2"]);
    // One call holds a slot at the prompt for a number, saying nothing.
    let holder = TcpStream::connect(&server.addr).unwrap();
    (&holder).write_all(ENVIRONMENT.as_bytes()).unwrap();
    let mut first = String::new();
    BufReader::new(holder.try_clone().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("GET DATA"), "{first:?}");
    // A legitimate call whose order takes about 1.5 s.
    sim.set_scenario(
        "198503121116",
        Scenario {
            steps: vec![Step {
                hint_code: "userCallConfirm".into(),
                ms: 150_000,
            }],
            outcome: "complete".into(),
        },
    );
    let addr = server.addr.clone();
    let legit = std::thread::spawn(move || call(&addr, anna()));
    wait_for("the legitimate order", Duration::from_secs(5), || {
        sim.orders().len() == 1
    });
    // Both slots taken: more connections are closed at once, without a word.
    for _ in 0..5 {
        let extra = TcpStream::connect(&server.addr).unwrap();
        let _ = (&extra).write_all(ENVIRONMENT.as_bytes());
        let t = Instant::now();
        closed_without_a_word(&extra, Duration::from_secs(2)).unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    let cmds = legit.join().unwrap();
    assert_eq!(
        var(&cmds, "BANKID_STATUS").as_deref(),
        Some("complete"),
        "{cmds:?}"
    );
    assert!(server.log().contains("2 calls already (--max-calls)"));
    // The freed slot is served again.
    let again = TcpStream::connect(&server.addr).unwrap();
    (&again).write_all(ENVIRONMENT.as_bytes()).unwrap();
    let mut line = String::new();
    again
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    BufReader::new(again).read_line(&mut line).unwrap();
    assert!(line.starts_with("GET DATA"), "{line:?}");
    drop(holder);
}

#[test]
fn sigterm_cancels_every_pending_order_and_tells_live_calls() {
    let (sim, mut server) = start();
    let numbers = valid_numbers(3);
    for n in &numbers {
        pending_forever(&sim, n);
    }
    let calls: Vec<_> = numbers
        .iter()
        .map(|n| {
            let addr = server.addr.clone();
            let caller = Caller {
                digits: vec![Some(n.clone())],
                hangup_after_prompt: None,
                caller_id: None,
            };
            std::thread::spawn(move || call(&addr, caller))
        })
        .collect();
    wait_for("three pending orders", Duration::from_secs(10), || {
        let o = sim.orders();
        o.len() == 3
            && o.iter()
                .all(|o| o.hint_code.as_deref() == Some("userCallConfirm"))
    });
    // A fourth call is still at the prompt for a number (its GET DATA unanswered).
    let keying = TcpStream::connect(&server.addr).unwrap();
    keying
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (&keying).write_all(ENVIRONMENT.as_bytes()).unwrap();
    let mut keying_r = BufReader::new(keying.try_clone().unwrap());
    let mut line = String::new();
    keying_r.read_line(&mut line).unwrap();
    assert!(line.starts_with("GET DATA"), "{line:?}");
    let t = Instant::now();
    server.signal("TERM");
    let st = server.wait_exit(Duration::from_secs(6));
    assert_eq!(st.code(), Some(0), "{}", server.log());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    for c in calls {
        let cmds = c.join().unwrap();
        assert_eq!(
            var(&cmds, "BANKID_STATUS").as_deref(),
            Some("error"),
            "{cmds:?}"
        );
        assert_eq!(
            var(&cmds, "__BANKID_RESULT").as_deref(),
            Some("Identification failed"),
            "{cmds:?}"
        );
    }
    // It hears the same (Asterisk runs the commands once its GET DATA ends), though it never
    // answers; the server does not wait for it past its short stop deadline.
    let mut rest = String::new();
    let _ = keying_r.read_to_string(&mut rest);
    assert!(
        rest.contains("SET VARIABLE __BANKID_RESULT \"Identification failed\"")
            && rest.contains("SET VARIABLE BANKID_STATUS \"error\""),
        "{rest:?}"
    );
    let orders = sim.orders();
    assert_eq!(orders.len(), 3);
    for o in &orders {
        assert!(
            o.cancelled_by_rp || o.status != "pending",
            "left pending at BankID: {o:?}"
        );
    }
    assert!(orders.iter().all(|o| o.cancelled_by_rp), "{orders:?}");
}

#[test]
fn a_hangup_split_across_reads_still_cancels_the_order() {
    let (sim, server) = start();
    pending_forever(&sim, "198503121116");
    let stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    w.write_all(ENVIRONMENT.as_bytes()).unwrap();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "closed early");
        let reply = if line.starts_with("GET DATA") {
            "200 result=198503121116\n"
        } else {
            "200 result=0\n"
        };
        w.write_all(reply.as_bytes()).unwrap();
        if line.starts_with("STREAM FILE bankid-call-confirm") {
            break;
        }
    }
    // The hang-up in two pieces, further apart than the server's 50 ms watch.
    w.write_all(b"HANG").unwrap();
    w.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    w.write_all(b"UP\n").unwrap();
    // The connection stays open: only the HANGUP line can tell the server.
    wait_for(
        "the order cancelled at BankID",
        Duration::from_secs(3),
        || sim.orders().iter().any(|o| o.cancelled_by_rp),
    );
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    assert!(
        !rest.contains("SET VARIABLE"),
        "no result after a hang-up: {rest:?}"
    );
}

#[test]
fn an_environment_of_more_than_128_lines_closes_the_connection() {
    let (sim, server) = start();
    let endless = TcpStream::connect(&server.addr).unwrap();
    let mut w = endless.try_clone().unwrap();
    std::thread::spawn(move || {
        for i in 0..100_000 {
            if writeln!(w, "agi_x{i}: y").is_err() {
                break;
            }
        }
    });
    closed_without_a_word(&endless, Duration::from_secs(5)).unwrap();
    assert!(server.log().contains("more than 128 AGI environment lines"));
    assert!(sim.orders().is_empty());
}

/// CPU time (user + system) of a process, from /proc/PID/stat, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_file_descriptors_the_accept_loop_backs_off_instead_of_spinning() {
    let (sim, server) = start_wrapped(&[], Some(48), "warn");
    // Calls that hold a descriptor each, waiting at the prompt for a number, until the server
    // has none left: further connections wait in the kernel's backlog, accept fails (EMFILE).
    let mut held = Vec::new();
    for _ in 0..60 {
        let c = TcpStream::connect(&server.addr).unwrap();
        let _ = (&c).write_all(ENVIRONMENT.as_bytes());
        held.push(c);
    }
    wait_for("accept failing", Duration::from_secs(5), || {
        server.log().contains("accept failed")
    });
    let pid = server.child.id();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    // A spinning accept loop burns the whole 2 s (200 ticks); backing off costs next to nothing.
    assert!(
        used < 20,
        "{used} ticks of CPU in 2 s while out of descriptors"
    );
    let failures = server.log().matches("accept failed").count();
    assert!(
        failures <= 10,
        "{failures} accept failures logged in about 2 s"
    );
    // Descriptors back: the server serves again.
    drop(held);
    let cmds = call(&server.addr, anna());
    assert_eq!(
        var(&cmds, "BANKID_STATUS").as_deref(),
        Some("complete"),
        "{cmds:?}"
    );
    assert!(sim.orders().iter().any(|o| o.status == "complete"));
}

#[test]
fn a_declined_number_is_blocked_and_one_caller_id_is_limited_per_hour() {
    let (sim, server) = start();
    let cecilia = || Caller {
        digits: vec![Some("197709083336".into())],
        hangup_after_prompt: None,
        caller_id: Some("46711111111".into()),
    };
    let cmds = call(&server.addr, cecilia());
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("failed"));
    // She said she is not on a call with us: the next call for her number is refused before
    // anything reaches BankID, on its own status and prompt.
    let cmds = call(&server.addr, cecilia());
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("blocked"));
    assert_eq!(
        var(&cmds, "__BANKID_RESULT").as_deref(),
        Some("Identification failed")
    );
    assert_eq!(cmds.last().unwrap(), "STREAM FILE bankid-blocked \"\"");
    assert_eq!(
        sim.orders().len(),
        1,
        "the refused call never reached BankID"
    );
    let log = server.log();
    assert!(
        log.contains("SECURITY") && log.contains("770908-XXXX") && !log.contains("7709083336"),
        "{log}"
    );

    // One caller ID keying in ten different numbers in an hour is the limit (the default 10;
    // Cecilia's refused call above is not counted, her declined one is).
    let numbers = valid_numbers(10);
    let mut statuses = Vec::new();
    for n in &numbers {
        let cmds = call(
            &server.addr,
            Caller {
                digits: vec![Some(n.clone())],
                hangup_after_prompt: None,
                caller_id: Some("46722222222".into()),
            },
        );
        statuses.push(var(&cmds, "BANKID_STATUS").unwrap_or_default());
    }
    assert!(statuses.iter().all(|s| s == "complete"), "{statuses:?}");
    let cmds = call(
        &server.addr,
        Caller {
            digits: vec![Some("199908072391".into())],
            hangup_after_prompt: None,
            caller_id: Some("46722222222".into()),
        },
    );
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("blocked"));
    // Another caller with the same number is not affected.
    let cmds = call(
        &server.addr,
        Caller {
            digits: vec![Some("199908072391".into())],
            hangup_after_prompt: None,
            caller_id: Some("46733333333".into()),
        },
    );
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("complete"));
}

#[test]
fn sighup_takes_a_renewed_configuration_for_new_calls_while_running_calls_finish() {
    // Orders at the first BankID live long enough to be pending across the reload.
    let long_lived = SimConfig {
        speed: 0.01,
        order_lifetime: Duration::from_secs(6000),
        ..Default::default()
    };
    let (first, server) = start_on(long_lived, &[], None, "info");
    let second = Lab::start(SimConfig {
        speed: 0.01,
        ..Default::default()
    })
    .unwrap();
    // Pending at the first BankID for 4 s, across the reload.
    first.set_scenario(
        "198503121116",
        Scenario {
            steps: vec![Step {
                hint_code: "userCallConfirm".into(),
                ms: 400_000,
            }],
            outcome: "complete".into(),
        },
    );
    let caller = |pnr: &str, id: &str| Caller {
        digits: vec![Some(pnr.into())],
        hangup_after_prompt: None,
        caller_id: Some(id.into()),
    };
    let addr = server.addr.clone();
    let first_call = caller("198503121116", "46700000001");
    let running = std::thread::spawn(move || call(&addr, first_call));
    wait_for(
        "the first order at the first BankID",
        Duration::from_secs(10),
        || first.orders().len() == 1,
    );
    // The renewed configuration, at the path the server was started with.
    std::fs::write(
        first.dir().join("bankid.toml"),
        format!(
            "url = \"{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\npoll_interval_ms = 20\n",
            second.base_url(),
            second.ca_file().display(),
            second.cert_file().display(),
            second.key_file().display()
        ),
    )
    .unwrap();
    server.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        server.log().contains("BankID configuration reloaded")
    });
    assert_eq!(
        first.orders()[0].status,
        "pending",
        "running across the reload"
    );
    let fresh = call(&server.addr, caller("199908072391", "46700000002"));
    assert_eq!(var(&fresh, "BANKID_STATUS").as_deref(), Some("complete"));
    let old = running.join().unwrap();
    assert_eq!(
        var(&old, "BANKID_STATUS").as_deref(),
        Some("complete"),
        "{old:?}\n{:?}\n{}",
        first.orders(),
        server.log()
    );
    let masked = |lab: &Simulator| {
        lab.orders()
            .iter()
            .filter_map(|o| o.personal_number_masked.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(masked(&first), vec!["850312-XXXX".to_string()]);
    assert_eq!(masked(&second), vec!["990807-XXXX".to_string()]);
}

#[path = "../../../tests/support/prom.rs"]
mod prom;

/// A GET over a fresh connection: the status code and the body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{resp:?}"));
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    // hyper sends a short body with Content-Length, not chunked.
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    (status, body.to_string())
}

#[test]
fn metrics_listener_serves_metrics_health_and_readiness() {
    let sim = Lab::start(SimConfig {
        speed: 0.01,
        ..Default::default()
    })
    .unwrap();
    let config = sim.write_client_toml("poll_interval_ms = 20").unwrap();
    let log = sim.dir().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bankid-ivr"))
        .args([
            "fastagi",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .args(["--config", config.to_str().unwrap()])
        .env_remove("BANKID_PRESET")
        .env_remove("BANKID_URL")
        .env_remove("BANKID_SIMULATOR")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    out.read_line(&mut second).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening agi://")
        .and_then(|s| s.strip_suffix("/bankid-identify"))
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    let metrics = second
        .trim()
        .strip_prefix("metrics http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("second line: {second:?}"))
        .to_string();
    let server = Server { child, addr, log };

    assert_eq!(http_get(&metrics, "/healthz"), (200, "ok\n".into()));
    assert_eq!(http_get(&metrics, "/readyz").0, 200);
    assert_eq!(http_get(&metrics, "/nothing").0, 404);
    for digits in ["198503121116", "197709083336"] {
        call(
            &server.addr,
            Caller {
                digits: vec![Some(digits.into())],
                hangup_after_prompt: None,
                caller_id: None,
            },
        );
    }
    // The orders' tasks count their ends as they finish.
    let mut samples = Vec::new();
    wait_for("both orders counted", Duration::from_secs(10), || {
        let (status, text) = http_get(&metrics, "/metrics");
        assert_eq!(status, 200);
        samples = prom::parse_metrics(&text);
        prom::sample(&samples, "bankid_orders_finished_total", &[]) == 2.0
    });
    assert_eq!(
        prom::sample(&samples, "bankid_orders_started_total", &[]),
        2.0
    );
    assert_eq!(
        prom::sample(
            &samples,
            "bankid_orders_finished_total",
            &[("state", "complete")]
        ),
        1.0
    );
    assert_eq!(
        prom::sample(&samples, "bankid_declined_calls_total", &[]),
        1.0
    );
    let (status, body) = http_get(&metrics, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("BankID last answered"), "{body}");

    // BankID gone and a call tried: not ready, still healthy.
    drop(sim);
    call(
        &server.addr,
        Caller {
            digits: vec![Some("196801642395".into())],
            hangup_after_prompt: None,
            caller_id: None,
        },
    );
    let (status, body) = http_get(&metrics, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready: "), "{body}");
    assert_eq!(http_get(&metrics, "/healthz").0, 200);
}

#[test]
fn metrics_on_a_non_loopback_address_needs_metrics_public() {
    let sim = Lab::start(SimConfig::default()).unwrap();
    let config = sim.write_client_toml("").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bankid-ivr"))
        .args([
            "fastagi",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "10.1.2.3:9464",
        ])
        .args(["--config", config.to_str().unwrap()])
        .env_remove("BANKID_PRESET")
        .env_remove("BANKID_URL")
        .env_remove("BANKID_SIMULATOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics-public"), "{err}");
}

#[test]
fn a_signing_with_the_id_document_check_over_agi_arguments() {
    let (sim, server) = start();
    // Each step 0.3 s, so each prompt is played even on a loaded machine.
    sim.set_scenario(
        "198503121116",
        Scenario {
            steps: [
                "outstandingTransaction",
                "userCallConfirm",
                "userMrtd",
                "userSign",
            ]
            .map(|h| Step {
                hint_code: h.into(),
                ms: 30_000,
            })
            .to_vec(),
            outcome: "complete".into(),
        },
    );
    let cmds = call_with_args(
        TcpStream::connect(&server.addr).unwrap(),
        anna(),
        "mode=sign,text=Jag godk%C3%A4nner adress%C3%A4ndringen till Storgatan 1%2C Ort,iddoc=1,pin=1",
    );
    let played: Vec<&String> = cmds
        .iter()
        .filter(|c| c.starts_with("STREAM FILE"))
        .collect();
    let pos = |p: &str| {
        cmds.iter()
            .position(|c| c.starts_with(&format!("STREAM FILE {p} ")))
            .unwrap_or_else(|| panic!("{p} not played: {played:?}"))
    };
    // The notices come before the order is started, the document step while it runs.
    assert!(
        pos("bankid-call-notice") < pos("bankid-open-app"),
        "{played:?}"
    );
    assert!(
        pos("bankid-have-id-document") < pos("bankid-open-app"),
        "{played:?}"
    );
    assert!(
        pos("bankid-sign-notice") < pos("bankid-open-app"),
        "{played:?}"
    );
    assert!(pos("bankid-rfa23") > pos("bankid-open-app"), "{played:?}");
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("complete"));
    assert_eq!(var(&cmds, "BANKID_ID_DOCUMENT").as_deref(), Some("checked"));
    assert_eq!(
        var(&cmds, "BANKID_SIGNED_TEXT").as_deref(),
        Some("Jag godkänner adressändringen till Storgatan 1, Ort")
    );
    let row = serde_json::to_value(sim.orders().pop().unwrap()).unwrap();
    assert_eq!(row["endpoint"], "phone/sign");
    assert_eq!(
        row["requirement"],
        serde_json::json!({"pinCode": true, "mrtd": true})
    );
}

#[test]
fn bad_agi_arguments_start_nothing() {
    let (sim, server) = start();
    for args in ["mode=sign", "iddoc=2", "mode=approve"] {
        let cmds = call_with_args(TcpStream::connect(&server.addr).unwrap(), anna(), args);
        assert_eq!(
            var(&cmds, "BANKID_STATUS").as_deref(),
            Some("error"),
            "{args}: {cmds:?}"
        );
        assert!(
            !cmds.iter().any(|c| c.starts_with("GET DATA")),
            "{args}: {cmds:?}"
        );
    }
    assert!(sim.orders().is_empty());
}

#[path = "../../../tests/support/audit_db.rs"]
mod audit_db;

/// A lab whose configuration records in `database` (a PostgreSQL URL, with a key file made
/// for it; `None`: the lab's own SQLite file), and the server in front of it.
fn start_recording(pg: Option<&str>) -> (Lab, Server, bankid::audit::Database, PathBuf) {
    let sim = Lab::start(SimConfig {
        speed: 0.01,
        ..Default::default()
    })
    .unwrap();
    let (database, extra) = match pg {
        None => (
            bankid::audit::Database::Sqlite(sim.audit_db_file()),
            String::new(),
        ),
        Some(url) => {
            let key = sim.dir().join("shared.key");
            bankid::audit::PseudonymKey::load_or_create(&key).unwrap();
            (
                bankid::audit::Database::Postgres(url.into()),
                format!(
                    "audit_database = \"{url}\"\naudit_key_file = \"{}\"\n",
                    key.display()
                ),
            )
        }
    };
    let config = sim
        .write_client_toml(&format!("poll_interval_ms = 20\n{extra}"))
        .unwrap();
    let server = spawn_server(&config, &sim.dir().join("server.log"), &[], None, "warn");
    (sim, server, database, config)
}

/// One identification of Anna, recorded: FastAGI, the call's uniqueid and caller ID.
fn a_call_is_recorded(pg: Option<&str>) {
    let (sim, mut server, database, config) = start_recording(pg);
    let cmds = call(&server.addr, anna());
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("complete"));
    audit_db::wait_for_orders(&database, 1, Duration::from_secs(60));
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    let rows = audit_db::orders(&database);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = &rows[0];
    assert_eq!(r.channel, "fastagi");
    assert_eq!(r.call_id.as_deref(), Some("1700000000.1"));
    assert_eq!(r.caller_id.as_deref(), Some(CALLER_ID));
    assert_eq!(r.state, "complete");
    assert_eq!(r.pnr_masked, "850312-XXXX");
    let key = bankid::Config::from_file(&config).unwrap().audit.key_file;
    let key = bankid::audit::PseudonymKey::load(&key).unwrap();
    let anna = bankid::Personnummer::parse("198503121116").unwrap();
    assert_eq!(r.pnr_pseudonym, key.pseudonym(&anna));
    let order_ref = r.order_ref.clone().unwrap();
    assert_eq!(sim.orders()[0].order_ref, order_ref);
    let kept: serde_json::Value =
        serde_json::from_str(r.completion_data.as_deref().unwrap()).unwrap();
    assert_eq!(Some(kept), sim.completion_sent(&order_ref));
}

#[test]
fn a_call_is_recorded_with_its_uniqueid_and_caller_id_in_sqlite() {
    a_call_is_recorded(None);
}

#[test]
fn a_call_is_recorded_with_its_uniqueid_and_caller_id_in_postgresql() {
    let pg = bankid_sim::testdb::TestDb::new();
    a_call_is_recorded(Some(pg.url()));
}

#[test]
fn a_kill_9_after_an_identifications_record_is_spooled_loses_nothing_and_records_it_once() {
    let pg = bankid_sim::testdb::TestDb::new();
    let (sim, mut server, database, config) = start_recording(Some(pg.url()));
    let spool = sim.audit_spool_dir();
    // The database goes away; the caller is identified all the same.
    pg.cut_off();
    let cmds = call(&server.addr, anna());
    assert_eq!(var(&cmds, "BANKID_STATUS").as_deref(), Some("complete"));
    wait_for("the record in the spool", Duration::from_secs(20), || {
        audit_db::spooled(&spool) == 1
    });
    // Between the identification and its commit: no shutdown, no flush.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert_eq!(audit_db::spooled(&spool), 1, "the spool survived");
    pg.restore();
    assert!(audit_db::orders(&database).is_empty());
    // The next server with the same spool writes it.
    let mut again = spawn_server(&config, &sim.dir().join("server2.log"), &[], None, "warn");
    let rows = audit_db::wait_for_orders(&database, 1, Duration::from_secs(60));
    wait_for("the spool emptied", Duration::from_secs(20), || {
        audit_db::spooled(&spool) == 0
    });
    again.signal("TERM");
    assert!(again.wait_exit(Duration::from_secs(20)).success());
    let after = audit_db::orders(&database);
    assert_eq!(after.len(), 1, "exactly once: {after:#?}");
    assert_eq!(rows, after);
    assert_eq!(after[0].call_id.as_deref(), Some("1700000000.1"));
    assert_eq!(
        after[0].order_ref.as_ref(),
        Some(&sim.orders()[0].order_ref)
    );
}
