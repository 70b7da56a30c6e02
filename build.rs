//! Gives libbankid.so its SONAME, `libbankid.so.<major>` (`libbankid.so.0` while the ABI is
//! pre-1.0, per the README's version policy), so a program linked with `-lbankid` records the
//! ABI version it was built against and keeps loading the right library when a later,
//! incompatible one is installed beside it. The header is checked in (cbindgen), never generated
//! here.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // `sqlx::migrate!` compiles the migrations in: a new or changed one must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets it");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbankid.so.{major}");
    }
}
