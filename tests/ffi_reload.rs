//! `bankid_reload` from the C ABI: a renewed configuration (here: another BankID with another
//! CA and client certificate) takes new orders at once, while an order already running finishes
//! on the old one under the same handle. A test binary of its own: the library has one global
//! engine per process.

mod common;

use std::ffi::{c_char, CStr, CString};
use std::time::{Duration, Instant};

use bankid::ffi::bankid_state::*;
use bankid::ffi::bankid_status::*;
use bankid::ffi::*;
use bankid_sim::{Scenario, Step};

fn last_error() -> String {
    let mut buf = [0 as c_char; 512];
    let mut len = 0usize;
    unsafe { bankid_last_error(buf.as_mut_ptr(), buf.len(), &mut len) };
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn state(order: bankid_order) -> u32 {
    let mut st = 0u32;
    assert_eq!(
        unsafe { bankid_poll(order, &mut st) },
        BANKID_OK,
        "{}",
        last_error()
    );
    st
}

fn wait_final(order: bankid_order) -> u32 {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let st = state(order);
        if st != BANKID_STATE_PENDING as u32 || Instant::now() > until {
            return st;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn reload_sends_new_orders_to_the_new_configuration_and_lets_running_ones_finish() {
    // The old BankID's order takes 4 s (its orders live long enough), so it is still running
    // when the reload comes, even on a loaded machine.
    let old = common::sim_with(bankid_sim::SimConfig {
        speed: 0.01,
        order_lifetime: Duration::from_secs(6000),
        ..Default::default()
    });
    let new = common::sim();
    old.lab.set_scenario(
        "198503121116",
        Scenario {
            steps: vec![Step {
                hint_code: "userCallConfirm".into(),
                ms: 400_000,
            }],
            outcome: "complete".into(),
        },
    );
    let old_toml = CString::new(old.write_toml("").to_str().unwrap()).unwrap();
    let new_toml = CString::new(new.write_toml("").to_str().unwrap()).unwrap();
    let pnr = CString::new("198503121116").unwrap();
    let other = CString::new("199908072391").unwrap();

    assert_eq!(
        unsafe { bankid_reload(new_toml.as_ptr()) },
        BANKID_NOT_INITIALIZED
    );
    assert_eq!(unsafe { bankid_init(old_toml.as_ptr()) }, BANKID_OK);
    let mut running: bankid_order = 0;
    assert_eq!(
        unsafe { bankid_start(pnr.as_ptr(), 0, &mut running) },
        BANKID_OK
    );

    // A broken configuration changes nothing.
    let missing = CString::new("/nonexistent/renewed.toml").unwrap();
    assert_eq!(
        unsafe { bankid_reload(missing.as_ptr()) },
        BANKID_CONFIG_ERROR
    );
    assert!(
        last_error().contains("/nonexistent/renewed.toml"),
        "{}",
        last_error()
    );

    assert_eq!(unsafe { bankid_reload(new_toml.as_ptr()) }, BANKID_OK);
    let mut fresh: bankid_order = 0;
    assert_eq!(
        unsafe { bankid_start(other.as_ptr(), 0, &mut fresh) },
        BANKID_OK
    );
    assert_ne!(fresh, running);

    // The running order is still pending at the old BankID, and completes there.
    assert_eq!(state(running), BANKID_STATE_PENDING as u32);
    assert_eq!(wait_final(running), BANKID_STATE_COMPLETE as u32);
    assert_eq!(wait_final(fresh), BANKID_STATE_COMPLETE as u32);
    let at = |sim: &common::Env| {
        sim.lab
            .orders()
            .iter()
            .filter_map(|o| o.personal_number_masked.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(at(&old), vec!["850312-XXXX".to_string()], "old BankID");
    assert_eq!(at(&new), vec!["990807-XXXX".to_string()], "new BankID");

    // Releasing the last order of the old configuration retires its engine; handles stay
    // unique and stale ones stay stale.
    assert_eq!(bankid_release(running), BANKID_OK);
    assert_eq!(
        unsafe { bankid_poll(running, &mut 0u32) },
        BANKID_STALE_HANDLE
    );
    assert_eq!(bankid_release(fresh), BANKID_OK);
    assert_eq!(bankid_shutdown(), BANKID_OK);
}
