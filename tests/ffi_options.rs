//! `bankid_start_with`'s version-2 options through the C ABI: defaults, a version-1 struct,
//! signing, the ID-document check and refused values, against bankid-sim. Its own process
//! (the library has one global engine per process).

mod common;

use std::ffi::{c_char, CStr, CString};
use std::ptr;
use std::time::{Duration, Instant};

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

/// The first version of the struct, as a program built against the older header has it.
#[repr(C)]
struct OptionsV1 {
    struct_size: u32,
    call_initiator: u32,
    personal_number: *const c_char,
    caller_id: *const c_char,
}

fn defaults() -> bankid_start_options {
    let mut o = std::mem::MaybeUninit::<bankid_start_options>::uninit();
    assert_eq!(
        unsafe { bankid_start_options_init(o.as_mut_ptr()) },
        BANKID_OK
    );
    unsafe { o.assume_init() }
}

fn wait_final(order: bankid_order) -> u32 {
    let t = Instant::now();
    loop {
        let mut state = 0u32;
        assert_eq!(unsafe { bankid_poll(order, &mut state) }, BANKID_OK);
        if state != bankid_state::BANKID_STATE_PENDING as u32 {
            return state;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "still pending");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signed_text(order: bankid_order) -> (bankid_status, String) {
    let mut buf = [0 as c_char; 256];
    let mut len = 0usize;
    let st = unsafe { bankid_signed_text(order, buf.as_mut_ptr(), buf.len(), &mut len) };
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    (st, s)
}

fn row(env: &common::Env) -> serde_json::Value {
    serde_json::to_value(env.lab.orders().pop().unwrap()).unwrap()
}

const COMPLETE: u32 = bankid_state::BANKID_STATE_COMPLETE as u32;

#[test]
fn start_options_version_two_through_the_c_abi() {
    let env = common::sim();
    let cfg = CString::new(env.write_toml("").to_str().unwrap()).unwrap();
    assert_eq!(
        unsafe { bankid_init(cfg.as_ptr()) },
        BANKID_OK,
        "{}",
        last_error()
    );
    let anna = CString::new("198503121116").unwrap();
    let mut order: bankid_order = 0;

    // The init function's defaults.
    let d = defaults();
    assert_eq!(
        d.struct_size as usize,
        std::mem::size_of::<bankid_start_options>()
    );
    assert_eq!(d.mode, bankid_mode::BANKID_MODE_IDENTIFY as u32);
    assert_eq!(
        d.user_visible_data_format,
        bankid_text_format::BANKID_TEXT_FORMAT_PLAIN as u32
    );
    assert!(d.user_visible_data.is_null() && d.user_non_visible_data.is_null());
    assert_eq!((d.require_pin_code, d.require_id_document), (0, 0));

    // A version-1 struct (only up to caller_id) is accepted with the defaults for the rest.
    let v1 = OptionsV1 {
        struct_size: std::mem::size_of::<OptionsV1>() as u32,
        call_initiator: 0,
        personal_number: anna.as_ptr(),
        caller_id: ptr::null(),
    };
    let v1_ptr = &v1 as *const OptionsV1 as *const bankid_start_options;
    assert_eq!(
        unsafe { bankid_start_with(v1_ptr, &mut order) },
        BANKID_OK,
        "{}",
        last_error()
    );
    assert_eq!(wait_final(order), COMPLETE);
    let mut mrtd = 7u32;
    assert_eq!(unsafe { bankid_step_up(order, &mut mrtd) }, BANKID_OK);
    assert_eq!(mrtd, 0);
    assert_eq!(
        signed_text(order),
        (BANKID_OK, String::new()),
        "an identification signs nothing"
    );
    let r = row(&env);
    assert_eq!(
        (r["mode"].as_str(), r["requirement"].is_null()),
        (Some("identify"), true)
    );
    assert_eq!(bankid_release(order), BANKID_OK);
    // Fields past struct_size are never read: garbage there changes nothing.
    let mut cut = defaults();
    cut.personal_number = anna.as_ptr();
    cut.struct_size = std::mem::size_of::<OptionsV1>() as u32;
    cut.mode = 99;
    cut.require_id_document = 5;
    assert_eq!(
        unsafe { bankid_start_with(&cut, &mut order) },
        BANKID_OK,
        "{}",
        last_error()
    );
    assert_eq!(wait_final(order), COMPLETE);
    assert_eq!(bankid_release(order), BANKID_OK);

    // Sign with a markdown text and hidden data; the approved text comes back.
    let text = CString::new("Godkänn **adressändring** till Storgatan 1").unwrap();
    let hidden = CString::new("ärende 4711").unwrap();
    let mut o = defaults();
    o.personal_number = anna.as_ptr();
    o.mode = bankid_mode::BANKID_MODE_SIGN as u32;
    o.user_visible_data = text.as_ptr();
    o.user_visible_data_format = bankid_text_format::BANKID_TEXT_FORMAT_SIMPLE_MARKDOWN_V1 as u32;
    o.user_non_visible_data = hidden.as_ptr();
    assert_eq!(
        unsafe { bankid_start_with(&o, &mut order) },
        BANKID_OK,
        "{}",
        last_error()
    );
    assert_eq!(
        signed_text(order).0,
        BANKID_NOT_FINISHED,
        "pending: no text yet"
    );
    assert_eq!(
        unsafe { bankid_step_up(order, &mut mrtd) },
        BANKID_NOT_FINISHED
    );
    assert_eq!(wait_final(order), COMPLETE);
    assert_eq!(
        signed_text(order),
        (BANKID_OK, text.to_str().unwrap().to_string())
    );
    let mut len = 0usize;
    assert_eq!(
        unsafe { bankid_signed_text(order, ptr::null_mut(), 0, &mut len) },
        BANKID_BUFFER_TOO_SMALL
    );
    assert_eq!(len, text.as_bytes().len());
    let mut short = [0 as c_char; 8];
    assert_eq!(
        unsafe { bankid_signed_text(order, short.as_mut_ptr(), short.len(), &mut len) },
        BANKID_BUFFER_TOO_SMALL
    );
    let r = row(&env);
    assert_eq!(r["endpoint"], "phone/sign");
    assert_eq!(r["userVisibleDataFormat"], "simpleMarkdownV1");
    assert_eq!(r["userNonVisibleData"], true);
    assert_eq!(bankid_release(order), BANKID_OK);

    // The ID-document check and the security code.
    let mut o = defaults();
    o.personal_number = anna.as_ptr();
    o.require_id_document = 1;
    o.require_pin_code = 1;
    assert_eq!(
        unsafe { bankid_start_with(&o, &mut order) },
        BANKID_OK,
        "{}",
        last_error()
    );
    assert_eq!(wait_final(order), COMPLETE);
    assert_eq!(unsafe { bankid_step_up(order, &mut mrtd) }, BANKID_OK);
    assert_eq!(mrtd, 1);
    assert_eq!(
        unsafe { bankid_step_up(order, ptr::null_mut()) },
        BANKID_NULL_POINTER
    );
    assert_eq!(
        row(&env)["requirement"],
        serde_json::json!({"pinCode": true, "mrtd": true})
    );
    assert_eq!(bankid_release(order), BANKID_OK);
    assert_eq!(
        unsafe { bankid_step_up(order, &mut mrtd) },
        BANKID_STALE_HANDLE
    );

    // Refused values: nothing reaches BankID, and nothing is written.
    let before = env.lab.orders().len();
    let bad = |set: &dyn Fn(&mut bankid_start_options), want: &str| {
        let mut o = defaults();
        o.personal_number = anna.as_ptr();
        set(&mut o);
        let mut out: bankid_order = 0;
        assert_eq!(
            unsafe { bankid_start_with(&o, &mut out) },
            BANKID_INVALID_ARGUMENT,
            "{want}"
        );
        assert_eq!(out, 0);
        assert!(last_error().contains(want), "{want}: {}", last_error());
    };
    bad(&|o| o.mode = 2, "opts->mode 2");
    bad(
        &|o| o.user_visible_data_format = 7,
        "opts->user_visible_data_format 7",
    );
    bad(&|o| o.require_pin_code = 2, "opts->require_pin_code 2");
    bad(
        &|o| o.require_id_document = u32::MAX,
        "opts->require_id_document",
    );
    bad(
        &|o| o.mode = bankid_mode::BANKID_MODE_SIGN as u32,
        "userVisibleData",
    );
    let long = CString::new("x".repeat(1200)).unwrap();
    bad(&|o| o.user_visible_data = long.as_ptr(), "1 to 1500");
    bad(&|o| o.struct_size = 23, "struct_size 23");
    let not_utf8 = [0xffu8 as c_char, 0];
    let mut o = defaults();
    o.personal_number = anna.as_ptr();
    o.user_visible_data = not_utf8.as_ptr();
    assert_eq!(
        unsafe { bankid_start_with(&o, &mut order) },
        BANKID_INVALID_UTF8
    );
    assert_eq!(
        env.lab.orders().len(),
        before,
        "no refused start reached BankID"
    );
    assert_eq!(bankid_shutdown(), BANKID_OK);
}
