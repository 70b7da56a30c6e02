//! The C side, for real: examples/identify.c compiled with -Wall -Wextra -Werror, loading the
//! built libbankid.so with dlopen, identifying test persons against bankid-sim over mTLS; once
//! plain, once under AddressSanitizer/UBSan and once under valgrind; and tests/c/reload.c, a host that
//! loads, uses, shuts down and unloads the library twenty times, the same three ways.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/`, where cargo puts libbankid.so.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn libbankid() -> PathBuf {
    let lib = target_dir().join("libbankid.so");
    assert!(
        lib.is_file(),
        "{} is missing: cargo builds it with the whole test suite; with --test alone run `cargo build [--release] --lib` first",
        lib.display()
    );
    lib
}

/// `examples/identify.c` built as `name` with `extra` flags.
fn compile(name: &str, extra: &[&str]) -> PathBuf {
    compile_c("examples/identify.c", name, extra)
}

/// A C program of the repository (`source`), built with `-Wall -Wextra -Werror`.
fn compile_c(source: &str, name: &str, extra: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = target_dir().join(name);
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .args(extra)
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join(source))
        .arg("-ldl")
        .arg("-o")
        .arg(&out)
        .status()
        .expect("cc runs");
    assert!(status.success(), "{source} does not compile cleanly");
    out
}

const SANITIZERS: [&str; 2] = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"];

/// Runs `exe` with sanitizer options that stop at the first error.
fn sanitized(exe: &Path) -> Command {
    let mut c = Command::new(exe);
    c.env("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
    c
}

/// Runs `exe` under valgrind: any error (but the one proven false positive in
/// tests/valgrind.supp), and any definite or possible leak, fails it.
fn valgrind(exe: &Path) -> Command {
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is not installed: run scripts/setup.sh (CI installs it)");
    }
    let mut c = Command::new("valgrind");
    c.args([
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,possible",
        "--quiet",
    ])
    .arg(format!(
        "--suppressions={}/tests/valgrind.supp",
        env!("CARGO_MANIFEST_DIR")
    ))
    .arg(exe);
    c
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn identify_c_reports_success_failure_and_refusal() {
    let env = common::sim();
    // Steps of 0.3 s, so the prompt for each is seen even on a loaded machine.
    env.lab.set_scenario(
        "198503121116",
        bankid_sim::Scenario {
            steps: ["outstandingTransaction", "userCallConfirm", "userSign"]
                .map(|h| bankid_sim::Step {
                    hint_code: h.into(),
                    ms: 30_000,
                })
                .to_vec(),
            outcome: "complete".into(),
        },
    );
    let config = env.write_toml("");
    let exe = compile("identify", &[]);
    let lib = libbankid();

    let (ok, out) = run(Command::new(&exe)
        .arg(&lib)
        .arg("198503121116")
        .arg("complete")
        .arg(&config));
    assert!(ok, "{out}");
    assert!(
        out.contains("result: Identification successful for social security number 850312-1116"),
        "{out}"
    );
    assert!(
        out.contains("Bekräfta i BankID-appen att du pratar med oss."),
        "prompt followed the state: {out}"
    );

    let (ok, out) = run(Command::new(&exe)
        .arg(&lib)
        .arg("197709083336")
        .arg("failed")
        .arg(&config));
    assert!(ok, "{out}");
    assert!(out.contains("hint=userDeclinedCall"), "{out}");
    assert!(out.contains("result: Identification failed"), "{out}");

    let (ok, out) = run(Command::new(&exe)
        .arg(&lib)
        .arg("198503121117")
        .arg("invalid")
        .arg(&config));
    assert!(ok, "{out}");
    assert!(out.contains("check digit"), "{out}");

    // The checker fails loudly on a wrong answer: expecting success for a declined call.
    let (ok, out) = run(Command::new(&exe)
        .arg(&lib)
        .arg("197709083336")
        .arg("complete")
        .arg(&config));
    assert!(!ok && out.contains("FAIL"), "{out}");

    // Configuration from BANKID_* environment variables instead of a file.
    let (ok, out) = run(Command::new(&exe)
        .arg(&lib)
        .arg("196801642395")
        .arg("complete")
        .env("BANKID_URL", env.lab.base_url())
        .env("BANKID_CA_FILE", env.dir().join("ca.pem"))
        .env("BANKID_P12_FILE", env.dir().join("client.p12"))
        .env("BANKID_P12_PASSWORD", "qwerty123")
        .env("BANKID_POLL_INTERVAL_MS", "20")
        // Records in the lab's directory, never in a real state directory.
        .env("BANKID_AUDIT_DATABASE", env.lab.audit_db_file())
        .env("BANKID_AUDIT_SPOOL_DIR", env.lab.audit_spool_dir())
        .env("BANKID_AUDIT_KEY_FILE", env.lab.audit_key_file()));
    assert!(ok, "{out}");
    assert!(out.contains("680164-2395"), "{out}");

    // A broken configuration is named.
    let (ok, out) = run(Command::new(&exe)
        .arg(&lib)
        .arg("196801642395")
        .arg("complete")
        .env("BANKID_URL", "http://127.0.0.1:1/rp/v6.0/")
        .env("BANKID_CA_FILE", env.dir().join("ca.pem")));
    assert!(
        !ok && out.contains("BANKID_URL: http:// is refused"),
        "{out}"
    );
}

#[test]
fn identify_c_is_clean_under_address_and_undefined_behaviour_sanitizers() {
    let env = common::sim();
    let config = env.write_toml("");
    let exe = compile("identify-asan", &SANITIZERS);
    let (ok, out) = run(sanitized(&exe)
        .arg(libbankid())
        .arg("198503121116")
        .arg("complete")
        .arg(&config));
    assert!(ok, "{out}");
    assert!(
        !out.contains("ERROR: AddressSanitizer") && !out.contains("runtime error"),
        "{out}"
    );
}

#[test]
fn identify_c_is_clean_under_valgrind() {
    let env = common::sim();
    let config = env.write_toml("");
    let exe = compile("identify-vg", &[]);
    let (ok, out) = run(valgrind(&exe)
        .arg(libbankid())
        .arg("198503121116")
        .arg("complete")
        .arg(&config));
    assert!(ok, "{out}");
    assert!(out.contains("\nok\n"), "{out}");
}

/// tests/c/reload.c: init → start → shutdown → init → start gives a new handle and the old one
/// is stale; then dlopen → init → identify → shutdown → dlclose twenty times, every library
/// thread gone after each shutdown.
fn reload(exe: Command) {
    let env = common::sim();
    let config = env.write_toml("");
    let mut exe = exe;
    let (ok, out) = run(exe.arg(libbankid()).arg(&config).arg("20"));
    assert!(ok, "{out}");
    assert!(
        out.contains("ok: reinit gives new handles; 20 load/identify/shutdown/unload rounds"),
        "{out}"
    );
    assert!(
        !out.contains("ERROR: AddressSanitizer") && !out.contains("runtime error"),
        "{out}"
    );
}

#[test]
fn loading_using_and_unloading_twenty_times_is_clean() {
    reload(Command::new(compile_c("tests/c/reload.c", "reload", &[])));
}

#[test]
fn loading_using_and_unloading_twenty_times_is_clean_under_sanitizers() {
    let exe = compile_c("tests/c/reload.c", "reload-asan", &SANITIZERS);
    reload(sanitized(&exe));
}

#[test]
fn loading_using_and_unloading_twenty_times_is_clean_under_valgrind() {
    let exe = compile_c("tests/c/reload.c", "reload-vg", &[]);
    reload(valgrind(&exe));
}

/// tests/c/options.c: the versioned options struct from C (defaults, an old-size struct, sign,
/// the ID-document check, a bad enum value), plain and under ASan/UBSan.
fn options(mut cmd: Command) {
    let env = common::sim();
    let config = env.write_toml("");
    let (ok, out) = run(cmd.arg(libbankid()).arg(&config));
    assert!(ok && out.contains("options: all checks passed"), "{out}");
}

#[test]
fn the_options_struct_works_from_c() {
    options(Command::new(compile_c("tests/c/options.c", "options", &[])));
}

#[test]
fn the_options_struct_works_from_c_under_sanitizers() {
    let exe = compile_c("tests/c/options.c", "options-asan", &SANITIZERS);
    options(sanitized(&exe));
}
