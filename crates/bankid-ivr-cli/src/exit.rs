//! The exit statuses of every `bankid-ivr` command, named once: an IVR's System block and
//! scripts branch on these numbers, so they are part of the interface and must not drift
//! between commands.

/// Success: identified (`identify`), every file clean (`flow check`), the call reached a queue
/// or a hang-up block (`flow run`), a clean stop on SIGTERM/SIGINT (`fastagi`), no check
/// failed (`doctor`; warnings allowed).
pub const OK: i32 = 0;
/// The outcome was negative: BankID said failed or the order was cancelled (`identify`), a
/// file has problems (`flow check`), the caller hung up (`flow run`), a check failed
/// (`doctor`).
pub const FAILED: i32 = 1;
/// Bad arguments or configuration, or nothing to run: the command could not do its job
/// (`flow run`: the flow itself is broken).
pub const USAGE: i32 = 2;
/// No usable answer from BankID: an error code, the connection, a deadline (`identify`).
pub const ERROR: i32 = 3;
