//! The custom-block hook, for real: `libbankid.so` loaded with `dlopen` (libloading) and driven
//! through its C ABI exactly as an IVR runtime's plug-in would.

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};

type Status = u32;
/// `BANKID_OK`.
pub const OK: Status = 0;
/// `BANKID_INVALID_PERSONAL_NUMBER`.
pub const INVALID_PERSONAL_NUMBER: Status = 7;
/// `BANKID_ALREADY_INITIALIZED`.
pub const ALREADY_INITIALIZED: Status = 5;
/// `BANKID_DECLINED_RECENTLY`: an anti-vishing refusal (the number declined a call lately).
pub const DECLINED_RECENTLY: Status =
    bankid::ffi::bankid_status::BANKID_DECLINED_RECENTLY as Status;
/// `BANKID_RATE_LIMITED`: an anti-vishing refusal (too many orders for the number or caller).
pub const RATE_LIMITED: Status = bankid::ffi::bankid_status::BANKID_RATE_LIMITED as Status;
/// `BANKID_STATE_PENDING` … `BANKID_STATE_ERROR`.
pub const STATE_PENDING: u32 = 1;
/// Identified.
pub const STATE_COMPLETE: u32 = 2;
/// BankID said failed.
pub const STATE_FAILED: u32 = 3;

type TextFn = unsafe extern "C" fn(u64, *mut c_char, usize, *mut usize) -> Status;

/// The loaded library and its functions.
pub struct Hook {
    _lib: libloading::Library,
    path: PathBuf,
    init: unsafe extern "C" fn(*const c_char) -> Status,
    start: unsafe extern "C" fn(*const c_char, u32, *mut u64) -> Status,
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
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("library {} does not exist", p.display()))
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
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "libbankid.so not found (looked in: {}); build it with `cargo build -p bankid-ivr`, or pass --lib / set BANKID_LIB",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

macro_rules! sym {
    ($lib:expr, $name:literal) => {
        // SAFETY: the symbol has this signature in include/bankid.h.
        *unsafe { $lib.get($name) }
            .map_err(|e| format!("{}: {e}", String::from_utf8_lossy($name)))?
    };
}

impl Hook {
    /// dlopen + dlsym of every function used.
    pub fn load(path: &Path) -> Result<Hook, String> {
        // SAFETY: loading runs the library's initialisers; libbankid.so has none beyond Rust's.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| format!("dlopen {}: {e}", path.display()))?;
        Ok(Hook {
            init: sym!(lib, b"bankid_init"),
            start: sym!(lib, b"bankid_start"),
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

    fn error(&self, st: Status) -> String {
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
        format!("{name}: {detail}")
    }

    /// `bankid_init(config)`; already initialised counts as success.
    pub fn init(&self, config: Option<&Path>) -> Result<(), String> {
        let c = config
            .map(|p| CString::new(p.display().to_string()).map_err(|e| e.to_string()))
            .transpose()?;
        // SAFETY: NULL or a valid C string.
        let st = unsafe { (self.init)(c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())) };
        match st {
            OK | ALREADY_INITIALIZED => Ok(()),
            _ => Err(self.error(st)),
        }
    }

    /// `bankid_start`; the error carries the status.
    pub fn start(&self, pnr: &str, initiator: u32) -> Result<u64, (Status, String)> {
        let c = CString::new(pnr).map_err(|_| {
            (
                INVALID_PERSONAL_NUMBER,
                "NUL in the personal number".to_string(),
            )
        })?;
        let mut order = 0u64;
        // SAFETY: valid C string and out pointer.
        let st = unsafe { (self.start)(c.as_ptr(), initiator, &mut order) };
        if st == OK {
            Ok(order)
        } else {
            Err((st, self.error(st)))
        }
    }

    /// `bankid_poll`.
    pub fn poll(&self, order: u64) -> Result<u32, String> {
        let mut state = 0u32;
        // SAFETY: valid out pointer.
        let st = unsafe { (self.poll)(order, &mut state) };
        if st == OK {
            Ok(state)
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

    /// `bankid_message` in `lang` (0 sv, 1 en).
    pub fn message(&self, order: u64, lang: u32) -> String {
        // SAFETY: as above.
        self.text(|b, l, o| unsafe { (self.message)(order, lang, b, l, o) })
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
