//! bankid-ivr: Swedish BankID phone identification behind a C ABI.
#![deny(unsafe_code)]
