//! The C ABI called directly from Rust: NULLs, buffers, stale handles, initialisation order.
//! One test function, because the library has one global engine per process.

mod common;

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use bankid::ffi::bankid_status::*;
use bankid::ffi::*;

fn last_error() -> String {
    let mut buf = [0 as c_char; 512];
    let mut len = 0usize;
    unsafe { bankid_last_error(buf.as_mut_ptr(), buf.len(), &mut len) };
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn text(f: impl Fn(*mut c_char, usize, *mut usize) -> bankid_status) -> (bankid_status, String) {
    let mut buf = [0 as c_char; 512];
    let mut len = 0usize;
    let st = f(buf.as_mut_ptr(), buf.len(), &mut len);
    (
        st,
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

#[test]
fn the_c_abi_holds_its_conventions() {
    let env = common::sim();
    let pnr = CString::new("198503121116").unwrap();
    let mut order: bankid_order = 0;

    // Before init.
    assert_eq!(
        unsafe { bankid_start(pnr.as_ptr(), 0, &mut order) },
        BANKID_NOT_INITIALIZED
    );
    let mut metrics_len = 7usize;
    assert_eq!(
        unsafe { bankid_metrics(ptr::null_mut(), 0, &mut metrics_len) },
        BANKID_NOT_INITIALIZED
    );
    assert_eq!(metrics_len, 7, "no output on failure");
    assert_eq!(bankid_release(0), BANKID_OK);
    assert_eq!(
        bankid_shutdown(),
        BANKID_OK,
        "shutdown when not initialised is a no-op"
    );

    // A configuration error names the file.
    let missing = CString::new("/nonexistent/bankid.toml").unwrap();
    assert_eq!(
        unsafe { bankid_init(missing.as_ptr()) },
        BANKID_CONFIG_ERROR
    );
    assert!(
        last_error().contains("/nonexistent/bankid.toml"),
        "{}",
        last_error()
    );
    let bad = env.dir().join("bad.toml");
    std::fs::write(
        &bad,
        "url = \"https://127.0.0.1:1/\"\nca_file = \"ca.pem\"\nbogus = 1\n",
    )
    .unwrap();
    let bad = CString::new(bad.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { bankid_init(bad.as_ptr()) }, BANKID_CONFIG_ERROR);
    assert!(
        last_error().contains("unknown key \"bogus\""),
        "{}",
        last_error()
    );

    // The log callback receives the library's lines, never with a whole personal number.
    assert_eq!(
        bankid_set_log_callback(Some(collect_log), ptr::null_mut()),
        BANKID_OK
    );

    let cfg = CString::new(
        env.write_toml("language = \"en\"\nmax_orders_per_caller_per_hour = 2")
            .to_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        unsafe { bankid_init(cfg.as_ptr()) },
        BANKID_OK,
        "{}",
        last_error()
    );
    assert_eq!(
        unsafe { bankid_init(cfg.as_ptr()) },
        BANKID_ALREADY_INITIALIZED
    );

    // Invalid UTF-8 and bad numbers never reach BankID.
    let not_utf8 = [0xffu8 as c_char, 0];
    assert_eq!(
        unsafe { bankid_start(not_utf8.as_ptr(), 0, &mut order) },
        BANKID_INVALID_UTF8
    );
    let short = CString::new("85031211").unwrap();
    assert_eq!(
        unsafe { bankid_start(short.as_ptr(), 0, &mut order) },
        BANKID_INVALID_PERSONAL_NUMBER
    );
    assert!(last_error().contains("12 digits"), "{}", last_error());
    assert!(env.lab.orders().is_empty());

    assert_eq!(
        unsafe { bankid_start(pnr.as_ptr(), BANKID_CALL_INITIATOR_RP_VALUE, &mut order) },
        BANKID_OK
    );
    assert_ne!(order, 0);
    let (st, msg) = text(|b, l, o| unsafe { bankid_message(order, 1, b, l, o) });
    assert_eq!(st, BANKID_OK);
    assert!(
        msg == "Start your BankID app." || msg.contains("BankID app"),
        "{msg}"
    );
    assert_eq!(
        text(|b, l, o| unsafe { bankid_message(order, 9, b, l, o) }).0,
        BANKID_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { bankid_poll(order, ptr::null_mut()) },
        BANKID_NULL_POINTER
    );
    assert_eq!(
        unsafe { bankid_hint_code(order, ptr::null_mut(), 5, ptr::null_mut()) },
        BANKID_NULL_POINTER
    );

    let mut state = 0u32;
    for _ in 0..2000 {
        assert_eq!(unsafe { bankid_poll(order, &mut state) }, BANKID_OK);
        if state != bankid_state::BANKID_STATE_PENDING as u32 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(state, bankid_state::BANKID_STATE_COMPLETE as u32);
    let (st, result) = text(|b, l, o| unsafe { bankid_result_text(order, b, l, o) });
    assert_eq!(
        (st, result.as_str()),
        (
            BANKID_OK,
            "Identification successful for social security number 850312-1116"
        )
    );
    assert_eq!(env.lab.orders()[0].call_initiator.as_deref(), Some("RP"));

    // Exact fit: 66 bytes + NUL.
    let mut exact = vec![0 as c_char; result.len() + 1];
    let mut len = 0;
    assert_eq!(
        unsafe { bankid_result_text(order, exact.as_mut_ptr(), exact.len(), &mut len) },
        BANKID_OK
    );
    let mut one_short = vec![0 as c_char; result.len()];
    assert_eq!(
        unsafe { bankid_result_text(order, one_short.as_mut_ptr(), one_short.len(), &mut len) },
        BANKID_BUFFER_TOO_SMALL
    );
    assert_eq!(len, result.len());

    metrics_through_the_c_abi();

    // Cancel of a final order leaves it as it is.
    assert_eq!(bankid_cancel(order), BANKID_OK);
    assert_eq!(unsafe { bankid_poll(order, &mut state) }, BANKID_OK);
    assert_eq!(state, bankid_state::BANKID_STATE_COMPLETE as u32);

    assert_eq!(bankid_release(order), BANKID_OK);
    assert_eq!(bankid_release(order), BANKID_STALE_HANDLE);
    assert_eq!(bankid_cancel(order), BANKID_STALE_HANDLE);
    assert_eq!(
        unsafe { CStr::from_ptr(bankid_status_str(8)) }
            .to_str()
            .unwrap(),
        "BANKID_STALE_HANDLE"
    );
    assert_eq!(
        unsafe { CStr::from_ptr(bankid_version()) }
            .to_str()
            .unwrap(),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(bankid_shutdown(), BANKID_OK);
    assert_eq!(
        unsafe { bankid_poll(order, &mut state) },
        BANKID_NOT_INITIALIZED
    );

    // A new engine never hands out an old engine's handle, and the old handle is stale in it:
    // a thread still holding it cannot reach another caller's order.
    let before = order;
    assert_eq!(unsafe { bankid_init(cfg.as_ptr()) }, BANKID_OK);
    let mut again: bankid_order = 0;
    assert_eq!(
        unsafe { bankid_start(pnr.as_ptr(), 0, &mut again) },
        BANKID_OK
    );
    assert_ne!(again, before, "a handle is never reused across bankid_init");
    assert_eq!(
        unsafe { bankid_poll(before, &mut state) },
        BANKID_STALE_HANDLE
    );
    assert_eq!(bankid_release(before), BANKID_STALE_HANDLE);

    // Options: a struct from the init function, the caller ID counted per hour.
    let mut opts = std::mem::MaybeUninit::<bankid_start_options>::uninit();
    assert_eq!(
        unsafe { bankid_start_options_init(opts.as_mut_ptr()) },
        BANKID_OK
    );
    let mut opts = unsafe { opts.assume_init() };
    assert_eq!(
        opts.struct_size as usize,
        std::mem::size_of::<bankid_start_options>()
    );
    assert_eq!(
        unsafe { bankid_start_with(&opts, &mut order) },
        BANKID_NULL_POINTER,
        "the personal number is required"
    );
    let caller = CString::new("+46701234567").unwrap();
    opts.caller_id = caller.as_ptr();
    opts.call_initiator = BANKID_CALL_INITIATOR_RP_VALUE;
    for n in ["199908072391", "196801642395"] {
        let n = CString::new(n).unwrap();
        opts.personal_number = n.as_ptr();
        assert_eq!(
            unsafe { bankid_start_with(&opts, &mut order) },
            BANKID_OK,
            "{}",
            last_error()
        );
        assert_eq!(bankid_release(order), BANKID_OK);
    }
    let third = CString::new("199105212220").unwrap();
    opts.personal_number = third.as_ptr();
    let mut refused: bankid_order = 0;
    assert_eq!(
        unsafe { bankid_start_with(&opts, &mut refused) },
        BANKID_RATE_LIMITED,
        "max_orders_per_caller_per_hour = 2"
    );
    assert_eq!(refused, 0, "outputs are written only on success");
    assert!(last_error().contains("caller ID"), "{}", last_error());
    let small = bankid_start_options {
        struct_size: 4,
        ..opts
    };
    assert_eq!(
        unsafe { bankid_start_with(&small, &mut order) },
        BANKID_INVALID_ARGUMENT
    );

    // A declined call blocks the number; the C host gets its own status for it.
    let cecilia = CString::new("197709083336").unwrap();
    assert_eq!(
        unsafe { bankid_start(cecilia.as_ptr(), 0, &mut order) },
        BANKID_OK
    );
    for _ in 0..2000 {
        assert_eq!(unsafe { bankid_poll(order, &mut state) }, BANKID_OK);
        if state != bankid_state::BANKID_STATE_PENDING as u32 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(state, bankid_state::BANKID_STATE_FAILED as u32);
    assert_eq!(
        unsafe { bankid_start(cecilia.as_ptr(), 0, &mut refused) },
        BANKID_DECLINED_RECENTLY
    );
    let msg = last_error();
    assert!(msg.contains("declined") && !msg.contains("0908"), "{msg}");
    assert_eq!(
        unsafe { CStr::from_ptr(bankid_status_str(14)) }
            .to_str()
            .unwrap(),
        "BANKID_DECLINED_RECENTLY"
    );

    // Shutdown with an order pending while another thread keeps polling it: the order is
    // cancelled at BankID before shutdown returns, and no poll waits longer than the shutdown.
    let slow = CString::new("197204158880").unwrap();
    let mut pending: bankid_order = 0;
    assert_eq!(
        unsafe { bankid_start(slow.as_ptr(), 0, &mut pending) },
        BANKID_OK
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut longest = std::time::Duration::ZERO;
            let mut st = 0u32;
            let mut codes = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let t = std::time::Instant::now();
                codes.insert(unsafe { bankid_poll(pending, &mut st) } as u32);
                longest = longest.max(t.elapsed());
            }
            (longest, codes)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let t = std::time::Instant::now();
    assert_eq!(bankid_shutdown(), BANKID_OK);
    let shutdown_took = t.elapsed();
    let slow_order =
        |o: &bankid_sim::OrderInfo| o.personal_number_masked.as_deref() == Some("720415-XXXX");
    let slow_orders: Vec<_> = env.lab.orders().into_iter().filter(slow_order).collect();
    assert!(
        slow_orders.len() == 1 && slow_orders[0].cancelled_by_rp,
        "the pending order was cancelled at BankID before bankid_shutdown returned: {:?}",
        env.lab.orders()
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (longest, codes) = poller.join().unwrap();
    // (Plus 100 ms of scheduling noise: on a loaded machine the polling thread itself may be
    // descheduled for longer than a quick shutdown takes.)
    assert!(
        longest <= shutdown_took + std::time::Duration::from_millis(100),
        "a poll during shutdown took {longest:?}, the shutdown {shutdown_took:?}"
    );
    assert!(
        codes.is_subset(&[BANKID_OK as u32, BANKID_NOT_INITIALIZED as u32].into()),
        "{codes:?}"
    );

    let lines = LOG.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("SECURITY") && l.contains("770908-XXXX")),
        "the refusal and the declined call are security events: {lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("850312-XXXX")), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("8503121116")), "{lines:?}");
    assert_eq!(bankid_set_log_callback(None, ptr::null_mut()), BANKID_OK);
}

/// `bankid_metrics`: the size query, NULLs, a short buffer, and text the Prometheus project's
/// parsers read, counting the one identification made so far.
fn metrics_through_the_c_abi() {
    let fetch = || {
        let mut len = 0usize;
        assert_eq!(
            unsafe { bankid_metrics(ptr::null_mut(), 0, &mut len) },
            BANKID_BUFFER_TOO_SMALL,
            "(NULL, 0) is a size query"
        );
        assert!(len > 100, "{len}");
        let mut buf = vec![0 as c_char; len + 4096];
        let mut got = 0usize;
        assert_eq!(
            unsafe { bankid_metrics(buf.as_mut_ptr(), buf.len(), &mut got) },
            BANKID_OK
        );
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap()
            .to_string()
    };
    // The order's task counts its end as it finishes; wait for it.
    let t = std::time::Instant::now();
    let samples = loop {
        let s = common::parse_metrics(&fetch());
        if common::sample(&s, "bankid_orders_in_flight", &[]) == 0.0
            || t.elapsed() > std::time::Duration::from_secs(10)
        {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(
        common::sample(&samples, "bankid_orders_started_total", &[]),
        1.0
    );
    assert_eq!(
        common::sample(
            &samples,
            "bankid_orders_finished_total",
            &[("state", "complete")]
        ),
        1.0
    );
    let text = fetch();
    assert!(text.ends_with("# EOF\n"), "{text}");

    // A short buffer: NUL-terminated, the full length in *out_len, BUFFER_TOO_SMALL.
    let mut short = [1 as c_char; 16];
    let mut len = 0usize;
    assert_eq!(
        unsafe { bankid_metrics(short.as_mut_ptr(), short.len(), &mut len) },
        BANKID_BUFFER_TOO_SMALL
    );
    assert_eq!(len, text.len());
    assert_eq!(short[15], 0);
    assert_eq!(
        unsafe { CStr::from_ptr(short.as_ptr()) }.to_bytes(),
        &text.as_bytes()[..15]
    );
    // NULL buffer with a length, and no out_len: refused or still safe.
    assert_eq!(
        unsafe { bankid_metrics(ptr::null_mut(), 10, &mut len) },
        BANKID_NULL_POINTER
    );
    let mut big = vec![0 as c_char; text.len() + 4096];
    assert_eq!(
        unsafe { bankid_metrics(big.as_mut_ptr(), big.len(), ptr::null_mut()) },
        BANKID_OK
    );
}

static LOG: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn collect_log(
    _level: u32,
    message: *const c_char,
    _userdata: *mut std::ffi::c_void,
) {
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    LOG.lock().unwrap().push(text);
}

const BANKID_CALL_INITIATOR_RP_VALUE: u32 = bankid_call_initiator::BANKID_CALL_INITIATOR_RP as u32;
