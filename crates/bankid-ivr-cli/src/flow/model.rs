//! A Cally Square project read from its XML export: blocks and arrows.

use std::collections::BTreeMap;

use super::format::{self, Kind};

/// One block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The cell id.
    pub id: String,
    /// The element name as written.
    pub element: String,
    /// What it is, if known.
    pub kind: Option<Kind>,
    /// Its caption.
    pub label: String,
    /// Parameters (attribute name lower-cased → value).
    pub params: BTreeMap<String, String>,
}

impl Block {
    /// A parameter (name matched case-insensitively).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `id "label"` for messages.
    pub fn describe(&self) -> String {
        format!("block {} \"{}\" ({})", self.id, self.label, self.element)
    }
}

/// One arrow.
#[derive(Debug, Clone)]
pub struct Edge {
    /// The cell id.
    pub id: String,
    /// From block id.
    pub source: Option<String>,
    /// To block id.
    pub target: Option<String>,
    /// The exit label (may be empty).
    pub label: String,
}

/// Why an export is not a project at all (everything else is for the checker to report).
#[derive(Debug)]
pub enum ParseError {
    /// Not XML.
    NotXml(roxmltree::Error),
    /// The document element is not `mxGraphModel`; its name.
    WrongDocumentElement(String),
    /// `mxGraphModel` has no `root`.
    NoRoot,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NotXml(e) => write!(f, "not well-formed XML: {e}"),
            ParseError::WrongDocumentElement(name) => write!(
                f,
                "the document element is <{name}>, expected <{}>",
                format::MODEL
            ),
            ParseError::NoRoot => write!(f, "<{}> has no <{}>", format::MODEL, format::ROOT),
        }
    }
}

impl std::error::Error for ParseError {}

/// A parsed project.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    /// Blocks in document order.
    pub blocks: Vec<Block>,
    /// Arrows in document order.
    pub edges: Vec<Edge>,
}

impl Flow {
    /// Parses an export. Only malformed XML or a missing `mxGraphModel`/`root` is an error
    /// here; everything else is for the checker to report.
    pub fn parse(xml: &str) -> Result<Flow, ParseError> {
        let doc = roxmltree::Document::parse(xml).map_err(ParseError::NotXml)?;
        let model = doc.root_element();
        if !model.tag_name().name().eq_ignore_ascii_case(format::MODEL) {
            return Err(ParseError::WrongDocumentElement(
                model.tag_name().name().to_string(),
            ));
        }
        let root = model
            .children()
            .find(|n| n.is_element() && n.tag_name().name().eq_ignore_ascii_case(format::ROOT))
            .ok_or(ParseError::NoRoot)?;
        let mut flow = Flow::default();
        for node in root.children().filter(|n| n.is_element()) {
            let name = node.tag_name().name();
            let attr = |a: &str| {
                node.attributes()
                    .find(|x| x.name().eq_ignore_ascii_case(a))
                    .map(|x| x.value().to_string())
            };
            if name.eq_ignore_ascii_case(format::CELL) {
                if attr(format::EDGE).as_deref() == Some("1") {
                    flow.edges.push(Edge {
                        id: attr(format::ID).unwrap_or_default(),
                        source: attr(format::SOURCE),
                        target: attr(format::TARGET),
                        label: attr(format::VALUE).unwrap_or_default().trim().to_string(),
                    });
                }
                // Layers (id 0/1) and plain vertices without a block type are not blocks.
                continue;
            }
            let params = node
                .attributes()
                .filter(|a| {
                    !a.name().eq_ignore_ascii_case(format::ID)
                        && !a.name().eq_ignore_ascii_case(format::LABEL)
                })
                .map(|a| (a.name().to_ascii_lowercase(), a.value().to_string()))
                .collect();
            flow.blocks.push(Block {
                id: attr(format::ID).unwrap_or_default(),
                element: name.to_string(),
                kind: format::kind_of(name),
                label: attr(format::LABEL).unwrap_or_default(),
                params,
            });
        }
        Ok(flow)
    }

    /// The block with this id.
    pub fn block(&self, id: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.id == id)
    }

    /// Arrows leaving a block.
    pub fn exits<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges
            .iter()
            .filter(move |e| e.source.as_deref() == Some(id))
    }

    /// The target of the exit labelled `label` (case-insensitive), or of the only unlabelled
    /// exit when `label` is empty.
    pub fn exit_to(&self, id: &str, label: &str) -> Option<&Block> {
        let edge = self
            .exits(id)
            .find(|e| e.label.eq_ignore_ascii_case(label))?;
        self.block(edge.target.as_deref()?)
    }

    /// The single exit of a one-exit block (any label).
    pub fn next(&self, id: &str) -> Option<&Block> {
        let edge = self.exits(id).next()?;
        self.block(edge.target.as_deref()?)
    }
}

/// `{VAR}` names used in a text.
pub fn referenced_vars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '(' || c == ')')
        {
            out.push(name.to_string());
        }
        rest = &after[end + 1..];
    }
    out
}
