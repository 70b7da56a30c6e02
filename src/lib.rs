//! # bankid-ivr
//!
//! Swedish BankID identification for phone calls: the RP API v6 `phone/auth` flow over mutual
//! TLS, polled in the background, behind a small C ABI that IVR runtimes load (`libbankid.so`,
//! header `include/bankid.h`) and a safe Rust API.
//!
//! ```no_run
//! use std::time::Duration;
//! use bankid::messages::Language;
//! use bankid::{Config, Engine, Personnummer, StartOptions};
//!
//! // Where BankID is and who we are (or Config::from_env() for BANKID_* variables).
//! let engine = Engine::new(Config::from_file("/etc/bankid/bankid.toml".as_ref())?)?;
//! // 12 digits from DTMF, or 10/12 with - or + as an agent types them; checked here, and a
//! // malformed number never reaches BankID.
//! let pnr = Personnummer::parse("198503121116")?;
//! // Returns at once; phone/auth and the collects run on the engine's own small runtime. The
//! // anti-vishing limits may refuse it (order::Error::Refused) before anything is sent.
//! let id = engine.start(
//!     &pnr,
//!     StartOptions { caller_id: Some("46701234567".into()), ..Default::default() },
//! )?;
//! let view = loop {
//!     let v = engine.poll(id)?; // a lookup: never I/O, never blocks
//!     // What to play or show now, per BankID code, in both languages.
//!     println!("{}", v.guidance().caller.text(Language::Sv));
//!     if v.state.is_final() {
//!         break v;
//!     }
//!     std::thread::sleep(Duration::from_millis(500));
//! };
//! // "Identification successful for social security number 850312-1116" or "… failed".
//! println!("{} ({:?}, {:?})", view.result_text, view.hint_code, view.error);
//! // Forget it; a pending order is cancelled at BankID (a hang-up must do this at once).
//! engine.release(id)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules, one concept each:
//! - [`personnummer`]: parsing and validating personal numbers, masked display.
//! - [`rp`]: the BankID RP API v6 types (open enums for every code) and HTTP client.
//! - [`tls`]: trust anchors and the RP's client identity (PEM, encrypted PKCS#8, PKCS#12).
//! - [`certinfo`]: a certificate's subject, validity and days left (the engine's expiry warning).
//! - [`config`]: configuration from a TOML file or `BANKID_*` environment variables.
//! - [`order`]: the order engine ([`order::Engine`]): handles, the order task, anti-vishing
//!   limits, the result line.
//! - [`messages`]: what the caller, the agent and the IVR are told, per code ([`messages::guidance`]).
//! - [`metrics`]: the engine's Prometheus metrics (OpenMetrics text) and readiness.
//! - [`audit`]: the audit trail — one record per order in SQLite or PostgreSQL, BankID's
//!   evidence, the spool that loses nothing, retention.
//! - [`ffi`]: the C ABI (conventions in its module docs and the header banner).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod certinfo;
pub mod config;
#[allow(unsafe_code)]
pub mod ffi;
pub mod messages;
pub mod metrics;
pub mod order;
pub mod personnummer;
pub mod rp;
pub mod tls;

pub use config::Config;
pub use order::{Engine, Mode, OrderId, OrderView, StartOptions, State};
pub use personnummer::Personnummer;
