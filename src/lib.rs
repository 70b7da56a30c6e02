//! # bankid-ivr
//!
//! Swedish BankID identification for phone calls: the RP API v6 `phone/auth` flow over mutual
//! TLS, polled in the background, behind a small C ABI that IVR runtimes load (`libbankid.so`,
//! header `include/bankid.h`) and a safe Rust API.
//!
//! - [`personnummer`]: parsing and validating personal numbers, masked display.
//! - [`rp`]: the BankID RP API v6 types and HTTP client.
//! - [`tls`]: trust anchors and the RP's client identity (PEM, encrypted PKCS#8, PKCS#12).
//! - [`config`]: configuration from a TOML file or `BANKID_*` environment variables.
//! - [`order`]: the order engine ([`order::Engine`]).
//! - [`messages`]: what to tell the caller or agent (BankID's RFA texts, sv/en).
//! - `ffi`: the C ABI (see the README and `include/bankid.h`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
#[allow(unsafe_code)]
pub mod ffi;
pub mod messages;
pub mod order;
pub mod personnummer;
pub mod rp;
pub mod tls;

pub use config::Config;
pub use order::{Engine, OrderId, OrderView, StartOptions, State};
pub use personnummer::Personnummer;
