//! The library half of the `bankid-ivr` tools, shared by the binary, its tests and the agent
//! page: each module is here so that it can be unit-tested and used without the binary.
//!
//! - [`agi`]: the AGI protocol (replies, commands, quoting), apart from the FastAGI call flow.
//! - [`backend`]: where BankID is (a configured service or an embedded simulator).

pub mod agi;
pub mod backend;
