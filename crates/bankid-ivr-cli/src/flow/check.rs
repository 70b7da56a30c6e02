//! `bankid-ivr flow check`: validates a Cally Square export the way the designer's publish step
//! would, plus our own rules for the BankID block. Each problem names the block id and label.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::format::{self, exit, is_entry, is_terminal, param, Kind};
use super::model::{referenced_vars, Block, Flow};

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

/// All problems of a flow; empty when clean.
pub fn check(flow: &Flow) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut add = |place: String, message: String| p.push(Problem { place, message });

    let starts: Vec<&Block> = flow
        .blocks
        .iter()
        .filter(|b| b.kind == Some(Kind::Start))
        .collect();
    match starts.len() {
        0 => add("project".into(), "has no Start block".into()),
        1 => {}
        _ => starts[1..].iter().for_each(|b| {
            add(
                b.describe(),
                "is a second Start block (a project has exactly one)".into(),
            )
        }),
    }
    let mut seen = HashSet::new();
    for b in &flow.blocks {
        if b.id.is_empty() {
            add(b.describe(), "has no id".into());
        } else if !seen.insert(b.id.as_str()) {
            add(b.describe(), format!("reuses id {}", b.id));
        }
        if b.kind.is_none() {
            add(b.describe(), format!("unknown block type <{}>", b.element));
        }
    }
    for e in &flow.edges {
        let place = format!("arrow {}", if e.id.is_empty() { "(no id)" } else { &e.id });
        match e.source.as_deref() {
            None => add(place.clone(), "has no source".into()),
            Some(s) if flow.block(s).is_none() => add(
                place.clone(),
                format!("starts at block {s}, which does not exist"),
            ),
            _ => {}
        }
        match (
            e.target.as_deref(),
            e.source.as_deref().and_then(|s| flow.block(s)),
        ) {
            (None, Some(src)) => add(
                src.describe(),
                format!("arrow {} points nowhere (no target)", e.id),
            ),
            (None, None) => add(place, "has no target".into()),
            (Some(t), src) if flow.block(t).is_none() => add(
                src.map(Block::describe).unwrap_or(place),
                format!("arrow {} points at block {t}, which does not exist", e.id),
            ),
            _ => {}
        }
    }
    for b in &flow.blocks {
        let Some(kind) = b.kind else { continue };
        let incoming = flow
            .edges
            .iter()
            .any(|e| e.target.as_deref() == Some(b.id.as_str()));
        let outgoing: Vec<String> = flow
            .exits(&b.id)
            .map(|e| e.label.to_ascii_lowercase())
            .collect();
        if !is_entry(kind) && !incoming {
            add(
                b.describe(),
                "has no incoming arrow, so it can never run".into(),
            );
        }
        if !is_terminal(kind) && outgoing.is_empty() {
            add(b.describe(), "has no outgoing arrow".into());
        }
        let need = |name: &str| {
            b.param(name)
                .is_none()
                .then(|| format!("needs the parameter {name}"))
        };
        let mut missing: Vec<String> = Vec::new();
        match kind {
            Kind::Playback => missing.extend(need(param::AUDIO)),
            Kind::Set => missing.extend(need(param::VARIABLE)),
            Kind::Math => missing.extend(
                [need(param::OPERATION), need(param::RESULT)]
                    .into_iter()
                    .flatten(),
            ),
            Kind::System => missing.extend(
                [need(param::COMMAND), need(param::VARIABLE)]
                    .into_iter()
                    .flatten(),
            ),
            Kind::Agi => missing.extend(need(param::COMMAND)),
            Kind::SubProject => missing.extend(need(param::PROJECT)),
            Kind::Queue => missing.extend(need(param::QUEUE)),
            Kind::CustomApp => missing.extend(need(param::APPLICATION)),
            Kind::Goto => match b.param(param::TARGET) {
                None => missing.push(format!("needs the parameter {}", param::TARGET)),
                Some(t) if flow.block(t).is_none() => {
                    missing.push(format!("jumps to block {t}, which does not exist"))
                }
                _ => {}
            },
            Kind::Menu => {
                missing.extend(need(param::AUDIO));
                for n in [param::TIMEOUT, param::MAX_DIGITS, param::RETRIES] {
                    if let Some(v) = b.param(n) {
                        if !is_number(v) {
                            missing.push(format!("{n} must be a whole number, not {v:?}"));
                        }
                    }
                }
                if !outgoing.iter().any(|l| l == exit::TIMEOUT) {
                    missing.push(
                        "has no 't' (timeout) exit: a caller who enters nothing would be stuck"
                            .into(),
                    );
                }
                if !outgoing.iter().any(|l| l == exit::INVALID) {
                    missing.push("has no 'i' (invalid entry) exit".into());
                }
                if outgoing.iter().any(|l| l == exit::ANY) && b.param(param::VARIABLE).is_none() {
                    missing.push("has a '*' exit but no variable to receive the digits".into());
                }
            }
            Kind::BankIdRequest => {
                missing.extend(
                    [need(param::PNR_VARIABLE), need(param::RESULT_VARIABLE)]
                        .into_iter()
                        .flatten(),
                );
                if let Some(v) = b.param(param::CALL_INITIATOR) {
                    if !v.eq_ignore_ascii_case("user") && !v.eq_ignore_ascii_case("rp") {
                        missing.push(format!("callInitiator must be user or RP, not {v:?}"));
                    }
                }
                if let Some(v) = b.param(param::LANGUAGE) {
                    if bankid::messages::Language::parse(v).is_none() {
                        missing.push(format!("language must be sv or en, not {v:?}"));
                    }
                }
                for n in [param::BANKID_TIMEOUT, param::MAX_INVALID] {
                    if let Some(v) = b.param(n) {
                        if !is_number(v) {
                            missing
                                .push(format!("{n} must be a whole number of seconds, not {v:?}"));
                        }
                    }
                }
                if let Some(v) = b.param(param::RESULT_VARIABLE) {
                    if !v
                        .trim_start_matches('_')
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        missing.push(format!("resultVariable {v:?} is not a variable name"));
                    }
                }
                for x in [exit::SUCCESS, exit::FAILED, exit::ERROR] {
                    if !outgoing.iter().any(|l| l == x) {
                        missing.push(format!("has no '{x}' exit"));
                    }
                }
                for l in &outgoing {
                    if ![exit::SUCCESS, exit::FAILED, exit::ERROR, exit::BAD_NUMBER]
                        .contains(&l.as_str())
                    {
                        missing.push(format!("has an exit labelled {l:?}; its exits are success, failed, error and invalid"));
                    }
                }
            }
            _ => {}
        }
        for m in missing {
            add(b.describe(), m);
        }
    }
    p.extend(check_variables(flow));
    p
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
