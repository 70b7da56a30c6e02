//! The library half of the `bankid-ivr` tools, shared by the binary, its tests and the agent
//! page: each module is here so that it can be unit-tested and used without the binary.
//!
//! - [`agi`]: the AGI protocol (replies, commands, quoting), apart from the FastAGI call flow.
//! - [`exit`]: the exit statuses, named once for every command.
//! - [`backend`]: where BankID is (a configured service or an embedded simulator).
//! - [`flow`]: Cally Square exports — the format, `flow check`'s rules (each its own function
//!   with its own tests), and `flow run`.
//! - [`hook`]: `libbankid.so` loaded and driven through its C ABI, as an IVR plug-in would.
//! - [`prompts`]: the audio prompts and their texts.

pub mod agi;
pub mod backend;
pub mod exit;
pub mod flow;
pub mod hook;
pub mod prompts;
