//! `bankid-ivr flow check`: validates a Cally Square export the way the designer's publish step
//! would, plus our own rules for the BankID block. Each problem names the block id and label.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::format::{self, exit, is_entry, is_terminal, param, Kind};
use super::model::{referenced_vars, Block, Edge, Flow};

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where (`block 4 "Ange personnummer" (Menu)`, `arrow 12`, or `project`).
    pub place: String,
    /// What.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Channel variables Asterisk sets before the flow runs.
const PREDEFINED: &[&str] = &[
    "CALLERID(NUM)",
    "CALLERID(NAME)",
    "EXTEN",
    "UNIQUEID",
    "CHANNEL",
    "CONTEXT",
];

fn norm(var: &str) -> String {
    var.trim_start_matches('_').to_ascii_uppercase()
}

/// Variables a block sets.
fn defs(b: &Block) -> Vec<String> {
    let names: &[&str] = match b.kind {
        Some(Kind::Menu | Kind::Set | Kind::System) => &[param::VARIABLE],
        Some(Kind::Math) => &[param::RESULT],
        Some(Kind::BankIdRequest) => &[param::RESULT_VARIABLE],
        _ => &[],
    };
    names.iter().filter_map(|n| b.param(n)).map(norm).collect()
}

/// Variables a block reads.
fn uses(b: &Block) -> Vec<String> {
    let mut out: Vec<String> = b
        .params
        .values()
        .flat_map(|v| referenced_vars(v))
        .map(|v| norm(&v))
        .collect();
    if b.kind == Some(Kind::BankIdRequest) {
        out.extend(b.param(param::PNR_VARIABLE).map(norm));
    }
    out
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// A rule about one block of the flow.
type BlockRule = fn(&Flow, &Block, &mut Vec<Problem>);
/// A rule about one arrow of the flow.
type ArrowRule = fn(&Flow, &Edge, &mut Vec<Problem>);

/// Rules about each block's identity, in the order they report.
const IDENTITY_RULES: &[BlockRule] = &[block_id, block_type];
/// Rules about each arrow, in the order they report.
const ARROW_RULES: &[ArrowRule] = &[arrow_source, arrow_target];
/// Rules about each block of a known type: its wiring, then its parameters.
const BLOCK_RULES: &[BlockRule] = &[
    incoming_arrow,
    outgoing_arrow,
    required_parameters,
    goto_target,
    menu_parameters,
    menu_exits,
    bankid_parameters,
    bankid_exits,
];

/// All problems of a flow; empty when clean. Each rule is a function below; the order they
/// run in is the order problems are printed.
pub fn check(flow: &Flow) -> Vec<Problem> {
    let mut p = Vec::new();
    start_block(flow, &mut p);
    for b in &flow.blocks {
        IDENTITY_RULES.iter().for_each(|rule| rule(flow, b, &mut p));
    }
    for e in &flow.edges {
        ARROW_RULES.iter().for_each(|rule| rule(flow, e, &mut p));
    }
    for b in flow.blocks.iter().filter(|b| b.kind.is_some()) {
        BLOCK_RULES.iter().for_each(|rule| rule(flow, b, &mut p));
    }
    p.extend(check_variables(flow));
    p
}

fn add(p: &mut Vec<Problem>, place: String, message: impl Into<String>) {
    p.push(Problem {
        place,
        message: message.into(),
    });
}

/// Exactly one Start block.
fn start_block(flow: &Flow, p: &mut Vec<Problem>) {
    let starts: Vec<&Block> = flow
        .blocks
        .iter()
        .filter(|b| b.kind == Some(Kind::Start))
        .collect();
    match starts.len() {
        0 => add(p, "project".into(), "has no Start block"),
        1 => {}
        _ => starts[1..].iter().for_each(|b| {
            add(
                p,
                b.describe(),
                "is a second Start block (a project has exactly one)",
            )
        }),
    }
}

/// A block has an id, and no earlier block has the same one.
fn block_id(flow: &Flow, b: &Block, p: &mut Vec<Problem>) {
    if b.id.is_empty() {
        add(p, b.describe(), "has no id");
    } else if flow
        .blocks
        .iter()
        .take_while(|o| !std::ptr::eq(*o, b))
        .any(|o| o.id == b.id)
    {
        add(p, b.describe(), format!("reuses id {}", b.id));
    }
}

/// A block is of a type we know.
fn block_type(_: &Flow, b: &Block, p: &mut Vec<Problem>) {
    if b.kind.is_none() {
        add(
            p,
            b.describe(),
            format!("unknown block type <{}>", b.element),
        );
    }
}

fn arrow_place(e: &Edge) -> String {
    format!("arrow {}", if e.id.is_empty() { "(no id)" } else { &e.id })
}

/// An arrow starts at a block that exists.
fn arrow_source(flow: &Flow, e: &Edge, p: &mut Vec<Problem>) {
    match e.source.as_deref() {
        None => add(p, arrow_place(e), "has no source"),
        Some(s) if flow.block(s).is_none() => add(
            p,
            arrow_place(e),
            format!("starts at block {s}, which does not exist"),
        ),
        _ => {}
    }
}

/// An arrow ends at a block that exists (reported at its source block when there is one).
fn arrow_target(flow: &Flow, e: &Edge, p: &mut Vec<Problem>) {
    match (
        e.target.as_deref(),
        e.source.as_deref().and_then(|s| flow.block(s)),
    ) {
        (None, Some(src)) => add(
            p,
            src.describe(),
            format!("arrow {} points nowhere (no target)", e.id),
        ),
        (None, None) => add(p, arrow_place(e), "has no target"),
        (Some(t), src) if flow.block(t).is_none() => add(
            p,
            src.map(Block::describe).unwrap_or_else(|| arrow_place(e)),
            format!("arrow {} points at block {t}, which does not exist", e.id),
        ),
        _ => {}
    }
}

/// A block other than Start and Finally has an arrow into it.
fn incoming_arrow(flow: &Flow, b: &Block, p: &mut Vec<Problem>) {
    let Some(kind) = b.kind else { return };
    let incoming = flow
        .edges
        .iter()
        .any(|e| e.target.as_deref() == Some(b.id.as_str()));
    if !is_entry(kind) && !incoming {
        add(
            p,
            b.describe(),
            "has no incoming arrow, so it can never run",
        );
    }
}

/// A block that does not end the call has an arrow out of it.
fn outgoing_arrow(flow: &Flow, b: &Block, p: &mut Vec<Problem>) {
    let Some(kind) = b.kind else { return };
    if !is_terminal(kind) && flow.exits(&b.id).next().is_none() {
        add(p, b.describe(), "has no outgoing arrow");
    }
}

/// The exit labels of a block, lower-cased.
fn exit_labels(flow: &Flow, b: &Block) -> Vec<String> {
    flow.exits(&b.id)
        .map(|e| e.label.to_ascii_lowercase())
        .collect()
}

/// The parameters a block of its type cannot run without.
fn required_parameters(_: &Flow, b: &Block, p: &mut Vec<Problem>) {
    let required: &[&str] = match b.kind {
        Some(Kind::Playback | Kind::Menu) => &[param::AUDIO],
        Some(Kind::Set) => &[param::VARIABLE],
        Some(Kind::Math) => &[param::OPERATION, param::RESULT],
        Some(Kind::System) => &[param::COMMAND, param::VARIABLE],
        Some(Kind::Agi) => &[param::COMMAND],
        Some(Kind::SubProject) => &[param::PROJECT],
        Some(Kind::Queue) => &[param::QUEUE],
        Some(Kind::CustomApp) => &[param::APPLICATION],
        Some(Kind::BankIdRequest) => &[param::PNR_VARIABLE, param::RESULT_VARIABLE],
        _ => &[],
    };
    for name in required.iter().filter(|n| b.param(n).is_none()) {
        add(p, b.describe(), format!("needs the parameter {name}"));
    }
}

/// A Goto names a block that exists.
fn goto_target(flow: &Flow, b: &Block, p: &mut Vec<Problem>) {
    if b.kind != Some(Kind::Goto) {
        return;
    }
    match b.param(param::TARGET) {
        None => add(
            p,
            b.describe(),
            format!("needs the parameter {}", param::TARGET),
        ),
        Some(t) if flow.block(t).is_none() => add(
            p,
            b.describe(),
            format!("jumps to block {t}, which does not exist"),
        ),
        _ => {}
    }
}

/// A Menu's timeout, digit count and retries are whole numbers.
fn menu_parameters(_: &Flow, b: &Block, p: &mut Vec<Problem>) {
    if b.kind != Some(Kind::Menu) {
        return;
    }
    for n in [param::TIMEOUT, param::MAX_DIGITS, param::RETRIES] {
        if let Some(v) = b.param(n).filter(|v| !is_number(v)) {
            add(
                p,
                b.describe(),
                format!("{n} must be a whole number, not {v:?}"),
            );
        }
    }
}

/// A Menu has `t` and `i` exits, and a `*` exit only with a variable for the digits.
fn menu_exits(flow: &Flow, b: &Block, p: &mut Vec<Problem>) {
    if b.kind != Some(Kind::Menu) {
        return;
    }
    let outgoing = exit_labels(flow, b);
    if !outgoing.iter().any(|l| l == exit::TIMEOUT) {
        add(
            p,
            b.describe(),
            "has no 't' (timeout) exit: a caller who enters nothing would be stuck",
        );
    }
    if !outgoing.iter().any(|l| l == exit::INVALID) {
        add(p, b.describe(), "has no 'i' (invalid entry) exit");
    }
    if outgoing.iter().any(|l| l == exit::ANY) && b.param(param::VARIABLE).is_none() {
        add(
            p,
            b.describe(),
            "has a '*' exit but no variable to receive the digits",
        );
    }
}

/// A bankid request block's call initiator, language, numbers and result variable are valid.
fn bankid_parameters(_: &Flow, b: &Block, p: &mut Vec<Problem>) {
    if b.kind != Some(Kind::BankIdRequest) {
        return;
    }
    if let Some(v) = b.param(param::CALL_INITIATOR) {
        if !v.eq_ignore_ascii_case("user") && !v.eq_ignore_ascii_case("rp") {
            add(
                p,
                b.describe(),
                format!("callInitiator must be user or RP, not {v:?}"),
            );
        }
    }
    if let Some(v) = b.param(param::LANGUAGE) {
        if bankid::messages::Language::parse(v).is_none() {
            add(
                p,
                b.describe(),
                format!("language must be sv or en, not {v:?}"),
            );
        }
    }
    for n in [param::BANKID_TIMEOUT, param::MAX_INVALID] {
        if let Some(v) = b.param(n).filter(|v| !is_number(v)) {
            add(
                p,
                b.describe(),
                format!("{n} must be a whole number of seconds, not {v:?}"),
            );
        }
    }
    let mode = b.param(param::MODE);
    if let Some(v) = mode.filter(|v| bankid::Mode::parse(v).is_none()) {
        add(
            p,
            b.describe(),
            format!("mode must be identify or sign, not {v:?}"),
        );
    }
    let text = b
        .param(param::USER_VISIBLE_DATA)
        .filter(|t| !t.trim().is_empty());
    if mode.and_then(bankid::Mode::parse) == Some(bankid::Mode::Sign) && text.is_none() {
        add(
            p,
            b.describe(),
            "mode sign needs userVisibleData: the text the caller approves",
        );
    }
    for n in [param::REQUIRE_PIN_CODE, param::REQUIRE_ID_DOCUMENT] {
        if let Some(v) = b
            .param(n)
            .filter(|v| crate::flow::format::yes_no(v).is_none())
        {
            add(p, b.describe(), format!("{n} must be yes or no, not {v:?}"));
        }
    }
    if let Some(v) = b.param(param::RESULT_VARIABLE) {
        if !v
            .trim_start_matches('_')
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            add(
                p,
                b.describe(),
                format!("resultVariable {v:?} is not a variable name"),
            );
        }
    }
}

/// A bankid request block has its success, failed and error exits and no others but invalid.
fn bankid_exits(flow: &Flow, b: &Block, p: &mut Vec<Problem>) {
    if b.kind != Some(Kind::BankIdRequest) {
        return;
    }
    let outgoing = exit_labels(flow, b);
    for x in [exit::SUCCESS, exit::FAILED, exit::ERROR] {
        if !outgoing.iter().any(|l| l == x) {
            add(p, b.describe(), format!("has no '{x}' exit"));
        }
    }
    for l in &outgoing {
        if ![exit::SUCCESS, exit::FAILED, exit::ERROR, exit::BAD_NUMBER].contains(&l.as_str()) {
            add(
                p,
                b.describe(),
                format!(
                    "has an exit labelled {l:?}; its exits are success, failed, error and invalid"
                ),
            );
        }
    }
}

/// Must-be-set analysis: a variable read by a block must be set on every path from Start.
fn check_variables(flow: &Flow) -> Vec<Problem> {
    let Some(start) = flow.blocks.iter().find(|b| b.kind == Some(Kind::Start)) else {
        return vec![];
    };
    let all: BTreeSet<String> = flow
        .blocks
        .iter()
        .flat_map(defs)
        .chain(PREDEFINED.iter().map(|s| norm(s)))
        .collect();
    let predefined: BTreeSet<String> = PREDEFINED.iter().map(|s| norm(s)).collect();
    let ids: Vec<&str> = flow.blocks.iter().map(|b| b.id.as_str()).collect();
    let mut entry: HashMap<&str, BTreeSet<String>> =
        ids.iter().map(|id| (*id, all.clone())).collect();
    entry.insert(start.id.as_str(), predefined.clone());
    let preds = |id: &str| -> Vec<&str> {
        flow.edges
            .iter()
            .filter(|e| e.target.as_deref() == Some(id))
            .filter_map(|e| e.source.as_deref())
            .filter(|s| flow.block(s).is_some())
            .collect()
    };
    let reachable = reachable_from(flow, &start.id);
    let mut changed = true;
    while changed {
        changed = false;
        for b in &flow.blocks {
            if b.id == start.id || !reachable.contains(b.id.as_str()) {
                continue;
            }
            let mut acc: Option<BTreeSet<String>> = None;
            for p in preds(&b.id).into_iter().filter(|p| reachable.contains(p)) {
                let mut out = entry[p].clone();
                out.extend(flow.block(p).map(defs).unwrap_or_default());
                acc = Some(match acc {
                    None => out,
                    Some(a) => a.intersection(&out).cloned().collect(),
                });
            }
            let new = acc.unwrap_or_else(|| predefined.clone());
            if entry[b.id.as_str()] != new {
                entry.insert(b.id.as_str(), new);
                changed = true;
            }
        }
    }
    let mut problems = Vec::new();
    for b in flow
        .blocks
        .iter()
        .filter(|b| reachable.contains(b.id.as_str()))
    {
        let mut own = entry[b.id.as_str()].clone();
        if b.kind == Some(Kind::Set) || b.kind == Some(Kind::Math) {
            // A block may not read what it sets itself, except a Menu (which sets first).
        } else if b.kind == Some(Kind::Menu) {
            own.extend(defs(b));
        }
        for v in uses(b) {
            if !own.contains(&v) {
                let never = !all.contains(&v);
                problems.push(Problem {
                    place: b.describe(),
                    message: if never {
                        format!("uses the variable {v}, which no block sets")
                    } else {
                        format!("uses the variable {v} before it is set on every path from Start")
                    },
                });
            }
        }
    }
    problems
}

fn reachable_from<'a>(flow: &'a Flow, start: &'a str) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for e in flow.exits(id) {
            if let Some(t) = e.target.as_deref() {
                if flow.block(t).is_some() {
                    stack.push(t);
                }
            }
        }
        if let Some(t) = flow
            .block(id)
            .filter(|b| b.kind == Some(format::Kind::Goto))
            .and_then(|b| b.param(param::TARGET))
        {
            if flow.block(t).is_some() {
                stack.push(t);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flow from the cells inside `<root>`.
    fn flow(cells: &str) -> Flow {
        Flow::parse(&format!(
            "<mxGraphModel><root>{cells}</root></mxGraphModel>"
        ))
        .unwrap()
    }

    fn arrow(id: &str, source: &str, target: &str, label: &str) -> String {
        format!(
            r#"<mxCell id="{id}" edge="1" source="{source}" target="{target}" value="{label}"/>"#
        )
    }

    fn shown(p: Vec<Problem>) -> Vec<String> {
        p.iter().map(ToString::to_string).collect()
    }

    fn by_block(rule: BlockRule, f: &Flow) -> Vec<String> {
        let mut p = Vec::new();
        f.blocks.iter().for_each(|b| rule(f, b, &mut p));
        shown(p)
    }

    fn by_arrow(rule: ArrowRule, f: &Flow) -> Vec<String> {
        let mut p = Vec::new();
        f.edges.iter().for_each(|e| rule(f, e, &mut p));
        shown(p)
    }

    fn whole(rule: fn(&Flow, &mut Vec<Problem>), f: &Flow) -> Vec<String> {
        let mut p = Vec::new();
        rule(f, &mut p);
        shown(p)
    }

    const NONE: &[&str] = &[];

    #[test]
    fn start_block_rule() {
        assert_eq!(
            whole(start_block, &flow(r#"<Hangup id="1" label="h"/>"#)),
            ["project: has no Start block"]
        );
        assert_eq!(
            whole(
                start_block,
                &flow(r#"<Start id="1" label="a"/><Start id="2" label="b"/>"#)
            ),
            [r#"block 2 "b" (Start): is a second Start block (a project has exactly one)"#]
        );
        assert_eq!(
            whole(start_block, &flow(r#"<Start id="1" label="a"/>"#)),
            NONE
        );
    }

    #[test]
    fn block_id_rule() {
        assert_eq!(
            by_block(block_id, &flow(r#"<Start label="a"/>"#)),
            [r#"block  "a" (Start): has no id"#]
        );
        assert_eq!(
            by_block(
                block_id,
                &flow(r#"<Start id="1" label="a"/><Hangup id="1" label="b"/>"#)
            ),
            [r#"block 1 "b" (Hangup): reuses id 1"#]
        );
        assert_eq!(
            by_block(
                block_id,
                &flow(r#"<Start id="1" label="a"/><Hangup id="2" label="b"/>"#)
            ),
            NONE
        );
    }

    #[test]
    fn block_type_rule() {
        assert_eq!(
            by_block(block_type, &flow(r#"<Frobnicate id="1" label="x"/>"#)),
            [r#"block 1 "x" (Frobnicate): unknown block type <Frobnicate>"#]
        );
        assert_eq!(
            by_block(block_type, &flow(r#"<queue id="1" label="q"/>"#)),
            NONE
        );
    }

    #[test]
    fn arrow_source_rule() {
        let f = flow(r#"<Start id="1" label="s"/><mxCell id="e" edge="1" target="1"/>"#);
        assert_eq!(by_arrow(arrow_source, &f), ["arrow e: has no source"]);
        let f = flow(&format!(
            r#"<Start id="1" label="s"/>{}"#,
            arrow("", "9", "1", "")
        ));
        assert_eq!(
            by_arrow(arrow_source, &f),
            ["arrow (no id): starts at block 9, which does not exist"]
        );
        let f = flow(&format!(
            r#"<Start id="1" label="s"/>{}"#,
            arrow("e", "1", "1", "")
        ));
        assert_eq!(by_arrow(arrow_source, &f), NONE);
    }

    #[test]
    fn arrow_target_rule() {
        let f = flow(r#"<Start id="1" label="s"/><mxCell id="e" edge="1" source="1"/>"#);
        assert_eq!(
            by_arrow(arrow_target, &f),
            [r#"block 1 "s" (Start): arrow e points nowhere (no target)"#]
        );
        let f = flow(r#"<mxCell id="e" edge="1"/>"#);
        assert_eq!(by_arrow(arrow_target, &f), ["arrow e: has no target"]);
        let f = flow(&format!(
            r#"<Start id="1" label="s"/>{}"#,
            arrow("e", "1", "9", "")
        ));
        assert_eq!(
            by_arrow(arrow_target, &f),
            [r#"block 1 "s" (Start): arrow e points at block 9, which does not exist"#]
        );
        let f = flow(&arrow("e", "8", "9", ""));
        assert_eq!(
            by_arrow(arrow_target, &f),
            ["arrow e: arrow e points at block 9, which does not exist"]
        );
        let f = flow(&format!(
            r#"<Start id="1" label="s"/>{}"#,
            arrow("e", "1", "1", "")
        ));
        assert_eq!(by_arrow(arrow_target, &f), NONE);
    }

    #[test]
    fn incoming_arrow_rule() {
        let f = flow(
            r#"<Start id="1" label="s"/><Finally id="3" label="f"/><Hangup id="2" label="h"/>"#,
        );
        assert_eq!(
            by_block(incoming_arrow, &f),
            [r#"block 2 "h" (Hangup): has no incoming arrow, so it can never run"#]
        );
        let f = flow(&format!(
            r#"<Start id="1" label="s"/><Hangup id="2" label="h"/>{}"#,
            arrow("e", "1", "2", "")
        ));
        assert_eq!(by_block(incoming_arrow, &f), NONE);
    }

    #[test]
    fn outgoing_arrow_rule() {
        let f =
            flow(r#"<Start id="1" label="s"/><Hangup id="2" label="h"/><Queue id="3" label="q"/>"#);
        assert_eq!(
            by_block(outgoing_arrow, &f),
            [r#"block 1 "s" (Start): has no outgoing arrow"#]
        );
        let f = flow(&format!(
            r#"<Start id="1" label="s"/>{}"#,
            arrow("e", "1", "1", "")
        ));
        assert_eq!(by_block(outgoing_arrow, &f), NONE);
    }

    #[test]
    fn required_parameters_rule() {
        let f = flow(
            r#"<Playback id="1" label="p"/><Math id="2" label="m" operation="1+1"/><Queue id="3" label="q"/><BankIdRequest id="4" label="b" resultVariable="R"/>"#,
        );
        assert_eq!(
            by_block(required_parameters, &f),
            [
                r#"block 1 "p" (Playback): needs the parameter audio"#,
                r#"block 2 "m" (Math): needs the parameter result"#,
                r#"block 3 "q" (Queue): needs the parameter queue"#,
                r#"block 4 "b" (BankIdRequest): needs the parameter pnrVariable"#,
            ]
        );
        let f = flow(
            r#"<Playback id="1" label="p" audio="x"/><Queue id="3" label="q" queue="support"/><Hangup id="5" label="h"/>"#,
        );
        assert_eq!(by_block(required_parameters, &f), NONE);
    }

    #[test]
    fn goto_target_rule() {
        let f = flow(r#"<Goto id="1" label="a"/><Goto id="2" label="b" target="9"/>"#);
        assert_eq!(
            by_block(goto_target, &f),
            [
                r#"block 1 "a" (Goto): needs the parameter target"#,
                r#"block 2 "b" (Goto): jumps to block 9, which does not exist"#,
            ]
        );
        let f = flow(r#"<Goto id="1" label="a" target="1"/><Playback id="2" label="p"/>"#);
        assert_eq!(by_block(goto_target, &f), NONE);
    }

    #[test]
    fn menu_parameters_rule() {
        let f = flow(r#"<Menu id="1" label="m" timeout="ten" maxDigits="12" retries="-1"/>"#);
        assert_eq!(
            by_block(menu_parameters, &f),
            [
                r#"block 1 "m" (Menu): timeout must be a whole number, not "ten""#,
                r#"block 1 "m" (Menu): retries must be a whole number, not "-1""#,
            ]
        );
        let f = flow(
            r#"<Menu id="1" label="m" timeout="10" maxDigits="12" retries="2"/><BankIdRequest id="2" label="b" timeout="x"/>"#,
        );
        assert_eq!(by_block(menu_parameters, &f), NONE);
    }

    #[test]
    fn menu_exits_rule() {
        let f = flow(&format!(
            r#"<Menu id="1" label="m"/><Hangup id="2" label="h"/>{}"#,
            arrow("e", "1", "2", "*")
        ));
        assert_eq!(
            by_block(menu_exits, &f),
            [
                r#"block 1 "m" (Menu): has no 't' (timeout) exit: a caller who enters nothing would be stuck"#,
                r#"block 1 "m" (Menu): has no 'i' (invalid entry) exit"#,
                r#"block 1 "m" (Menu): has a '*' exit but no variable to receive the digits"#,
            ]
        );
        let f = flow(&format!(
            r#"<Menu id="1" label="m" variable="PNR"/><Hangup id="2" label="h"/>{}{}{}"#,
            arrow("e1", "1", "2", "*"),
            arrow("e2", "1", "2", "T"),
            arrow("e3", "1", "2", "i"),
        ));
        assert_eq!(by_block(menu_exits, &f), NONE);
    }

    #[test]
    fn bankid_parameters_rule() {
        let f = flow(
            r#"<BankIdRequest id="1" label="b" callInitiator="bank" language="de" timeout="3m" maxInvalid="x" resultVariable="A B"/>"#,
        );
        assert_eq!(
            by_block(bankid_parameters, &f),
            [
                r#"block 1 "b" (BankIdRequest): callInitiator must be user or RP, not "bank""#,
                r#"block 1 "b" (BankIdRequest): language must be sv or en, not "de""#,
                r#"block 1 "b" (BankIdRequest): timeout must be a whole number of seconds, not "3m""#,
                r#"block 1 "b" (BankIdRequest): maxInvalid must be a whole number of seconds, not "x""#,
                r#"block 1 "b" (BankIdRequest): resultVariable "A B" is not a variable name"#,
            ]
        );
        let f = flow(
            r#"<BankIdRequest id="1" label="b" callInitiator="RP" language="en" timeout="180" maxInvalid="3" resultVariable="__BANKID_RESULT"/>"#,
        );
        assert_eq!(by_block(bankid_parameters, &f), NONE);
    }

    #[test]
    fn bankid_signing_parameters_rule() {
        let f = flow(
            r#"<BankIdRequest id="1" label="b" mode="approve" requirePinCode="maybe" requireIdDocument="ja"/><BankIdRequest id="2" label="s" mode="sign" userVisibleData=" "/>"#,
        );
        assert_eq!(
            by_block(bankid_parameters, &f),
            [
                r#"block 1 "b" (BankIdRequest): mode must be identify or sign, not "approve""#,
                r#"block 1 "b" (BankIdRequest): requirePinCode must be yes or no, not "maybe""#,
                r#"block 1 "b" (BankIdRequest): requireIdDocument must be yes or no, not "ja""#,
                r#"block 2 "s" (BankIdRequest): mode sign needs userVisibleData: the text the caller approves"#,
            ]
        );
        let ok = flow(
            r#"<BankIdRequest id="1" label="b" mode="Sign" userVisibleData="Jag godkänner {X}" requirePinCode="yes" requireIdDocument="no"/><BankIdRequest id="2" label="i" mode="identify"/>"#,
        );
        assert!(by_block(bankid_parameters, &ok).is_empty());
    }

    #[test]
    fn a_variable_in_the_signed_text_must_be_set() {
        let f = flow(&format!(
            r#"<Start id="1" label="s"/><BankIdRequest id="2" label="b" pnrVariable="PNR" resultVariable="R" mode="sign" userVisibleData="Flytt till {{NEW_ADDRESS}}"/>{}"#,
            arrow("9", "1", "2", "")
        ));
        let shown = shown(check_variables(&f));
        assert!(
            shown
                .iter()
                .any(|l| l.contains("uses the variable NEW_ADDRESS, which no block sets")),
            "{shown:?}"
        );
    }

    #[test]
    fn bankid_exits_rule() {
        let f = flow(&format!(
            r#"<BankIdRequest id="1" label="b"/><Hangup id="2" label="h"/>{}{}"#,
            arrow("e1", "1", "2", "success"),
            arrow("e2", "1", "2", "Maybe"),
        ));
        assert_eq!(
            by_block(bankid_exits, &f),
            [
                r#"block 1 "b" (BankIdRequest): has no 'failed' exit"#,
                r#"block 1 "b" (BankIdRequest): has no 'error' exit"#,
                r#"block 1 "b" (BankIdRequest): has an exit labelled "maybe"; its exits are success, failed, error and invalid"#,
            ]
        );
        let exits: String = ["success", "failed", "Error", "invalid"]
            .iter()
            .map(|l| arrow(l, "1", "2", l))
            .collect();
        let f = flow(&format!(
            r#"<BankIdRequest id="1" label="b"/><Hangup id="2" label="h"/>{exits}"#
        ));
        assert_eq!(by_block(bankid_exits, &f), NONE);
    }

    #[test]
    fn variables_rule() {
        let f = flow(&format!(
            r#"<Start id="1" label="s"/><Playback id="2" label="p" audio="{{LANG}}/x"/><Menu id="3" label="m" variable="PNR" audio="a"/><Set id="4" label="v" variable="LANG" value="{{PNR}}"/><Hangup id="5" label="h"/>{}{}{}{}"#,
            arrow("e1", "1", "2", ""),
            arrow("e2", "2", "3", ""),
            arrow("e3", "3", "4", "*"),
            arrow("e4", "4", "5", ""),
        ));
        assert_eq!(
            whole(|f, p| p.extend(check_variables(f)), &f),
            [
                r#"block 2 "p" (Playback): uses the variable LANG before it is set on every path from Start"#
            ]
        );
        let f = flow(&format!(
            r#"<Start id="1" label="s"/><Playback id="2" label="p" audio="{{NOPE}}"/>{}"#,
            arrow("e1", "1", "2", ""),
        ));
        assert_eq!(
            whole(|f, p| p.extend(check_variables(f)), &f),
            [r#"block 2 "p" (Playback): uses the variable NOPE, which no block sets"#]
        );
        let f = flow(&format!(
            r#"<Start id="1" label="s"/><Playback id="2" label="p" audio="{{CALLERID(num)}}"/>{}"#,
            arrow("e1", "1", "2", ""),
        ));
        assert_eq!(whole(|f, p| p.extend(check_variables(f)), &f), NONE);
    }

    #[test]
    fn check_runs_the_rules_in_order() {
        let f = flow(&format!(
            r#"<Start id="1" label="s"/><Frob id="1" label="x"/><Playback id="2" label="p"/>{}"#,
            arrow("e", "1", "9", ""),
        ));
        assert_eq!(
            shown(check(&f)),
            [
                r#"block 1 "x" (Frob): reuses id 1"#,
                r#"block 1 "x" (Frob): unknown block type <Frob>"#,
                r#"block 1 "s" (Start): arrow e points at block 9, which does not exist"#,
                r#"block 2 "p" (Playback): has no incoming arrow, so it can never run"#,
                r#"block 2 "p" (Playback): has no outgoing arrow"#,
                r#"block 2 "p" (Playback): needs the parameter audio"#,
            ]
        );
        let clean = flow(&format!(
            r#"<Start id="1" label="s"/><Playback id="2" label="p" audio="a"/><Hangup id="3" label="h"/>{}{}"#,
            arrow("e1", "1", "2", ""),
            arrow("e2", "2", "3", ""),
        ));
        assert_eq!(shown(check(&clean)), NONE);
    }
}
