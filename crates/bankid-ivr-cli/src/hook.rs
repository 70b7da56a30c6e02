//! The custom-block hook, for real: `libbankid.so` loaded with `dlopen` (libloading) and driven
//! through its C ABI exactly as an IVR runtime's plug-in would.

//!
//! The status, state, language and call-initiator values are the library's own enums
//! ([`bankid::ffi`]), passed `as u32` and read back with `try_from`: nothing is numbered twice.

use std::ffi::{c_char, CStr, CString, NulError};
use std::fmt;
use std::path::{Path, PathBuf};

use bankid::ffi::bankid_status::{self, *};
use bankid::ffi::{
    bankid_call_initiator, bankid_channel, bankid_lang, bankid_mode, bankid_start_options,
    bankid_state,
};

/// A `bankid_status` as the C functions return it.
type Status = u32;
const OK: Status = BANKID_OK as Status;

/// Why the library could not be found, loaded or used.
#[derive(Debug)]
pub enum Error {
    /// The library given does not exist.
    Missing(PathBuf),
    /// Not in any of the usual places (they are listed).
    NotFound(Vec<PathBuf>),
    /// `dlopen` failed.
    Open {
        /// The library.
        path: PathBuf,
        /// The loader's words.
        reason: String,
    },
    /// A function is missing from the library.
    Symbol {
        /// Its name.
        name: String,
        /// The loader's words.
        reason: String,
    },
    /// The configuration path has a NUL byte.
    ConfigPath(NulError),
    /// A text option (or the call id) has a NUL byte.
    NulInText,
    /// The personal number has a NUL byte (counts as `BANKID_INVALID_PERSONAL_NUMBER`).
    NulInNumber,
    /// A call returned this status; `name` and `detail` are the library's
    /// (`bankid_status_str`, `bankid_last_error`).
    Status {
        /// The value returned.
        status: Status,
        /// Its C name.
        name: String,
        /// The last error message.
        detail: String,
    },
    /// `bankid_poll` wrote a state this program does not know.
    UnknownState(u32),
}

impl Error {
    /// The library's status behind the error, if it came from a call.
    pub fn status(&self) -> Option<bankid_status> {
        match self {
            Error::Status { status, .. } => bankid_status::try_from(*status).ok(),
            Error::NulInNumber => Some(BANKID_INVALID_PERSONAL_NUMBER),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Missing(p) => write!(f, "library {} does not exist", p.display()),
            Error::NotFound(candidates) => write!(
                f,
                "libbankid.so not found (looked in: {}); build it with `cargo build -p bankid-ivr`, or pass --lib / set BANKID_LIB",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Error::Open { path, reason } => write!(f, "dlopen {}: {reason}", path.display()),
            Error::Symbol { name, reason } => write!(f, "{name}: {reason}"),
            Error::ConfigPath(e) => write!(f, "{e}"),
            Error::NulInNumber => f.write_str("NUL in the personal number"),
            Error::NulInText => f.write_str("NUL in userVisibleData"),
            Error::Status { name, detail, .. } => write!(f, "{name}: {detail}"),
            Error::UnknownState(n) => write!(f, "bankid_poll: unknown state {n}"),
        }
    }
}

impl std::error::Error for Error {}

type TextFn = unsafe extern "C" fn(u64, *mut c_char, usize, *mut usize) -> Status;

/// The loaded library and its functions.
pub struct Hook {
    _lib: libloading::Library,
    path: PathBuf,
    init: unsafe extern "C" fn(*const c_char) -> Status,
    start: unsafe extern "C" fn(*const c_char, u32, *mut u64) -> Status,
    options_init: unsafe extern "C" fn(*mut bankid_start_options) -> Status,
    start_with: unsafe extern "C" fn(*const bankid_start_options, *mut u64) -> Status,
    signed_text: TextFn,
    step_up: unsafe extern "C" fn(u64, *mut u32) -> Status,
    poll: unsafe extern "C" fn(u64, *mut u32) -> Status,
    result_text: TextFn,
    hint_code: TextFn,
    message: unsafe extern "C" fn(u64, u32, *mut c_char, usize, *mut usize) -> Status,
    cancel: unsafe extern "C" fn(u64) -> Status,
    release: unsafe extern "C" fn(u64) -> Status,
    last_error: unsafe extern "C" fn(*mut c_char, usize, *mut usize) -> Status,
    status_str: unsafe extern "C" fn(u32) -> *const c_char,
    shutdown: unsafe extern "C" fn() -> Status,
}

/// Where to look for libbankid.so: `explicit`, `$BANKID_LIB`, then beside this executable
/// (`target/<profile>/`), then its `deps/`.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Error::Missing(p.to_path_buf()))
        };
    }
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("BANKID_LIB") {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("libbankid.so"));
            candidates.push(dir.join("deps/libbankid.so"));
            if let Some(up) = dir.parent() {
                candidates.push(up.join("libbankid.so"));
            }
        }
    }
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(Error::NotFound(candidates)),
    }
}

macro_rules! sym {
    ($lib:expr, $name:literal) => {
        // SAFETY: the symbol has this signature in include/bankid.h.
        *unsafe { $lib.get($name) }.map_err(|e| Error::Symbol {
            name: String::from_utf8_lossy($name).into_owned(),
            reason: e.to_string(),
        })?
    };
}

impl Hook {
    /// dlopen + dlsym of every function used.
    pub fn load(path: &Path) -> Result<Hook, Error> {
        // SAFETY: loading runs the library's initialisers; libbankid.so has none beyond Rust's.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| Error::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Hook {
            init: sym!(lib, b"bankid_init"),
            start: sym!(lib, b"bankid_start"),
            options_init: sym!(lib, b"bankid_start_options_init"),
            start_with: sym!(lib, b"bankid_start_with"),
            signed_text: sym!(lib, b"bankid_signed_text"),
            step_up: sym!(lib, b"bankid_step_up"),
            poll: sym!(lib, b"bankid_poll"),
            result_text: sym!(lib, b"bankid_result_text"),
            hint_code: sym!(lib, b"bankid_hint_code"),
            message: sym!(lib, b"bankid_message"),
            cancel: sym!(lib, b"bankid_cancel"),
            release: sym!(lib, b"bankid_release"),
            last_error: sym!(lib, b"bankid_last_error"),
            status_str: sym!(lib, b"bankid_status_str"),
            shutdown: sym!(lib, b"bankid_shutdown"),
            path: path.to_path_buf(),
            _lib: lib,
        })
    }

    /// The library's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, st: Status) -> Error {
        let mut buf = [0 as c_char; 512];
        let mut len = 0usize;
        // SAFETY: valid buffer and length.
        unsafe { (self.last_error)(buf.as_mut_ptr(), buf.len(), &mut len) };
        // SAFETY: status_str returns a static C string; last_error NUL-terminated the buffer.
        let name = unsafe { CStr::from_ptr((self.status_str)(st)) }
            .to_string_lossy()
            .into_owned();
        let detail = unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Error::Status {
            status: st,
            name,
            detail,
        }
    }

    /// `bankid_init(config)`; already initialised counts as success.
    pub fn init(&self, config: Option<&Path>) -> Result<(), Error> {
        let c = config
            .map(|p| CString::new(p.display().to_string()).map_err(Error::ConfigPath))
            .transpose()?;
        // SAFETY: NULL or a valid C string.
        let st = unsafe { (self.init)(c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())) };
        match bankid_status::try_from(st) {
            Ok(BANKID_OK | BANKID_ALREADY_INITIALIZED) => Ok(()),
            _ => Err(self.error(st)),
        }
    }

    /// `bankid_start`; the error carries the status ([`Error::status`]).
    pub fn start(&self, pnr: &str, initiator: bankid_call_initiator) -> Result<u64, Error> {
        let c = CString::new(pnr).map_err(|_| Error::NulInNumber)?;
        let mut order = 0u64;
        // SAFETY: valid C string and out pointer.
        let st = unsafe { (self.start)(c.as_ptr(), initiator as u32, &mut order) };
        if st == OK {
            Ok(order)
        } else {
            Err(self.error(st))
        }
    }

    /// `bankid_start_with`: sign or identify, a text shown in the app, the security code and
    /// the ID-document check ([`Extra`]); the error carries the status.
    pub fn start_with(
        &self,
        pnr: &str,
        initiator: bankid_call_initiator,
        extra: &Extra,
    ) -> Result<u64, Error> {
        let c = CString::new(pnr).map_err(|_| Error::NulInNumber)?;
        let text = extra
            .text
            .as_deref()
            .map(CString::new)
            .transpose()
            .map_err(|_| Error::NulInText)?;
        let call_id = extra
            .call_id
            .as_deref()
            .map(CString::new)
            .transpose()
            .map_err(|_| Error::NulInText)?;
        let mut o = std::mem::MaybeUninit::<bankid_start_options>::uninit();
        // SAFETY: room for the struct; the init function fills every field.
        let st = unsafe { (self.options_init)(o.as_mut_ptr()) };
        if st != OK {
            return Err(self.error(st));
        }
        // SAFETY: initialised just above.
        let mut o = unsafe { o.assume_init() };
        o.personal_number = c.as_ptr();
        o.call_initiator = initiator as u32;
        o.mode = extra.mode as u32;
        o.user_visible_data = text.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
        o.require_pin_code = u32::from(extra.pin_code);
        o.require_id_document = u32::from(extra.id_document);
        o.call_id = call_id.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
        o.channel = extra.channel as u32;
        let mut order = 0u64;
        // SAFETY: the struct and its strings outlive the call; valid out pointer.
        let st = unsafe { (self.start_with)(&o, &mut order) };
        if st == OK {
            Ok(order)
        } else {
            Err(self.error(st))
        }
    }

    /// `bankid_signed_text` (empty for an identification or while pending).
    pub fn signed_text(&self, order: u64) -> String {
        // SAFETY: buffers sized as the library asked.
        self.text(|b, l, o| unsafe { (self.signed_text)(order, b, l, o) })
    }

    /// `bankid_step_up`: whether the ID document was checked (false while pending).
    pub fn id_document_checked(&self, order: u64) -> bool {
        let mut mrtd = 0u32;
        // SAFETY: valid out pointer.
        let st = unsafe { (self.step_up)(order, &mut mrtd) };
        st == OK && mrtd == 1
    }

    /// `bankid_poll`.
    pub fn poll(&self, order: u64) -> Result<bankid_state, Error> {
        let mut state = 0u32;
        // SAFETY: valid out pointer.
        let st = unsafe { (self.poll)(order, &mut state) };
        if st == OK {
            bankid_state::try_from(state).map_err(Error::UnknownState)
        } else {
            Err(self.error(st))
        }
    }

    fn text(&self, f: impl Fn(*mut c_char, usize, *mut usize) -> Status) -> String {
        let mut need = 0usize;
        f(std::ptr::null_mut(), 0, &mut need);
        let mut buf = vec![0 as c_char; need + 1];
        let mut len = 0usize;
        if f(buf.as_mut_ptr(), buf.len(), &mut len) != OK {
            return String::new();
        }
        // SAFETY: NUL-terminated by the library.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    /// `bankid_result_text` (empty while pending).
    pub fn result_text(&self, order: u64) -> String {
        // SAFETY: buffers sized as the library asked.
        self.text(|b, l, o| unsafe { (self.result_text)(order, b, l, o) })
    }

    /// `bankid_hint_code`.
    pub fn hint_code(&self, order: u64) -> String {
        // SAFETY: as above.
        self.text(|b, l, o| unsafe { (self.hint_code)(order, b, l, o) })
    }

    /// `bankid_message` in `lang`.
    pub fn message(&self, order: u64, lang: bankid_lang) -> String {
        // SAFETY: as above.
        self.text(|b, l, o| unsafe { (self.message)(order, lang as u32, b, l, o) })
    }

    /// `bankid_cancel`.
    pub fn cancel(&self, order: u64) {
        // SAFETY: plain value call.
        unsafe { (self.cancel)(order) };
    }

    /// `bankid_release`.
    pub fn release(&self, order: u64) {
        // SAFETY: plain value call.
        unsafe { (self.release)(order) };
    }

    /// `bankid_shutdown`: cancels what is pending and waits up to 2 s.
    pub fn shutdown(&self) {
        // SAFETY: plain call.
        unsafe { (self.shutdown)() };
    }
}

/// The options of `bankid_start_with` beyond the number and call initiator.
#[derive(Debug, Clone)]
pub struct Extra {
    /// Identify or sign.
    pub mode: bankid_mode,
    /// Text shown in the app (required to sign).
    pub text: Option<String>,
    /// Require the security code.
    pub pin_code: bool,
    /// Require the ID-document check.
    pub id_document: bool,
    /// The call's identifier for the audit record.
    pub call_id: Option<String>,
    /// The entry point the audit record names.
    pub channel: bankid_channel,
}

impl Default for Extra {
    fn default() -> Extra {
        Extra {
            mode: bankid_mode::BANKID_MODE_IDENTIFY,
            text: None,
            pin_code: false,
            id_document: false,
            call_id: None,
            channel: bankid_channel::BANKID_CHANNEL_C_ABI,
        }
    }
}
