//! Measures how many RP API requests per second bankid-sim answers over mTLS with keep-alive:
//! `cargo run --release -p bankid-sim --example load -- [CONNECTIONS] [SECONDS]`.
//! Each connection starts a phone order for its own person and collects it in a loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bankid_sim::{Scenario, SimConfig, Simulator, Step};

fn valid(serial: u32) -> String {
    let base = format!("19750505{serial:03}");
    let sum: u32 = base[2..]
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let p = c.to_digit(10).unwrap() * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    format!("{base}{}", (10 - sum % 10) % 10)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let conns: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let sim = Simulator::start(SimConfig::default()).unwrap();
    let certs = sim.certs().clone();
    let count = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let pnr = valid(100 + i);
        sim.set_scenario(
            &pnr,
            Scenario {
                steps: vec![Step {
                    hint_code: "userSign".into(),
                    ms: 600_000,
                }],
                outcome: "complete".into(),
            },
        );
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(certs.ca_pem.as_bytes()).unwrap())
            .identity(
                reqwest::Identity::from_pem(
                    format!("{}\n{}", certs.client_pem, certs.client_key_pem).as_bytes(),
                )
                .unwrap(),
            )
            .use_rustls_tls()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let base = sim.base_url();
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            let v: serde_json::Value = client
                .post(format!("{base}phone/auth"))
                .json(&serde_json::json!({"personalNumber": pnr, "callInitiator": "user"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let body = serde_json::json!({"orderRef": v["orderRef"]});
            while Instant::now() < until {
                let r = client
                    .post(format!("{base}collect"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let _ = r.bytes().await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let t = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    let n = count.load(Ordering::Relaxed);
    let s = sim.stats();
    println!(
        "bankid-sim: {n} collects in {:.2} s over {conns} keep-alive connections = {:.0} requests/s ({} TLS handshakes)",
        t.elapsed().as_secs_f64(),
        n as f64 / t.elapsed().as_secs_f64(),
        s.handshakes
    );
}
