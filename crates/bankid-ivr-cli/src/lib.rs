//! The library half of the `bankid-ivr` tools, shared by the binary and its tests: each module
//! is here so that it can be unit-tested and used without the binary.
//!
//! - [`agi`]: the AGI protocol (replies, commands, quoting), apart from the FastAGI call flow.
//! - [`doctor`]: `bankid-ivr doctor`, whether this host can identify callers (a checklist).
//! - [`exit`]: the exit statuses, named once for every command.
//! - [`flow`]: Cally Square exports — the format, `flow check`'s rules (each its own function
//!   with its own tests), and `flow run`.
//! - [`hook`]: `libbankid.so` loaded and driven through its C ABI, as an IVR plug-in would.
//! - [`prompts`]: the audio prompts and their texts.

pub mod agi;
pub mod doctor;
pub mod exit;
pub mod flow;
pub mod hook;
pub mod prompts;
