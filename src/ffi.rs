//! The C ABI: every `extern "C"` item and all `unsafe` of the crate live here.
//!
//! Conventions (stated once, here and in the header banner from `cbindgen.toml`): every
//! fallible function returns a `bankid_status`; outputs go through `*_out` parameters written
//! only on success; strings out are snprintf-style; every body runs inside `ffi_body!`, the
//! panic boundary; every pointer is checked; releasing 0 is a no-op.
//!
//! Pointers (the `# Safety` of every `unsafe` function below): each must be NULL or valid for
//! its stated use — strings NUL-terminated, `buf` writable for `buf_len` bytes, `*_out`
//! writable, options structs readable for their `struct_size`. The library never keeps one.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, LazyLock, RwLock};

use crate::audit::{CallContext, Channel};
use crate::config::Config;
use crate::messages::Language;
use crate::order::{Error, Mode, Refusal, Reloadable, StartOptions, State};
use crate::personnummer::Personnummer;
use crate::rp::{CallInitiator, Requirement, VisibleDataFormat};

/// Result of every fallible function. Values are never reused; new ones are appended.
#[repr(u32)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::FromRepr, strum::EnumIter,
)]
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

/// `TryFrom<u32>` (the values C passes) and the variant's C name, for every C enum: derived
/// from the enum itself, so a new value needs no second table.
macro_rules! c_enum_conversions {
    ($($ty:ident),*) => {$(
        impl TryFrom<u32> for $ty {
            type Error = u32;
            /// The variant with this value; the value back when there is none.
            fn try_from(v: u32) -> Result<Self, u32> {
                $ty::from_repr(v).ok_or(v)
            }
        }
        impl $ty {
            /// The C name, e.g. `BANKID_OK`.
            pub fn name(self) -> &'static str {
                self.into()
            }
        }
    )*};
}

/// Order state written by `bankid_poll`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::FromRepr)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::FromRepr)]
pub enum bankid_lang {
    /// Swedish.
    BANKID_LANG_SV = 0,
    /// English.
    BANKID_LANG_EN = 1,
}

/// `callInitiator` for `bankid_start`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::FromRepr)]
pub enum bankid_call_initiator {
    /// The configured default (`call_initiator`, normally `user`).
    BANKID_CALL_INITIATOR_DEFAULT = 0,
    /// The caller called us.
    BANKID_CALL_INITIATOR_USER = 1,
    /// We called the caller.
    BANKID_CALL_INITIATOR_RP = 2,
}

/// `mode` of `bankid_start_options`: identify the caller or have them sign a text.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::FromRepr)]
pub enum bankid_mode {
    /// Identify (`phone/auth`), the default.
    BANKID_MODE_IDENTIFY = 0,
    /// Sign (`phone/sign`): the caller approves `user_visible_data`, which is then required.
    BANKID_MODE_SIGN = 1,
}

/// `user_visible_data_format` of `bankid_start_options`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::FromRepr)]
pub enum bankid_text_format {
    /// Plain text, the default.
    BANKID_TEXT_FORMAT_PLAIN = 0,
    /// BankID's `simpleMarkdownV1`.
    BANKID_TEXT_FORMAT_SIMPLE_MARKDOWN_V1 = 1,
}

/// `channel` of `bankid_start_options`: the entry point an order's audit record names.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::FromRepr)]
pub enum bankid_channel {
    /// A host of the C ABI (an IVR's custom-block hook, an integrator's program), the default.
    BANKID_CHANNEL_C_ABI = 0,
    /// Cally Square's System block (`bankid-ivr identify`).
    BANKID_CHANNEL_IDENTIFY = 1,
    /// A FastAGI server.
    BANKID_CHANNEL_FASTAGI = 2,
    /// A dry run of a flow (`bankid-ivr flow run`).
    BANKID_CHANNEL_FLOW_RUN = 3,
    /// An agent's page.
    BANKID_CHANNEL_AGENT = 4,
}

impl From<bankid_channel> for Channel {
    fn from(c: bankid_channel) -> Channel {
        match c {
            bankid_channel::BANKID_CHANNEL_C_ABI => Channel::CAbi,
            bankid_channel::BANKID_CHANNEL_IDENTIFY => Channel::Identify,
            bankid_channel::BANKID_CHANNEL_FASTAGI => Channel::FastAgi,
            bankid_channel::BANKID_CHANNEL_FLOW_RUN => Channel::FlowRun,
            bankid_channel::BANKID_CHANNEL_AGENT => Channel::Agent,
        }
    }
}

/// The longest `call_id` accepted, in bytes.
const CALL_ID_MAX: usize = 128;

c_enum_conversions!(
    bankid_status,
    bankid_state,
    bankid_lang,
    bankid_call_initiator,
    bankid_mode,
    bankid_text_format,
    bankid_channel
);

/// An order handle. 0 is never a valid handle.
pub type bankid_order = u64;

/// A log callback: `level` 1 error, 2 warn, 3 info, 4 debug, 5 trace; `message` is valid only
/// during the call. Called from library threads; must not call back into the library.
pub type bankid_log_callback =
    Option<unsafe extern "C" fn(level: u32, message: *const c_char, userdata: *mut c_void)>;

static ENGINE: RwLock<Option<Arc<Reloadable>>> = RwLock::new(None);

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_error(msg: impl Into<String>) {
    let msg = msg.into();
    LAST_ERROR.with(|e| *e.borrow_mut() = msg);
}

/// Sets the thread's last error and returns `status`, for `return Err(fail(…))`.
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

/// The panic boundary every exported function runs in. The body returns
/// `Result<(), bankid_status>` — `?` on every step that can fail, the last-error message set
/// where the error is made — and `Ok(())` is `BANKID_OK`; a panic is `BANKID_PANIC`.
macro_rules! ffi_body {
    ($body:block) => {
        match catch_unwind(AssertUnwindSafe(|| -> Result<(), bankid_status> { $body })) {
            Ok(Ok(())) => BANKID_OK,
            Ok(Err(status)) => status,
            Err(_) => fail(
                BANKID_PANIC,
                "internal panic caught at the C boundary (a bug; please report)",
            ),
        }
    };
}

fn engine() -> Result<Arc<Reloadable>, bankid_status> {
    let guard = ENGINE.read().unwrap_or_else(|e| e.into_inner());
    guard.clone().ok_or_else(|| {
        fail(
            BANKID_NOT_INITIALIZED,
            "bankid_init has not been called successfully",
        )
    })
}

fn with_engine<T>(f: impl FnOnce(&Reloadable) -> Result<T, Error>) -> Result<T, bankid_status> {
    let engine = engine()?;
    f(&engine).map_err(engine_error)
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

/// An optional string argument: NULL is `None`.
///
/// # Safety
/// As [`c_str`].
unsafe fn c_str_opt<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, bankid_status> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded.
    unsafe { c_str(p, what) }.map(Some)
}

/// Writes `value` to the output pointer `p`, which must not be NULL.
///
/// # Safety
/// `p` must be NULL or writable.
unsafe fn put<T>(p: *mut T, what: &str, value: T) -> Result<(), bankid_status> {
    if p.is_null() {
        return Err(fail(BANKID_NULL_POINTER, format!("{what} is NULL")));
    }
    // SAFETY: checked non-NULL; the caller promises it is writable.
    unsafe { p.write(value) };
    Ok(())
}

/// Checks that an output pointer is not NULL before any work is done.
fn non_null<T>(p: *mut T, what: &str) -> Result<(), bankid_status> {
    if p.is_null() {
        return Err(fail(BANKID_NULL_POINTER, format!("{what} is NULL")));
    }
    Ok(())
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
) -> Result<(), bankid_status> {
    let too_small = || {
        fail(
            BANKID_BUFFER_TOO_SMALL,
            format!("{} bytes (plus NUL) needed", s.len()),
        )
    };
    if buf.is_null() && buf_len > 0 {
        return Err(fail(
            BANKID_NULL_POINTER,
            "buf is NULL but buf_len is not 0",
        ));
    }
    if !out_len.is_null() {
        // SAFETY: checked non-NULL.
        unsafe { *out_len = s.len() };
    }
    if buf_len == 0 {
        return if s.is_empty() && !out_len.is_null() {
            Ok(())
        } else {
            Err(too_small())
        };
    }
    let n = s.len().min(buf_len - 1);
    // SAFETY: buf is valid for buf_len bytes and n < buf_len.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    if n < s.len() {
        return Err(too_small());
    }
    Ok(())
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
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_init(config_path: *const c_char) -> bankid_status {
    ffi_body!({
        // SAFETY: the caller promises a C string or NULL.
        let config = match unsafe { c_str_opt(config_path, "config_path") }? {
            None => Config::from_env(),
            Some(p) => Config::from_file(Path::new(p)),
        }
        .map_err(|e| fail(BANKID_CONFIG_ERROR, e.to_string()))?;
        let mut slot = ENGINE.write().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Err(fail(
                BANKID_ALREADY_INITIALIZED,
                "bankid_init was already called; call bankid_shutdown first",
            ));
        }
        *slot = Some(Arc::new(Reloadable::new(config).map_err(engine_error)?));
        Ok(())
    })
}

/// Reloads the configuration (e.g. a renewed client certificate) without dropping calls: new
/// orders use it at once; orders already running finish on the previous one, and every handle
/// stays valid. The anti-vishing counters carry over.
///
/// `config_path`: a TOML configuration file, or NULL to read `BANKID_*` environment variables
/// again. On `BANKID_CONFIG_ERROR` (`bankid_last_error` names the setting or file) nothing
/// changes: the running configuration stays. `BANKID_NOT_INITIALIZED` before `bankid_init`.
/// Thread-safe; blocks while reading files, never on the network.
///
/// # Safety
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_reload(config_path: *const c_char) -> bankid_status {
    ffi_body!({
        // SAFETY: the caller promises a C string or NULL.
        let config = match unsafe { c_str_opt(config_path, "config_path") }? {
            None => Config::from_env(),
            Some(p) => Config::from_file(Path::new(p)),
        }
        .map_err(|e| fail(BANKID_CONFIG_ERROR, e.to_string()))?;
        with_engine(|e| e.reload(config))
    })
}

/// Shuts the library down: pending orders are cancelled at BankID, and it returns once those
/// cancels are sent (at most about 5 s) and the library's threads have stopped, so the host may
/// `dlclose` it afterwards. Every handle turns stale (handles are never reused, also not by a
/// later `bankid_init`). A call on another thread meanwhile gets `BANKID_NOT_INITIALIZED` or
/// completes normally; none waits longer than the shutdown. A no-op when not initialised.
#[no_mangle]
pub extern "C" fn bankid_shutdown() -> bankid_status {
    ffi_body!({
        let engine = ENGINE.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(engine) = engine {
            engine.shutdown();
        }
        Ok(())
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
    // ---- version 2 (signing and step-up); a version-1 struct ends here ----
    /// A `bankid_mode` value; default `BANKID_MODE_IDENTIFY`.
    pub mode: u32,
    /// UTF-8 text shown in the BankID app, or NULL. Required with `BANKID_MODE_SIGN` (the text
    /// the caller approves). At most 1 500 characters after base64 to identify, 40 000 to sign.
    pub user_visible_data: *const c_char,
    /// A `bankid_text_format` value for `user_visible_data`; default plain.
    pub user_visible_data_format: u32,
    /// UTF-8 data signed but not shown, or NULL (1 500 / 200 000 characters after base64).
    pub user_non_visible_data: *const c_char,
    /// 1: the security code even if the caller uses biometrics (`requirement.pinCode`); 0 default.
    pub require_pin_code: u32,
    /// 1: an extra check of the caller's passport or national ID card (`requirement.mrtd`);
    /// 0 default.
    pub require_id_document: u32,
    // ---- version 3 (the audit trail); a version-2 struct ends here ----
    /// The host's identifier of the call, kept in the order's audit record (e.g. Asterisk's
    /// `uniqueid`), or NULL. UTF-8, at most 128 bytes, no control characters. Not sent to
    /// BankID.
    pub call_id: *const c_char,
    /// A `bankid_channel` value: the entry point the audit record names; default
    /// `BANKID_CHANNEL_C_ABI`.
    pub channel: u32,
}

/// The `struct_size` of the first version of `bankid_start_options` (up to `caller_id`): still
/// accepted, with the defaults for every later field.
const START_OPTIONS_V1_SIZE: usize =
    std::mem::offset_of!(bankid_start_options, caller_id) + std::mem::size_of::<*const c_char>();

fn start_options_defaults() -> bankid_start_options {
    bankid_start_options {
        struct_size: std::mem::size_of::<bankid_start_options>() as u32,
        call_initiator: bankid_call_initiator::BANKID_CALL_INITIATOR_DEFAULT as u32,
        personal_number: std::ptr::null(),
        caller_id: std::ptr::null(),
        mode: bankid_mode::BANKID_MODE_IDENTIFY as u32,
        user_visible_data: std::ptr::null(),
        user_visible_data_format: bankid_text_format::BANKID_TEXT_FORMAT_PLAIN as u32,
        user_non_visible_data: std::ptr::null(),
        require_pin_code: 0,
        require_id_document: 0,
        call_id: std::ptr::null(),
        channel: bankid_channel::BANKID_CHANNEL_C_ABI as u32,
    }
}

/// Fills `*opts` with the defaults of this library version (`struct_size` set, every pointer
/// NULL, `call_initiator` default, identify, plain text, no requirement, channel C ABI). Never
/// fails for a non-NULL `opts`.
///
/// # Safety
/// `opts` must be NULL or writable for `sizeof(bankid_start_options)`.
#[no_mangle]
pub unsafe extern "C" fn bankid_start_options_init(
    opts: *mut bankid_start_options,
) -> bankid_status {
    ffi_body!({
        // SAFETY: the caller promises room for the struct.
        unsafe { put(opts, "opts", start_options_defaults()) }
    })
}

/// A 0/1 flag of the options struct; anything else is refused.
fn flag(v: u32, what: &str) -> Result<bool, bankid_status> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(fail(
            BANKID_INVALID_ARGUMENT,
            format!("{what} {other} is not 0 or 1"),
        )),
    }
}

/// The version-2 fields of the options struct as engine options (everything but the
/// personal number, call initiator and caller ID).
fn step_up_options(
    o: &bankid_start_options,
    visible: Option<&str>,
    hidden: Option<&str>,
) -> Result<StartOptions, bankid_status> {
    let mode = match bankid_mode::try_from(o.mode) {
        Ok(bankid_mode::BANKID_MODE_IDENTIFY) => Mode::Identify,
        Ok(bankid_mode::BANKID_MODE_SIGN) => Mode::Sign,
        Err(other) => {
            return Err(fail(
                BANKID_INVALID_ARGUMENT,
                format!("opts->mode {other} is not 0 (identify) or 1 (sign)"),
            ))
        }
    };
    let format = match bankid_text_format::try_from(o.user_visible_data_format) {
        Ok(bankid_text_format::BANKID_TEXT_FORMAT_PLAIN) => None,
        Ok(bankid_text_format::BANKID_TEXT_FORMAT_SIMPLE_MARKDOWN_V1) => {
            Some(VisibleDataFormat::SimpleMarkdownV1)
        }
        Err(other) => {
            return Err(fail(
                BANKID_INVALID_ARGUMENT,
                format!(
                "opts->user_visible_data_format {other} is not 0 (plain) or 1 (simpleMarkdownV1)"
            ),
            ))
        }
    };
    let pin = flag(o.require_pin_code, "opts->require_pin_code")?;
    let mrtd = flag(o.require_id_document, "opts->require_id_document")?;
    let requirement = (pin || mrtd).then(|| Requirement {
        pin_code: pin.then_some(true),
        mrtd: mrtd.then_some(true),
        ..Default::default()
    });
    Ok(StartOptions {
        mode,
        user_visible_data: visible.map(str::to_string),
        user_visible_data_format: format,
        user_non_visible_data: hidden.map(str::to_string),
        requirement,
        ..Default::default()
    })
}

/// The version-3 fields as the order's call context.
fn call_context(
    o: &bankid_start_options,
    call_id: Option<&str>,
) -> Result<CallContext, bankid_status> {
    let channel = bankid_channel::try_from(o.channel).map_err(|other| {
        fail(
            BANKID_INVALID_ARGUMENT,
            format!("opts->channel {other} is not a bankid_channel (0 to 4)"),
        )
    })?;
    if let Some(id) = call_id {
        if id.len() > CALL_ID_MAX || id.chars().any(char::is_control) {
            return Err(fail(
                BANKID_INVALID_ARGUMENT,
                format!(
                    "opts->call_id must be at most {CALL_ID_MAX} bytes without control characters"
                ),
            ));
        }
    }
    Ok(CallContext {
        channel: channel.into(),
        agent: None,
        call_id: call_id.map(str::to_string),
    })
}

fn start(
    personal_number: &str,
    call_initiator: u32,
    caller_id: Option<&str>,
    more: StartOptions,
) -> Result<bankid_order, bankid_status> {
    let initiator = match bankid_call_initiator::try_from(call_initiator) {
        Ok(bankid_call_initiator::BANKID_CALL_INITIATOR_DEFAULT) => None,
        Ok(bankid_call_initiator::BANKID_CALL_INITIATOR_USER) => Some(CallInitiator::User),
        Ok(bankid_call_initiator::BANKID_CALL_INITIATOR_RP) => Some(CallInitiator::Rp),
        Err(other) => {
            return Err(fail(
                BANKID_INVALID_ARGUMENT,
                format!("call_initiator {other} is not 0, 1 or 2"),
            ))
        }
    };
    let pnr = Personnummer::parse(personal_number).map_err(|e| {
        fail(
            BANKID_INVALID_PERSONAL_NUMBER,
            format!("invalid personal number: {e}"),
        )
    })?;
    let opts = StartOptions {
        call_initiator: initiator,
        caller_id: caller_id.map(str::to_string),
        ..more
    };
    with_engine(|e| e.start(&pnr, opts))
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
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_start(
    personal_number: *const c_char,
    call_initiator: u32,
    order_out: *mut bankid_order,
) -> bankid_status {
    ffi_body!({
        non_null(order_out, "order_out")?;
        // SAFETY: the caller promises a C string or NULL.
        let pnr = unsafe { c_str(personal_number, "personal_number") }?;
        let order = start(pnr, call_initiator, None, StartOptions::default())?;
        // SAFETY: checked non-NULL above; the caller promises it is writable.
        unsafe { put(order_out, "order_out", order) }
    })
}

/// Like `bankid_start`, with options (`bankid_start_options_init` first): identify or sign,
/// a text shown in the app, hidden data, the security code or an ID-document check, and the
/// call's identifier and channel for its audit record. Only the fields within
/// `opts->struct_size` are read, so a struct from an older header (the first version ends
/// after `caller_id`, the second after `require_id_document`) works with the defaults for the
/// rest. Every order (also one started with `bankid_start`) ends as one audit record.
/// `BANKID_INVALID_ARGUMENT` when `opts->struct_size` is smaller than the first version, for an
/// unknown enum value or a flag other than 0/1, for signing without `user_visible_data`, for
/// a text over BankID's length limits, or for a `call_id` over 128 bytes or with control
/// characters (`bankid_last_error` names the field, never its content).
/// Returns at once; thread-safe.
///
/// # Safety
/// `opts` must be NULL or point to a struct of at least `opts->struct_size` bytes whose strings
/// are NULL or NUL-terminated; `order_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bankid_start_with(
    opts: *const bankid_start_options,
    order_out: *mut bankid_order,
) -> bankid_status {
    ffi_body!({
        if opts.is_null() {
            return Err(fail(BANKID_NULL_POINTER, "opts is NULL"));
        }
        non_null(order_out, "order_out")?;
        // SAFETY: checked non-NULL; struct_size is the first field of every version.
        let size = unsafe { std::ptr::addr_of!((*opts).struct_size).read_unaligned() } as usize;
        if size < START_OPTIONS_V1_SIZE {
            return Err(fail(
                BANKID_INVALID_ARGUMENT,
                format!("opts->struct_size {size} is smaller than {START_OPTIONS_V1_SIZE}: call bankid_start_options_init"),
            ));
        }
        // Each field is read only when it lies wholly within the caller's struct; the rest keep
        // their defaults. A larger struct from a newer header only adds fields not read here.
        let mut o = start_options_defaults();
        macro_rules! take {
            ($($field:ident),*) => {$(
                if std::mem::offset_of!(bankid_start_options, $field)
                    + std::mem::size_of_val(&o.$field)
                    <= size
                {
                    // SAFETY: within the `size` readable bytes the caller promises.
                    o.$field = unsafe { std::ptr::addr_of!((*opts).$field).read_unaligned() };
                }
            )*};
        }
        take!(
            call_initiator,
            personal_number,
            caller_id,
            mode,
            user_visible_data,
            user_visible_data_format,
            user_non_visible_data,
            require_pin_code,
            require_id_document,
            call_id,
            channel
        );
        // SAFETY: the caller promises C strings or NULL.
        let pnr = unsafe { c_str(o.personal_number, "opts->personal_number") }?;
        // SAFETY: as above.
        let caller = unsafe { c_str_opt(o.caller_id, "opts->caller_id") }?;
        // SAFETY: as above.
        let visible = unsafe { c_str_opt(o.user_visible_data, "opts->user_visible_data") }?;
        // SAFETY: as above.
        let hidden = unsafe { c_str_opt(o.user_non_visible_data, "opts->user_non_visible_data") }?;
        // SAFETY: as above.
        let call_id = unsafe { c_str_opt(o.call_id, "opts->call_id") }?;
        let mut more = step_up_options(&o, visible, hidden)?;
        more.context = call_context(&o, call_id)?;
        let order = start(pnr, o.call_initiator, caller, more)?;
        // SAFETY: checked non-NULL above; the caller promises it is writable.
        unsafe { put(order_out, "order_out", order) }
    })
}

/// Writes the order's `bankid_state` to `*state_out`. A lookup: never blocks, never does I/O,
/// safe to call as often as the host likes from any thread. `BANKID_STALE_HANDLE` for 0, a
/// released or made-up handle.
///
/// # Safety
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_poll(order: bankid_order, state_out: *mut u32) -> bankid_status {
    ffi_body!({
        non_null(state_out, "state_out")?;
        let state = match with_engine(|e| e.state(order))? {
            State::Pending => bankid_state::BANKID_STATE_PENDING,
            State::Complete => bankid_state::BANKID_STATE_COMPLETE,
            State::Failed => bankid_state::BANKID_STATE_FAILED,
            State::Error => bankid_state::BANKID_STATE_ERROR,
        };
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { put(state_out, "state_out", state as u32) }
    })
}

/// The agent-visible result text of a final order, snprintf-style into `buf`: by default
/// `Identification successful for social security number YYMMDD-NNNN` or
/// `Identification failed` (templates in the configuration). `BANKID_NOT_FINISHED` while
/// pending. `(NULL, 0)` asks for the length in `*out_len`. Never blocks.
///
/// # Safety
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_result_text(
    order: bankid_order,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    ffi_body!({
        let v = with_engine(|e| e.poll(order))?;
        if !v.state.is_final() {
            return Err(fail(BANKID_NOT_FINISHED, "the order is still pending"));
        }
        // SAFETY: forwarded caller guarantees.
        unsafe { write_str(&v.result_text, buf, buf_len, out_len) }
    })
}

/// What to tell the caller now, in `lang` (`bankid_lang`): BankID's recommended texts (RFA1
/// "Starta BankID-appen.", RFA9, …) and ours for phone orders ("Bekräfta i BankID-appen att du
/// pratar med oss."). snprintf-style; UTF-8. Never blocks.
///
/// # Safety
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_message(
    order: bankid_order,
    lang: u32,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    ffi_body!({
        let lang = match bankid_lang::try_from(lang) {
            Ok(bankid_lang::BANKID_LANG_SV) => Language::Sv,
            Ok(bankid_lang::BANKID_LANG_EN) => Language::En,
            Err(other) => {
                return Err(fail(
                    BANKID_INVALID_ARGUMENT,
                    format!("lang {other} is not 0 (sv) or 1 (en)"),
                ))
            }
        };
        let v = with_engine(|e| e.poll(order))?;
        // SAFETY: forwarded caller guarantees.
        unsafe { write_str(v.message.text(lang), buf, buf_len, out_len) }
    })
}

/// BankID's raw `hintCode` (e.g. `userCallConfirm`, `userDeclinedCall`), or the error code
/// when the state is `BANKID_STATE_ERROR` (e.g. `maintenance`, `transport`, `deadline`);
/// the empty string when there is none yet. snprintf-style. Never blocks.
///
/// # Safety
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_hint_code(
    order: bankid_order,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    ffi_body!({
        let v = with_engine(|e| e.poll(order))?;
        let error = v.error.as_ref().map(ToString::to_string);
        let code = match (&v.hint_code, error) {
            (_, Some(e)) if v.state == State::Error => e,
            (Some(h), _) => h.as_str().to_string(),
            (None, e) => e.unwrap_or_default(),
        };
        // SAFETY: forwarded caller guarantees.
        unsafe { write_str(&code, buf, buf_len, out_len) }
    })
}

/// Which step-up took place, once the order is final: `*mrtd_out` is 1 when BankID reports
/// that the caller's passport or national ID card was checked (`completionData.stepUp.mrtd`),
/// else 0 (also for a failed order). `BANKID_NOT_FINISHED` while pending. Never blocks.
///
/// # Safety
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_step_up(order: bankid_order, mrtd_out: *mut u32) -> bankid_status {
    ffi_body!({
        non_null(mrtd_out, "mrtd_out")?;
        let v = with_engine(|e| e.poll(order))?;
        if !v.state.is_final() {
            return Err(fail(BANKID_NOT_FINISHED, "the order is still pending"));
        }
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { put(mrtd_out, "mrtd_out", u32::from(v.step_up.mrtd)) }
    })
}

/// The text the caller approved, for a complete signing (`BANKID_MODE_SIGN`): exactly the
/// `user_visible_data` sent. The empty string for an identification or an order that did not
/// complete. snprintf-style; UTF-8. `BANKID_NOT_FINISHED` while pending. Never blocks.
///
/// # Safety
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_signed_text(
    order: bankid_order,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    ffi_body!({
        let v = with_engine(|e| e.poll(order))?;
        if !v.state.is_final() {
            return Err(fail(BANKID_NOT_FINISHED, "the order is still pending"));
        }
        let text = v.signed_text.as_deref().unwrap_or("");
        // SAFETY: forwarded caller guarantees.
        unsafe { write_str(text, buf, buf_len, out_len) }
    })
}

/// Cancels a pending order (the caller hung up or chose another way): its state turns
/// `BANKID_STATE_FAILED` at once and BankID is told in the background. A final order is left
/// as it is. The handle stays valid until `bankid_release`. Never blocks.
#[no_mangle]
pub extern "C" fn bankid_cancel(order: bankid_order) -> bankid_status {
    ffi_body!({ with_engine(|e| e.cancel(order)) })
}

/// Releases an order: cancels it at BankID if still pending, frees it, and makes the handle
/// stale. Releasing 0 is a no-op that returns `BANKID_OK`; releasing twice returns
/// `BANKID_STALE_HANDLE`. Never blocks. Unreleased final orders are freed after `result_ttl_s`.
#[no_mangle]
pub extern "C" fn bankid_release(order: bankid_order) -> bankid_status {
    ffi_body!({
        if order == 0 {
            return Ok(());
        }
        with_engine(|e| e.release(order))
    })
}

/// The library's metrics as OpenMetrics text (the Prometheus text format; ends in `# EOF`),
/// snprintf-style into `buf`, for a host that serves them itself (e.g. on its own `/metrics`
/// with `Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8`): orders
/// started and finished by state, hint and error code, declined calls, anti-vishing refusals,
/// BankID latency per endpoint, retries, orders in flight, the client certificate's expiry.
/// No personal data. `(NULL, 0)` asks for the length in `*out_len`; the text may grow between
/// that call and the next, so allow some room or retry on `BANKID_BUFFER_TOO_SMALL`.
/// `BANKID_NOT_INITIALIZED` before `bankid_init`. Thread-safe; never blocks on the network
/// (it formats counters the library keeps; a few microseconds).
///
/// # Safety
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_metrics(
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    ffi_body!({
        let text = engine()?.metrics_text();
        // SAFETY: forwarded caller guarantees.
        unsafe { write_str(&text, buf, buf_len, out_len) }
    })
}

/// The calling thread's last error message (set by the last call that failed on this thread),
/// snprintf-style; never contains a whole personal number or a password.
///
/// # Safety
/// The pointer rules of the header banner.
#[no_mangle]
pub unsafe extern "C" fn bankid_last_error(
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> bankid_status {
    // Not through ffi_body!: that would overwrite the message being read when it fails.
    match catch_unwind(AssertUnwindSafe(|| LAST_ERROR.with(|e| e.borrow().clone()))) {
        // SAFETY: forwarded caller guarantees.
        Ok(msg) => match unsafe { write_str(&msg, buf, buf_len, out_len) } {
            Ok(()) => BANKID_OK,
            Err(status) => status,
        },
        Err(_) => BANKID_PANIC,
    }
}

/// Every status's C name, NUL-terminated, in value order (values are contiguous from 0).
static STATUS_NAMES: LazyLock<Vec<CString>> = LazyLock::new(|| {
    use strum::IntoEnumIterator;
    bankid_status::iter()
        .map(|s| CString::new(s.name()).unwrap_or_default())
        .collect()
});

/// The name of a status code (`"BANKID_OK"`, …), or `"BANKID_UNKNOWN_STATUS"`. Static storage:
/// never free it. Never NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn bankid_status_str(status: u32) -> *const c_char {
    let name = bankid_status::try_from(status)
        .ok()
        .and_then(|s| STATUS_NAMES.get(s as usize));
    match name {
        Some(n) => n.as_ptr(),
        None => c"BANKID_UNKNOWN_STATUS".as_ptr(),
    }
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
    ffi_body!({
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
        if !ok {
            return Err(fail(
                BANKID_INTERNAL,
                "another logger is installed in this process",
            ));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_names_and_values_are_derived_from_the_enums() {
        use strum::IntoEnumIterator;
        for (i, s) in bankid_status::iter().enumerate() {
            assert_eq!(s as usize, i, "status values are contiguous from 0");
            assert_eq!(bankid_status::try_from(s as u32), Ok(s));
            let c = unsafe { CStr::from_ptr(bankid_status_str(s as u32)) };
            assert_eq!(c.to_str().unwrap(), s.name());
        }
        assert_eq!(BANKID_RATE_LIMITED.name(), "BANKID_RATE_LIMITED");
        let unknown = unsafe { CStr::from_ptr(bankid_status_str(9999)) };
        assert_eq!(unknown.to_str().unwrap(), "BANKID_UNKNOWN_STATUS");
        assert_eq!(
            bankid_state::try_from(3),
            Ok(bankid_state::BANKID_STATE_FAILED)
        );
        assert_eq!(bankid_lang::try_from(2), Err(2));
        assert_eq!(
            bankid_call_initiator::BANKID_CALL_INITIATOR_RP.name(),
            "BANKID_CALL_INITIATOR_RP"
        );
    }
}
