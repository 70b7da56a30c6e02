//! The C ABI: every `extern "C"` item and all `unsafe` of the crate live here.
//!
//! Conventions: every fallible function returns a `bankid_status`; outputs go through `*_out`
//! parameters written only on success; strings out are snprintf-style; every body runs inside
//! a panic boundary; every pointer is checked; releasing 0 is a no-op.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::messages::Language;
use crate::order::{Engine, Error, Refusal, StartOptions, State};
use crate::personnummer::Personnummer;
use crate::rp::CallInitiator;

/// Result of every fallible function. Values are never reused; new ones are appended.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bankid_status {
    /// Success.
    BANKID_OK = 0,
    /// An integer argument is out of range (unknown language, call initiator, …).
    BANKID_INVALID_ARGUMENT = 1,
    /// A required pointer was NULL.
    BANKID_NULL_POINTER = 2,
    /// A string argument is not UTF-8.
    BANKID_INVALID_UTF8 = 3,
    /// `bankid_init` has not succeeded (or `bankid_shutdown` was called).
    BANKID_NOT_INITIALIZED = 4,
    /// `bankid_init` was already called successfully.
    BANKID_ALREADY_INITIALIZED = 5,
    /// The configuration is unusable; `bankid_last_error` names the setting or file.
    BANKID_CONFIG_ERROR = 6,
    /// The personal number is malformed; `bankid_last_error` says how (never with its digits).
    BANKID_INVALID_PERSONAL_NUMBER = 7,
    /// The order handle was never issued or was released.
    BANKID_STALE_HANDLE = 8,
    /// The buffer is too small; `*out_len` holds the length needed (without the NUL).
    BANKID_BUFFER_TOO_SMALL = 9,
    /// The order is still pending, so there is no result text yet.
    BANKID_NOT_FINISHED = 10,
    /// A bug inside the library was caught at the boundary; the host is unaffected.
    BANKID_PANIC = 11,
    /// An internal failure (e.g. the background runtime could not start).
    BANKID_INTERNAL = 12,
    /// The configured maximum number of orders is held; release some.
    BANKID_TOO_MANY_ORDERS = 13,
    /// Refused before reaching BankID: this personal number declined a BankID call recently
    /// (a possible fraud attempt; `declined_block_min`). Take the block's *failed* exit.
    BANKID_DECLINED_RECENTLY = 14,
    /// Refused before reaching BankID: too many orders for this personal number or this caller
    /// ID in the last hour (`max_orders_per_number_per_hour`, `max_orders_per_caller_per_hour`).
    BANKID_RATE_LIMITED = 15,
}

use bankid_status::*;

/// Order state written by `bankid_poll`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bankid_state {
    /// Being started or pending at BankID: keep prompting (see `bankid_message`).
    BANKID_STATE_PENDING = 1,
    /// Identified: `bankid_result_text` holds the success text.
    BANKID_STATE_COMPLETE = 2,
    /// BankID said failed (cancelled, declined call, expired, …) or the host cancelled it.
    BANKID_STATE_FAILED = 3,
    /// No usable answer from BankID (error code, connection, local deadline).
    BANKID_STATE_ERROR = 4,
}

/// Message language for `bankid_message`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bankid_lang {
    /// Swedish.
    BANKID_LANG_SV = 0,
    /// English.
    BANKID_LANG_EN = 1,
}

/// `callInitiator` for `bankid_start`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bankid_call_initiator {
    /// The configured default (`call_initiator`, normally `user`).
    BANKID_CALL_INITIATOR_DEFAULT = 0,
    /// The caller called us.
    BANKID_CALL_INITIATOR_USER = 1,
    /// We called the caller.
    BANKID_CALL_INITIATOR_RP = 2,
}

/// An order handle. 0 is never a valid handle.
pub type bankid_order = u64;

/// A log callback: `level` 1 error, 2 warn, 3 info, 4 debug, 5 trace; `message` is valid only
/// during the call. Called from library threads; must not call back into the library.
pub type bankid_log_callback =
    Option<unsafe extern "C" fn(level: u32, message: *const c_char, userdata: *mut c_void)>;

static ENGINE: RwLock<Option<Arc<Engine>>> = RwLock::new(None);

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_error(msg: impl Into<String>) {
    let msg = msg.into();
    LAST_ERROR.with(|e| *e.borrow_mut() = msg);
}

fn fail(status: bankid_status, msg: impl Into<String>) -> bankid_status {
    set_error(msg);
    status
}

fn engine_error(e: Error) -> bankid_status {
    let status = match &e {
        Error::Config(_) => BANKID_CONFIG_ERROR,
        Error::InvalidPersonalNumber(_) => BANKID_INVALID_PERSONAL_NUMBER,
        Error::StaleHandle => BANKID_STALE_HANDLE,
        Error::TooManyOrders => BANKID_TOO_MANY_ORDERS,
        Error::InvalidArgument(_) => BANKID_INVALID_ARGUMENT,
        Error::Runtime(_) => BANKID_INTERNAL,
        Error::ShutDown => BANKID_NOT_INITIALIZED,
        Error::Refused(Refusal::DeclinedRecently { .. }) => BANKID_DECLINED_RECENTLY,
        Error::Refused(_) => BANKID_RATE_LIMITED,
    };
    fail(status, e.to_string())
}

macro_rules! guard {
    ($body:expr) => {
        match catch_unwind(AssertUnwindSafe(|| -> bankid_status { $body })) {
            Ok(status) => status,
            Err(_) => fail(
                BANKID_PANIC,
                "internal panic caught at the C boundary (a bug; please report)",
            ),
        }
    };
}

fn engine() -> Result<Arc<Engine>, bankid_status> {
    let guard = ENGINE.read().unwrap_or_else(|e| e.into_inner());
    guard.clone().ok_or_else(|| {
        fail(
            BANKID_NOT_INITIALIZED,
            "bankid_init has not been called successfully",
        )
    })
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string.
unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, bankid_status> {
    if p.is_null() {
        return Err(fail(BANKID_NULL_POINTER, format!("{what} is NULL")));
    }
    // SAFETY: checked non-NULL; the caller promises NUL termination.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| fail(BANKID_INVALID_UTF8, format!("{what} is not UTF-8")))
}

/// snprintf-style output of `s`.
///
/// # Safety
/// `buf` must be NULL or valid for `buf_len` bytes; `out_len` NULL or valid.
unsafe fn write_str(
    s: &str,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    if buf.is_null() && buf_len > 0 {
        return fail(BANKID_NULL_POINTER, "buf is NULL but buf_len is not 0");
    }
    if !out_len.is_null() {
        // SAFETY: checked non-NULL.
        unsafe { *out_len = s.len() };
    }
    if buf_len == 0 {
        return if s.is_empty() && !out_len.is_null() {
            BANKID_OK
        } else {
            fail(
                BANKID_BUFFER_TOO_SMALL,
                format!("{} bytes (plus NUL) needed", s.len()),
            )
        };
    }
    let n = s.len().min(buf_len - 1);
    // SAFETY: buf is valid for buf_len bytes and n < buf_len.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    if n < s.len() {
        return fail(
            BANKID_BUFFER_TOO_SMALL,
            format!("{} bytes (plus NUL) needed", s.len()),
        );
    }
    BANKID_OK
}

/// Initialises the library: reads the configuration, loads the certificates and starts the
/// background runtime. Sends nothing to BankID.
///
/// `config_path`: a TOML configuration file, or NULL to read `BANKID_*` environment variables.
/// Returns `BANKID_CONFIG_ERROR` with `bankid_last_error` naming the setting or file, or
/// `BANKID_ALREADY_INITIALIZED`. Thread-safe; blocks while reading files (call it once at
/// start-up, not per call).
///
/// # Safety
/// Every pointer must be NULL or valid for its stated use: strings NUL-terminated, `buf`
/// writable for `buf_len` bytes, `*_out` writable.
#[no_mangle]
pub unsafe extern "C" fn bankid_init(config_path: *const c_char) -> bankid_status {
    guard!({
        let config = if config_path.is_null() {
            Config::from_env()
        } else {
            // SAFETY: non-NULL, caller promises a C string.
            match unsafe { c_str(config_path, "config_path") } {
                Ok(p) => Config::from_file(Path::new(p)),
                Err(s) => return s,
            }
        };
        let config = match config {
            Ok(c) => c,
            Err(e) => return fail(BANKID_CONFIG_ERROR, e.to_string()),
        };
        let mut slot = ENGINE.write().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return fail(
                BANKID_ALREADY_INITIALIZED,
                "bankid_init was already called; call bankid_shutdown first",
            );
        }
        match Engine::new(config) {
            Ok(e) => {
                *slot = Some(Arc::new(e));
                BANKID_OK
            }
            Err(e) => engine_error(e),
        }
    })
}

/// Shuts the library down: pending orders are cancelled at BankID, and it returns once those
/// cancels are sent (at most about 5 s) and the library's threads have stopped, so the host may
/// `dlclose` it afterwards. Every handle turns stale (handles are never reused, also not by a
/// later `bankid_init`). A call on another thread meanwhile gets `BANKID_NOT_INITIALIZED` or
/// completes normally; none waits longer than the shutdown. A no-op when not initialised.
#[no_mangle]
pub extern "C" fn bankid_shutdown() -> bankid_status {
    guard!({
        let engine = ENGINE.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(engine) = engine {
            engine.shutdown();
        }
        BANKID_OK
    })
}

/// Options for `bankid_start_with`. Fill it with `bankid_start_options_init` first, then set
/// what you need: fields are only ever appended, and `struct_size` tells the library which
/// ones your program knows, so a program built against an older header keeps working.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bankid_start_options {
    /// `sizeof(bankid_start_options)` as the caller was compiled (set by the init function).
    pub struct_size: u32,
    /// A `bankid_call_initiator` value; default `BANKID_CALL_INITIATOR_DEFAULT`.
    pub call_initiator: u32,
    /// The personal number, as for `bankid_start`. Required.
    pub personal_number: *const c_char,
    /// The call's caller ID (e.g. Asterisk's `CALLERID(num)`), or NULL: at most
    /// `max_orders_per_caller_per_hour` orders per caller ID. Not sent to BankID.
    pub caller_id: *const c_char,
}

/// Fills `*opts` with the defaults of this library version (`struct_size` set, every pointer
/// NULL, `call_initiator` default). Never fails for a non-NULL `opts`.
///
/// # Safety
/// `opts` must be NULL or writable for `sizeof(bankid_start_options)`.
#[no_mangle]
pub unsafe extern "C" fn bankid_start_options_init(
    opts: *mut bankid_start_options,
) -> bankid_status {
    guard!({
        if opts.is_null() {
            return fail(BANKID_NULL_POINTER, "opts is NULL");
        }
        // SAFETY: checked non-NULL; the caller promises room for the struct.
        unsafe {
            opts.write(bankid_start_options {
                struct_size: std::mem::size_of::<bankid_start_options>() as u32,
                call_initiator: bankid_call_initiator::BANKID_CALL_INITIATOR_DEFAULT as u32,
                personal_number: std::ptr::null(),
                caller_id: std::ptr::null(),
            })
        };
        BANKID_OK
    })
}

fn start(
    personal_number: &str,
    call_initiator: u32,
    caller_id: Option<&str>,
    order_out: *mut bankid_order,
) -> bankid_status {
    let initiator = match call_initiator {
        0 => None,
        1 => Some(CallInitiator::User),
        2 => Some(CallInitiator::Rp),
        other => {
            return fail(
                BANKID_INVALID_ARGUMENT,
                format!("call_initiator {other} is not 0, 1 or 2"),
            )
        }
    };
    let pnr = match Personnummer::parse(personal_number) {
        Ok(p) => p,
        Err(e) => {
            return fail(
                BANKID_INVALID_PERSONAL_NUMBER,
                format!("invalid personal number: {e}"),
            )
        }
    };
    let engine = match engine() {
        Ok(e) => e,
        Err(st) => return st,
    };
    let opts = StartOptions {
        call_initiator: initiator,
        caller_id: caller_id.map(str::to_string),
        ..Default::default()
    };
    match engine.start(&pnr, opts) {
        Ok(id) => {
            // SAFETY: the callers checked it non-NULL.
            unsafe { *order_out = id };
            BANKID_OK
        }
        Err(e) => engine_error(e),
    }
}

/// Starts a phone identification of `personal_number` (12 digits from DTMF, or 10/12 digits
/// with `-`/`+` as an agent types it). Validates locally, then returns at once: the request to
/// BankID and the polling run in the background. Never blocks on the network.
///
/// `call_initiator`: a `bankid_call_initiator` value. On success `*order_out` receives a handle
/// that stays valid until `bankid_release`. `BANKID_INVALID_PERSONAL_NUMBER` when malformed,
/// `BANKID_DECLINED_RECENTLY` / `BANKID_RATE_LIMITED` when an anti-vishing limit refuses it
/// (nothing is sent to BankID in those cases). Thread-safe.
///
/// # Safety
/// Every pointer must be NULL or valid for its stated use: strings NUL-terminated, `buf`
/// writable for `buf_len` bytes, `*_out` writable.
#[no_mangle]
pub unsafe extern "C" fn bankid_start(
    personal_number: *const c_char,
    call_initiator: u32,
    order_out: *mut bankid_order,
) -> bankid_status {
    guard!({
        if order_out.is_null() {
            return fail(BANKID_NULL_POINTER, "order_out is NULL");
        }
        // SAFETY: caller promises a C string or NULL.
        match unsafe { c_str(personal_number, "personal_number") } {
            Ok(s) => start(s, call_initiator, None, order_out),
            Err(st) => st,
        }
    })
}

/// Like `bankid_start`, with options (`bankid_start_options_init` first). `BANKID_INVALID_ARGUMENT`
/// when `opts->struct_size` is smaller than the first version of the struct.
///
/// # Safety
/// `opts` must be NULL or point to a struct of at least `opts->struct_size` bytes whose strings
/// are NULL or NUL-terminated; `order_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bankid_start_with(
    opts: *const bankid_start_options,
    order_out: *mut bankid_order,
) -> bankid_status {
    guard!({
        if opts.is_null() {
            return fail(BANKID_NULL_POINTER, "opts is NULL");
        }
        if order_out.is_null() {
            return fail(BANKID_NULL_POINTER, "order_out is NULL");
        }
        // SAFETY: checked non-NULL; struct_size is the first field of every version.
        let size = unsafe { std::ptr::addr_of!((*opts).struct_size).read_unaligned() } as usize;
        let full = std::mem::size_of::<bankid_start_options>();
        if size < full {
            return fail(
                BANKID_INVALID_ARGUMENT,
                format!("opts->struct_size {size} is smaller than {full}: call bankid_start_options_init"),
            );
        }
        // SAFETY: at least `full` bytes are readable (the caller's struct_size says so); a
        // larger struct from a newer header only adds fields this version does not read.
        let o = unsafe { opts.read_unaligned() };
        // SAFETY: the caller promises C strings or NULL.
        let pnr = match unsafe { c_str(o.personal_number, "opts->personal_number") } {
            Ok(s) => s,
            Err(st) => return st,
        };
        let caller = if o.caller_id.is_null() {
            None
        } else {
            // SAFETY: non-NULL, caller promises a C string.
            match unsafe { c_str(o.caller_id, "opts->caller_id") } {
                Ok(s) => Some(s),
                Err(st) => return st,
            }
        };
        start(pnr, o.call_initiator, caller, order_out)
    })
}

fn with_engine<T>(f: impl FnOnce(&Engine) -> Result<T, Error>) -> Result<T, bankid_status> {
    let engine = engine()?;
    f(&engine).map_err(engine_error)
}

/// Writes the order's `bankid_state` to `*state_out`. A lookup: never blocks, never does I/O,
/// safe to call as often as the host likes from any thread. `BANKID_STALE_HANDLE` for 0, a
/// released or made-up handle.
///
/// # Safety
/// Every pointer must be NULL or valid for its stated use: strings NUL-terminated, `buf`
/// writable for `buf_len` bytes, `*_out` writable.
#[no_mangle]
pub unsafe extern "C" fn bankid_poll(order: bankid_order, state_out: *mut u32) -> bankid_status {
    guard!({
        if state_out.is_null() {
            return fail(BANKID_NULL_POINTER, "state_out is NULL");
        }
        match with_engine(|e| e.state(order)) {
            Ok(state) => {
                let v = match state {
                    State::Pending => bankid_state::BANKID_STATE_PENDING,
                    State::Complete => bankid_state::BANKID_STATE_COMPLETE,
                    State::Failed => bankid_state::BANKID_STATE_FAILED,
                    State::Error => bankid_state::BANKID_STATE_ERROR,
                };
                // SAFETY: checked non-NULL.
                unsafe { *state_out = v as u32 };
                BANKID_OK
            }
            Err(s) => s,
        }
    })
}

/// The agent-visible result text of a final order, snprintf-style into `buf`: by default
/// `Identification successful for social security number YYMMDD-NNNN` or
/// `Identification failed` (templates in the configuration). `BANKID_NOT_FINISHED` while
/// pending. `(NULL, 0)` asks for the length in `*out_len`. Never blocks.
///
/// # Safety
/// Every pointer must be NULL or valid for its stated use: strings NUL-terminated, `buf`
/// writable for `buf_len` bytes, `*_out` writable.
#[no_mangle]
pub unsafe extern "C" fn bankid_result_text(
    order: bankid_order,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    guard!({
        match with_engine(|e| e.poll(order)) {
            Ok(v) if !v.state.is_final() => fail(BANKID_NOT_FINISHED, "the order is still pending"),
            // SAFETY: forwarded caller guarantees.
            Ok(v) => unsafe { write_str(&v.result_text, buf, buf_len, out_len) },
            Err(s) => s,
        }
    })
}

/// What to tell the caller now, in `lang` (`bankid_lang`): BankID's recommended texts (RFA1
/// "Starta BankID-appen.", RFA9, …) and ours for phone orders ("Bekräfta i BankID-appen att du
/// pratar med oss."). snprintf-style; UTF-8. Never blocks.
///
/// # Safety
/// Every pointer must be NULL or valid for its stated use: strings NUL-terminated, `buf`
/// writable for `buf_len` bytes, `*_out` writable.
#[no_mangle]
pub unsafe extern "C" fn bankid_message(
    order: bankid_order,
    lang: u32,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    guard!({
        let lang = match lang {
            0 => Language::Sv,
            1 => Language::En,
            other => {
                return fail(
                    BANKID_INVALID_ARGUMENT,
                    format!("lang {other} is not 0 (sv) or 1 (en)"),
                )
            }
        };
        match with_engine(|e| e.poll(order)) {
            // SAFETY: forwarded caller guarantees.
            Ok(v) => unsafe { write_str(v.message.text(lang), buf, buf_len, out_len) },
            Err(s) => s,
        }
    })
}

/// BankID's raw `hintCode` (e.g. `userCallConfirm`, `userDeclinedCall`), or the error code
/// when the state is `BANKID_STATE_ERROR` (e.g. `maintenance`, `transport`, `deadline`);
/// the empty string when there is none yet. snprintf-style. Never blocks.
///
/// # Safety
/// Every pointer must be NULL or valid for its stated use: strings NUL-terminated, `buf`
/// writable for `buf_len` bytes, `*_out` writable.
#[no_mangle]
pub unsafe extern "C" fn bankid_hint_code(
    order: bankid_order,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    guard!({
        match with_engine(|e| e.poll(order)) {
            Ok(v) => {
                let code = if v.state == State::Error {
                    v.error_code
                } else {
                    v.hint_code.or(v.error_code)
                };
                // SAFETY: forwarded caller guarantees.
                unsafe { write_str(code.as_deref().unwrap_or(""), buf, buf_len, out_len) }
            }
            Err(s) => s,
        }
    })
}

/// Cancels a pending order (the caller hung up or chose another way): its state turns
/// `BANKID_STATE_FAILED` at once and BankID is told in the background. A final order is left
/// as it is. The handle stays valid until `bankid_release`. Never blocks.
#[no_mangle]
pub extern "C" fn bankid_cancel(order: bankid_order) -> bankid_status {
    guard!({
        match with_engine(|e| e.cancel(order)) {
            Ok(()) => BANKID_OK,
            Err(s) => s,
        }
    })
}

/// Releases an order: cancels it at BankID if still pending, frees it, and makes the handle
/// stale. Releasing 0 is a no-op that returns `BANKID_OK`; releasing twice returns
/// `BANKID_STALE_HANDLE`. Never blocks. Unreleased final orders are freed after `result_ttl_s`.
#[no_mangle]
pub extern "C" fn bankid_release(order: bankid_order) -> bankid_status {
    guard!({
        if order == 0 {
            return BANKID_OK;
        }
        match with_engine(|e| e.release(order)) {
            Ok(()) => BANKID_OK,
            Err(s) => s,
        }
    })
}

/// The calling thread's last error message (set by the last call that failed on this thread),
/// snprintf-style; never contains a whole personal number or a password.
///
/// # Safety
/// Every pointer must be NULL or valid for its stated use: strings NUL-terminated, `buf`
/// writable for `buf_len` bytes, `*_out` writable.
#[no_mangle]
pub unsafe extern "C" fn bankid_last_error(
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    match catch_unwind(AssertUnwindSafe(|| LAST_ERROR.with(|e| e.borrow().clone()))) {
        // SAFETY: forwarded caller guarantees.
        Ok(msg) => unsafe { write_str(&msg, buf, buf_len, out_len) },
        Err(_) => BANKID_PANIC,
    }
}

/// The name of a status code (`"BANKID_OK"`, …), or `"BANKID_UNKNOWN_STATUS"`. Static storage:
/// never free it. Never NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn bankid_status_str(status: u32) -> *const c_char {
    let s: &'static CStr = match status {
        0 => c"BANKID_OK",
        1 => c"BANKID_INVALID_ARGUMENT",
        2 => c"BANKID_NULL_POINTER",
        3 => c"BANKID_INVALID_UTF8",
        4 => c"BANKID_NOT_INITIALIZED",
        5 => c"BANKID_ALREADY_INITIALIZED",
        6 => c"BANKID_CONFIG_ERROR",
        7 => c"BANKID_INVALID_PERSONAL_NUMBER",
        8 => c"BANKID_STALE_HANDLE",
        9 => c"BANKID_BUFFER_TOO_SMALL",
        10 => c"BANKID_NOT_FINISHED",
        11 => c"BANKID_PANIC",
        12 => c"BANKID_INTERNAL",
        13 => c"BANKID_TOO_MANY_ORDERS",
        14 => c"BANKID_DECLINED_RECENTLY",
        15 => c"BANKID_RATE_LIMITED",
        _ => c"BANKID_UNKNOWN_STATUS",
    };
    s.as_ptr()
}

/// The library version, `"MAJOR.MINOR.PATCH"`, matching the `BANKID_VERSION_*` macros of the
/// header it was built with. Static storage; never NULL.
#[no_mangle]
pub extern "C" fn bankid_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

struct Callback {
    f: unsafe extern "C" fn(u32, *const c_char, *mut c_void),
    userdata: usize,
}

static CALLBACK: RwLock<Option<Callback>> = RwLock::new(None);

struct CLogger;

impl log::Log for CLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target().starts_with("bankid")
    }
    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let guard = CALLBACK.read().unwrap_or_else(|e| e.into_inner());
        if let Some(cb) = guard.as_ref() {
            let text = format!("{}", record.args()).replace('\0', " ");
            if let Ok(c) = std::ffi::CString::new(text) {
                // SAFETY: the host registered this function for exactly this call shape.
                unsafe {
                    (cb.f)(
                        record.level() as u32,
                        c.as_ptr(),
                        cb.userdata as *mut c_void,
                    )
                };
            }
        }
    }
    fn flush(&self) {}
}

/// Sends the library's log lines (personal numbers masked) to `callback` with `userdata`, or
/// stops with NULL. Install it before `bankid_init` to see start-up lines. The library uses
/// Rust's `log` facade: if the process already installed another Rust logger, that one keeps
/// the lines and this returns `BANKID_INTERNAL`. Thread-safe.
#[no_mangle]
pub extern "C" fn bankid_set_log_callback(
    callback: bankid_log_callback,
    userdata: *mut c_void,
) -> bankid_status {
    guard!({
        *CALLBACK.write().unwrap_or_else(|e| e.into_inner()) = callback.map(|f| Callback {
            f,
            userdata: userdata as usize,
        });
        static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let ok = *INSTALLED.get_or_init(|| {
            let ok = log::set_boxed_logger(Box::new(CLogger)).is_ok();
            if ok {
                log::set_max_level(log::LevelFilter::Info);
            }
            ok
        });
        if ok {
            BANKID_OK
        } else {
            fail(
                BANKID_INTERNAL,
                "another logger is installed in this process",
            )
        }
    })
}
