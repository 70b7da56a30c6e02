//! Soak: the engine keeps `--orders` identifications in flight for `--minutes` against a
//! bankid-sim process over mutual TLS while a share of all requests (`--fault-share`, 5 %) is
//! faulted at random. Every 10 s it prints the engine process's RSS and thread count; at the end
//! it checks that every order became final by its deadline and that none is left pending at the
//! simulator. A benchmark, not a test: `bash bench/soak.sh` (figures in bench/README.md).
//!
//! ```sh
//! cargo build --release -p bankid-sim --example soak
//! target/release/examples/soak --minutes 10 --orders 2000
//! ```
//!
//! The simulator runs as its own process (`target/release/bankid-sim`, next to this example's
//! directory), so the RSS printed is the engine's alone. Faults are injected through the
//! simulator's control API: every 200 ms, one fault (of a random kind, striking the next request
//! to any endpoint) for every 20 requests the simulator answered since. The anti-vishing limits
//! are off: this measures the engine under faults, not the limits.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bankid::config::{Config, Identity};
use bankid::order::{Engine, LimitSettings, OrderId, StartOptions};
use bankid::Personnummer;

struct Args {
    minutes: f64,
    orders: usize,
    fault_share: f64,
}

fn args() -> Args {
    let mut a = Args {
        minutes: 10.0,
        orders: 2000,
        fault_share: 0.05,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let val = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--minutes" => a.minutes = val.parse().expect("--minutes N"),
            "--orders" => a.orders = val.parse().expect("--orders N"),
            "--fault-share" => a.fault_share = val.parse().expect("--fault-share F"),
            other => panic!("unknown argument {other}; see the example's doc"),
        }
    }
    a
}

/// `n` distinct valid personal numbers (distinct birth dates from 1940, serial 123).
fn numbers(n: usize) -> Vec<Personnummer> {
    let mut out = Vec::with_capacity(n);
    let mut day = 0i64;
    while out.len() < n {
        // Days since 1970 → civil date, via a 12-digit candidate the parser validates.
        let (y, m, d) = civil(-10_957 + day);
        day += 1;
        for serial in [123, 456] {
            let nine = format!("{:02}{m:02}{d:02}{serial:03}", y % 100);
            let sum: u32 = nine
                .bytes()
                .enumerate()
                .map(|(i, b)| {
                    let p = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
                    p / 10 + p % 10
                })
                .sum();
            let s = format!("{}{nine}{}", y / 100, (10 - sum % 10) % 10);
            if let Ok(p) = Personnummer::parse(&s) {
                out.push(p);
            }
        }
    }
    out.truncate(n);
    out
}

fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn proc_status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

struct Sim {
    child: Child,
    url: String,
    dir: std::path::PathBuf,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_sim() -> Sim {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("bankid-sim");
    assert!(
        bin.is_file(),
        "{} is missing: cargo build --release -p bankid-sim",
        bin.display()
    );
    let dir = std::env::temp_dir().join(format!("bankid-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(bin)
        .args(["--speed", "1", "--certs"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().trim_start_matches("listening ").to_string();
    Sim { child, url, dir }
}

/// The simulator's control API (`/sim/*`), over the same mutual TLS.
struct Control {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

impl Control {
    fn new(config: &Config, url: &str) -> Control {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = {
            let _g = rt.enter();
            reqwest::Client::builder()
                .use_preconfigured_tls(config.tls_config().unwrap())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap()
        };
        let base = url.trim_end_matches("rp/v6.0/").to_string();
        Control { rt, http, base }
    }

    fn get(&self, path: &str) -> serde_json::Value {
        self.rt.block_on(async {
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    fn post(&self, path: &str, body: serde_json::Value) {
        self.rt.block_on(async {
            let r = self
                .http
                .post(format!("{}{path}", self.base))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
        })
    }
}

/// The kinds injected, each striking the next request to any endpoint once.
const KINDS: [(&str, Option<u64>); 11] = [
    ("maintenance", None),
    ("tooManyRequests", None),
    ("internalError", None),
    ("requestTimeout", None),
    ("html502", None),
    ("html503", None),
    ("malformedJson", None),
    ("drop", None),
    ("delay", Some(3000)),
    ("unknownHintCode", None),
    ("extraFields", None),
];

fn main() {
    let a = args();
    let sim = start_sim();
    let identity = Identity::Pem {
        cert_file: sim.dir.join("client.pem"),
        key_file: sim.dir.join("client.key"),
        key_password: None,
    };
    let mut config = Config::custom(&sim.url, &sim.dir.join("ca.pem"), identity);
    config.poll_interval = Duration::from_secs(2);
    config.order_timeout = Duration::from_secs(60);
    config.request_timeout = Duration::from_secs(2);
    config.limits = LimitSettings {
        declined_block: Duration::ZERO,
        per_number: 0,
        per_caller: 0,
    };
    // The soak's records stay with its simulator, never in a real state directory.
    config.audit = bankid::audit::AuditSettings::in_dir(&sim.dir);
    let control = Control::new(&config, &sim.url);
    let deadline_slack = config.order_timeout + Duration::from_secs(10);
    let threads_idle = proc_status("Threads:");
    let engine = Engine::new(config).unwrap();

    // Fault injector: one fault per 1/share requests answered.
    let stop = Arc::new(AtomicBool::new(false));
    let injector = {
        let stop = stop.clone();
        let ctl = Control::new(engine.config(), &sim.url);
        let share = a.fault_share;
        std::thread::spawn(move || {
            let mut seen = ctl.get("sim/stats")["requests"].as_u64().unwrap_or(0);
            let mut owed = 0.0f64;
            let mut injected = 0u64;
            let mut k = 0usize;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                let now = ctl.get("sim/stats")["requests"].as_u64().unwrap_or(seen);
                owed += (now.saturating_sub(seen)) as f64 * share;
                seen = now;
                while owed >= 1.0 {
                    // Pseudo-random but reproducible: a stride through the kinds.
                    k = (k + 7) % KINDS.len();
                    let (kind, delay) = KINDS[k];
                    let mut f = serde_json::json!({"kind": kind, "count": 1});
                    if let Some(ms) = delay {
                        f["delayMs"] = ms.into();
                    }
                    ctl.post("sim/faults", f);
                    injected += 1;
                    owed -= 1.0;
                }
            }
            (injected, seen)
        })
    };

    let pool = numbers(a.orders * 3);
    let mut free: VecDeque<Personnummer> = pool.into_iter().collect();
    let mut live: HashMap<OrderId, (Personnummer, Instant)> = HashMap::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut late = 0u64;
    let mut refused = 0u64;
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let run_for = Duration::from_secs_f64(a.minutes * 60.0);
    let mut next_sample = Instant::now();
    let (mut rss_max, mut threads_max) = (0u64, 0u64);
    let mut samples = Vec::new();
    println!("| t | in flight | finished | RSS | threads | CPU (s) |");
    println!("|---|---|---|---|---|---|");
    loop {
        let running = t0.elapsed() < run_for;
        if running {
            while live.len() < a.orders {
                let Some(p) = free.pop_front() else { break };
                match engine.start(&p, StartOptions::default()) {
                    Ok(id) => {
                        live.insert(id, (p, Instant::now()));
                    }
                    Err(e) => {
                        refused += 1;
                        eprintln!("start refused: {e}");
                        free.push_back(p);
                        break;
                    }
                }
            }
        } else if live.is_empty() {
            break;
        }
        let finished: Vec<OrderId> = live
            .keys()
            .copied()
            .filter(|id| engine.state(*id).map_or(true, |s| s.is_final()))
            .collect();
        for id in finished {
            let (p, started) = live.remove(&id).unwrap();
            if started.elapsed() > deadline_slack {
                late += 1;
            }
            let v = engine.poll(id).unwrap();
            let key = match v.state {
                bankid::State::Complete => "Complete".to_string(),
                state => format!(
                    "{state:?} {}",
                    match (&v.error, &v.hint_code) {
                        (Some(e), _) => e.to_string(),
                        (None, Some(h)) => h.to_string(),
                        (None, None) => String::new(),
                    }
                ),
            };
            *outcomes.entry(key).or_default() += 1;
            engine.release(id).unwrap();
            free.push_back(p);
        }
        if live
            .values()
            .any(|(_, started)| started.elapsed() > deadline_slack)
        {
            late += 1;
            eprintln!("an order is still pending past its deadline");
            break;
        }
        if Instant::now() >= next_sample {
            let rss = proc_status("VmRSS:");
            let threads = proc_status("Threads:");
            rss_max = rss_max.max(rss);
            threads_max = threads_max.max(threads);
            let done: u64 = outcomes.values().sum();
            println!(
                "| {:.0} s | {} | {done} | {:.1} MiB | {threads} | {:.1} |",
                t0.elapsed().as_secs_f64(),
                live.len(),
                rss as f64 / 1024.0,
                cpu_seconds() - cpu0
            );
            samples.push((rss, threads));
            next_sample += Duration::from_secs(10);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let (injected, requests) = injector.join().unwrap();
    let cpu = cpu_seconds() - cpu0;
    engine.shutdown();
    drop(engine);
    let threads_after = proc_status("Threads:");
    // Faults still waiting would strike the check below; then let BankID's side settle.
    let _ = control.rt.block_on(async {
        control
            .http
            .delete(format!("{}sim/faults", control.base))
            .send()
            .await
    });
    let orders = control.get("sim/orders");
    let list = orders["orders"].as_array().cloned().unwrap_or_default();
    let pending = list.iter().filter(|o| o["status"] == "pending").count();
    let done: u64 = outcomes.values().sum();
    println!();
    println!(
        "{done} orders in {:.0} s ({:.1}/s), {requests} requests to the simulator, {injected} faults injected ({:.1} %), engine CPU {cpu:.1} s ({:.0} µs per request)",
        t0.elapsed().as_secs_f64(),
        done as f64 / t0.elapsed().as_secs_f64(),
        injected as f64 * 100.0 / requests.max(1) as f64,
        cpu * 1e6 / requests.max(1) as f64
    );
    let (first, last) = (samples.first().copied(), samples.last().copied());
    if let (Some((r0, t0s)), Some((r1, t1s))) = (first, last) {
        println!(
            "RSS first/last/max: {:.1}/{:.1}/{:.1} MiB; threads first/last/max: {t0s}/{t1s}/{threads_max} (before the engine: {threads_idle}, after shutdown: {threads_after})",
            r0 as f64 / 1024.0,
            r1 as f64 / 1024.0,
            rss_max as f64 / 1024.0
        );
    }
    println!("outcomes:");
    for (k, n) in &outcomes {
        println!("  {n:>7}  {k}");
    }
    println!(
        "late (not final by deadline + 10 s): {late}; refused starts: {refused}; left pending at the simulator: {pending} of {} orders it still holds",
        list.len()
    );
    if late > 0 || pending > 0 {
        std::process::exit(1);
    }
}
