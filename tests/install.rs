//! The library installs like one (scripts/install.sh): into a temporary prefix, with the SONAME
//! libbankid.so.0, the versioned file and its two links, the checked-in header byte for byte and
//! a bankid.pc; then examples/identify.c built with -DBANKID_LINKED, linked directly with
//! `cc $(pkg-config --cflags --libs bankid)` (no dlopen), identifies against bankid-sim over mTLS.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/<profile>/`, where cargo put the library and the tools this test installs.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A fresh, empty directory under the target directory.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = profile_dir()
        .join("install-test")
        .join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs scripts/install.sh on what cargo already built for this test's profile.
fn install(args: &[&str]) -> Output {
    let profile_dir = profile_dir();
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for f in ["libbankid.so", "bankid-ivr", "bankid-agent", "bankid-sim"] {
        assert!(
            profile_dir.join(f).is_file(),
            "{} is missing: `cargo test --workspace` builds it; with --test alone run `cargo build --workspace [--release]` first",
            profile_dir.join(f).display()
        );
    }
    Command::new("bash")
        .arg(root().join("scripts/install.sh"))
        .args(["--profile", &profile, "--no-build"])
        .args(args)
        .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
        .output()
        .expect("bash runs")
}

fn readelf_dynamic(file: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(file)
        .output()
        .expect("readelf runs (binutils: scripts/setup.sh installs it)");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pkg_config(prefix: &Path, args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("bankid")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .env_remove("PKG_CONFIG_LIBDIR")
        .output()
        .expect("pkg-config runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "pkg-config {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn installed_library_links_directly_from_c_and_identifies() {
    let prefix = fresh_dir("prefix");
    let out = install(&["--prefix", prefix.to_str().unwrap()]);
    assert!(out.status.success(), "install.sh: {}", text(&out));

    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let lib = prefix.join("lib");
    let real = lib.join(format!("libbankid.so.{version}"));
    assert!(real.is_file() && !real.is_symlink(), "{}", real.display());
    let dynamic = readelf_dynamic(&real);
    assert!(
        dynamic.contains(&format!("Library soname: [libbankid.so.{major}]")),
        "no SONAME libbankid.so.{major}:\n{dynamic}"
    );
    assert_eq!(
        fs::read_link(lib.join(format!("libbankid.so.{major}"))).unwrap(),
        PathBuf::from(format!("libbankid.so.{version}"))
    );
    assert_eq!(
        fs::read_link(lib.join("libbankid.so")).unwrap(),
        PathBuf::from(format!("libbankid.so.{major}"))
    );

    assert!(
        fs::read(prefix.join("include/bankid.h")).unwrap()
            == fs::read(root().join("include/bankid.h")).unwrap(),
        "the installed header differs from include/bankid.h"
    );
    for b in ["bankid-ivr", "bankid-agent", "bankid-sim"] {
        let out = Command::new(prefix.join("bin").join(b))
            .arg("--version")
            .output()
            .unwrap();
        assert!(
            out.status.success() && text(&out).contains(version),
            "{b}: {}",
            text(&out)
        );
    }
    let flows: Vec<_> = fs::read_dir(prefix.join("share/bankid-ivr/ivr-flows"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(flows.iter().any(|f| f == "bankid-entry.xml"), "{flows:?}");

    assert_eq!(pkg_config(&prefix, &["--modversion"]), version);
    let flags = pkg_config(&prefix, &["--cflags", "--libs"]);
    assert!(
        flags.contains(&format!("-I{}", prefix.join("include").display()))
            && flags.contains(&format!("-L{}", lib.display()))
            && flags.contains("-lbankid"),
        "{flags}"
    );

    // Linked at build time: no -ldl, no dlopen; the program records libbankid.so.0.
    let exe = prefix.join("identify-linked");
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-DBANKID_LINKED"])
        .arg(root().join("examples/identify.c"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "identify.c -DBANKID_LINKED: {}",
        text(&out)
    );
    let dynamic = readelf_dynamic(&exe);
    assert!(
        dynamic.contains(&format!("Shared library: [libbankid.so.{major}]")),
        "not linked against libbankid.so.{major}:\n{dynamic}"
    );

    // The dynamic linker resolves it to the installed file, not a build directory's.
    let ldd = Command::new("ldd")
        .arg(&exe)
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .expect("ldd runs");
    let ldd = text(&ldd);
    assert!(
        ldd.contains(&format!(
            "libbankid.so.{major} => {}/libbankid.so.{major}",
            lib.display()
        )),
        "{ldd}"
    );

    let env = common::sim();
    let config = env.write_toml("");
    let run = |number: &str, expected: &str| {
        let out = Command::new(&exe)
            .args([number, expected])
            .arg(&config)
            .env("LD_LIBRARY_PATH", &lib)
            .output()
            .unwrap();
        (out.status.success(), text(&out))
    };
    let (ok, out) = run("198503121116", "complete");
    assert!(ok, "{out}");
    assert!(out.contains(&format!("libbankid {version}")), "{out}");
    assert!(
        out.contains("result: Identification successful for social security number 850312-1116"),
        "{out}"
    );
    let (ok, out) = run("197709083336", "failed");
    assert!(ok && out.contains("hint=userDeclinedCall"), "{out}");
    // The checker can fail: a declined call is not a success.
    let (ok, out) = run("197709083336", "complete");
    assert!(!ok && out.contains("FAIL"), "{out}");

    fs::remove_dir_all(&prefix).unwrap();
}

#[test]
fn destdir_stages_the_tree_for_the_prefix_it_names() {
    let stage = fresh_dir("stage");
    let out = install(&["--prefix", "/usr", "--destdir", stage.to_str().unwrap()]);
    assert!(out.status.success(), "install.sh: {}", text(&out));
    let pc = fs::read_to_string(stage.join("usr/lib/pkgconfig/bankid.pc")).unwrap();
    assert!(pc.starts_with("prefix=/usr\n"), "{pc}");
    assert!(
        pc.contains(&format!("\nVersion: {}\n", env!("CARGO_PKG_VERSION"))),
        "{pc}"
    );
    assert!(stage.join("usr/include/bankid.h").is_file());

    let out = install(&["--prefix", "relative/dir"]);
    assert!(
        !out.status.success() && text(&out).contains("absolute path"),
        "{}",
        text(&out)
    );
    fs::remove_dir_all(&stage).unwrap();
}
