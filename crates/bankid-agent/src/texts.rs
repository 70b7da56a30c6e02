//! What the agent reads about an order: the line, the step while pending and the fraud flag,
//! as the library's one table per BankID code says them ([`bankid::messages::guidance`]).

use bankid::messages::Text;
use bankid::order::OrderView;

/// The agent's view of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentText {
    /// The step while pending: `app`, `confirm`, `code`, `document`, `other`; empty when final.
    pub step: &'static str,
    /// The line to show.
    pub text: Text,
    /// Whether the outcome suggests the person on the line is not who they claim to be.
    pub fraud_warning: bool,
}

/// What to tell the agent about `v`.
pub fn for_order(v: &OrderView) -> AgentText {
    let g = v.guidance();
    AgentText {
        step: g.step.map_or("", |s| s.as_str()),
        text: g.agent,
        fraud_warning: g.fraud_warning,
    }
}
