//! The `bankid-ivr` tools' library part: what their tests and other tools reuse.
