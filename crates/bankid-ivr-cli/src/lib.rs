//! Shared by the `bankid-ivr` tools and the agent page: where BankID is (a configured service or
//! an embedded simulator).

pub mod backend;
