//! Property tests of flow loading (issue 11): `Flow::parse` and the checker never panic, on
//! arbitrary bytes or on arbitrary mutations of the real Cally Square exports in `ivr-flows/`.
//!
//! Short by default (CI); `PROPTEST_CASES=100000 cargo test --release -p bankid-ivr-cli --test
//! prop_flow` runs long.

use std::path::PathBuf;

use bankid_ivr_cli::flow::check;
use bankid_ivr_cli::flow::model::Flow;
use proptest::prelude::*;

/// 256 cases unless `PROPTEST_CASES` says otherwise (proptest reads it itself).
fn config(default_cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default_cases;
    }
    c.failure_persistence = None;
    c
}

/// Every export in `ivr-flows/`, as text (read once).
fn exports() -> &'static [(String, String)] {
    static ALL: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    ALL.get_or_init(read_exports)
}

fn read_exports() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ivr-flows");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "xml").then(|| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
        })
        .collect();
    out.sort();
    assert!(out.len() >= 4, "the exports are there: {out:?}");
    out
}

/// Loads as `bankid-ivr flow check` does: parse, then check what parsed.
fn load(xml: &str) {
    if let Ok(f) = Flow::parse(xml) {
        for p in check::check(&f) {
            let _ = p.to_string();
        }
        for b in &f.blocks {
            let _ = b.describe();
        }
    }
}

/// One edit of a document.
#[derive(Debug, Clone)]
enum Edit {
    /// Remove `len` bytes at `at` (fractions of the length, snapped to char boundaries).
    Delete { at: f64, len: usize },
    /// Insert text at `at`.
    Insert { at: f64, text: String },
    /// Replace `len` bytes at `at` with text.
    Replace { at: f64, len: usize, text: String },
    /// Copy `len` bytes from `from` to `at`.
    Duplicate { from: f64, len: usize, at: f64 },
    /// Change the value of the n-th attribute (`="…"`) to text.
    Attribute { n: usize, text: String },
    /// Give the n-th attribute the value of the m-th (ids into references, labels into ids…).
    CopyAttribute { from: usize, to: usize },
    /// Remove the n-th element (with its children).
    DropElement { n: usize },
    /// Repeat the n-th element right after itself (duplicate ids, blocks, arrows).
    DuplicateElement { n: usize },
}

/// Text that matters to XML and to the flow format.
fn xmlish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[<>/=\"'&;#x0-9a-zA-Z :{}_.-]{0,24}",
        any::<String>(),
        Just("&amp;".to_string()),
        Just("&#0;".to_string()),
        Just("&#x110000;".to_string()),
        Just("<![CDATA[".to_string()),
        Just("<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\">]>".to_string()),
        Just("{__BANKID_RESULT}".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("</mxCell>".to_string()),
        Just("<mxCell id=\"x\" edge=\"1\" source=\"x\" target=\"x\"/>".to_string()),
        Just("ÅÄÖ\u{202e}".to_string()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => (0.0..1.0f64, 1usize..200).prop_map(|(at, len)| Edit::Delete { at, len }),
        1 => (0.0..1.0f64, xmlish()).prop_map(|(at, text)| Edit::Insert { at, text }),
        1 => (0.0..1.0f64, 1usize..40, xmlish()).prop_map(|(at, len, text)| Edit::Replace {
            at,
            len,
            text
        }),
        1 => (0.0..1.0f64, 1usize..400, 0.0..1.0f64)
            .prop_map(|(from, len, at)| Edit::Duplicate { from, len, at }),
        // Edits that keep the XML well-formed, so they reach the flow model and the checker.
        4 => (0usize..400, xmlish()).prop_map(|(n, text)| Edit::Attribute { n, text }),
        4 => (0usize..400, 0usize..400).prop_map(|(from, to)| Edit::CopyAttribute { from, to }),
        3 => (0usize..200).prop_map(|n| Edit::DropElement { n }),
        3 => (0usize..200).prop_map(|n| Edit::DuplicateElement { n }),
    ]
}

/// Byte ranges of attribute values (inside the quotes).
fn attribute_values(s: &str) -> Vec<(usize, usize)> {
    s.match_indices("=\"")
        .map(|(i, _)| i + 2)
        .map(|a| (a, s[a..].find('"').map_or(s.len(), |i| a + i)))
        .collect()
}

/// Byte ranges of the elements below the document element, when the text is still XML.
fn elements(s: &str) -> Vec<std::ops::Range<usize>> {
    roxmltree::Document::parse(s)
        .map(|d| {
            d.root_element()
                .descendants()
                .skip(1)
                .filter(|n| n.is_element())
                .map(|n| n.range())
                .collect()
        })
        .unwrap_or_default()
}

fn boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn pos(s: &str, at: f64) -> usize {
    boundary(s, (s.len() as f64 * at) as usize)
}

fn apply(s: &mut String, e: &Edit) {
    match e {
        Edit::Delete { at, len } => {
            let a = pos(s, *at);
            let b = boundary(s, a + len);
            s.replace_range(a..b, "");
        }
        Edit::Insert { at, text } => {
            let a = pos(s, *at);
            s.insert_str(a, text);
        }
        Edit::Replace { at, len, text } => {
            let a = pos(s, *at);
            let b = boundary(s, a + len);
            s.replace_range(a..b, text);
        }
        Edit::Duplicate { from, len, at } => {
            let a = pos(s, *from);
            let b = boundary(s, a + len);
            let piece = s[a..b].to_string();
            let at = pos(s, *at);
            s.insert_str(at, &piece);
        }
        Edit::Attribute { n, text } => {
            let values = attribute_values(s);
            if values.is_empty() {
                return;
            }
            let (a, b) = values[n % values.len()];
            // Keep the quoting intact so the change reaches the flow model, not just the parser.
            let escaped = text
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('"', "&quot;");
            s.replace_range(a..b, &escaped);
        }
        Edit::CopyAttribute { from, to } => {
            let values = attribute_values(s);
            if values.is_empty() {
                return;
            }
            let (a, b) = values[from % values.len()];
            let value = s[a..b].to_string();
            let (a, b) = values[to % values.len()];
            s.replace_range(a..b, &value);
        }
        Edit::DropElement { n } => {
            let all = elements(s);
            if !all.is_empty() {
                s.replace_range(all[n % all.len()].clone(), "");
            }
        }
        Edit::DuplicateElement { n } => {
            let all = elements(s);
            if !all.is_empty() {
                let r = all[n % all.len()].clone();
                let piece = s[r.clone()].to_string();
                s.insert_str(r.end, &piece);
            }
        }
    }
}

#[test]
fn every_real_export_loads_and_checks_clean() {
    for (name, xml) in exports() {
        let f = Flow::parse(xml).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!f.blocks.is_empty(), "{name}");
        let problems = check::check(&f);
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_never_panic_the_loader(b in prop::collection::vec(any::<u8>(), 0..2048)) {
        load(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn arbitrary_text_with_xml_pieces_never_panics_the_loader(
        parts in prop::collection::vec(xmlish(), 0..40)
    ) {
        let doc = format!("<mxGraphModel><root>{}</root></mxGraphModel>", parts.concat());
        load(&doc);
        load(&parts.concat());
    }

    #[test]
    fn mutated_real_exports_never_panic_the_loader(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let all = exports();
        let (_, original) = &all[which.index(all.len())];
        let mut xml = original.clone();
        for e in &edits {
            apply(&mut xml, e);
        }
        load(&xml);
    }
}

/// The mutations are not all stopped by the XML parser: enough of them reach the flow model
/// and the checker for the property above to test those, not only the parser's error path.
#[test]
fn mutations_reach_the_checker_not_only_the_xml_parser() {
    use proptest::strategy::ValueTree as _;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        any::<prop::sample::Index>(),
        prop::collection::vec(edit(), 1..6),
    );
    let (mut parsed, mut with_problems, total) = (0, 0, 500);
    for _ in 0..total {
        let (which, edits) = strategy.new_tree(&mut runner).unwrap().current();
        let all = exports();
        let mut xml = all[which.index(all.len())].1.clone();
        for e in &edits {
            apply(&mut xml, e);
        }
        if let Ok(f) = Flow::parse(&xml) {
            parsed += 1;
            if !check::check(&f).is_empty() {
                with_problems += 1;
            }
        }
    }
    eprintln!("{parsed} of {total} mutated exports parsed, {with_problems} of them with problems");
    // 283 and 131 of 500 with proptest 1.12's deterministic runner.
    assert!(parsed >= total * 2 / 5, "{parsed} of {total} parsed");
    assert!(with_problems >= total / 10, "{with_problems} had problems");
}
