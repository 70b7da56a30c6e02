//! What the agent reads: about an order, the line, the step while pending and the fraud flag,
//! as the library's one table per BankID code says them ([`bankid::messages::guidance`]); and
//! in the simulator banner, what each test person does, in both languages.

use bankid::messages::Text;
use bankid::order::OrderView;
use bankid::rp::HintCode;
use serde::Serialize;

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

/// A simulated person shown in the banner when BankID is the embedded simulator.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestPerson {
    /// 12 digits (test data, not a real person).
    pub personal_number: String,
    /// Full name.
    pub name: String,
    /// What happens, in both languages.
    pub behaviour: Text,
}

/// The simulator's test persons with behaviour in both languages.
pub fn simulator_persons() -> Vec<TestPerson> {
    bankid_sim::TEST_PERSONS
        .iter()
        .map(|p| TestPerson {
            personal_number: p.personal_number.to_string(),
            name: format!("{} {}", p.given_name, p.surname),
            behaviour: behaviour(&SimOutcome::parse(p.outcome)),
        })
        .collect()
}

/// How a simulated person's orders end: the simulator's outcome key (`complete`, `slow`, or
/// the `hintCode` of the failed status), typed so the table below names every BankID code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimOutcome {
    /// Identifies.
    Complete,
    /// Identifies, taking longer over each step.
    Slow,
    /// Identifies, but fails the ID-document check when it is required.
    FailsDocumentCheck,
    /// Ends `failed` with this hint code.
    Fails(HintCode),
}

impl SimOutcome {
    /// The simulator's outcome key.
    pub fn parse(key: &str) -> SimOutcome {
        match key {
            "complete" => SimOutcome::Complete,
            "slow" => SimOutcome::Slow,
            bankid_sim::scenario::MRTD_FAILS => SimOutcome::FailsDocumentCheck,
            code => SimOutcome::Fails(HintCode::from(code)),
        }
    }
}

/// What the banner says a simulated person does.
pub fn behaviour(outcome: &SimOutcome) -> Text {
    let fails = match outcome {
        SimOutcome::Complete => return Text::new("identifierar sig", "identifies"),
        SimOutcome::Slow => return Text::new("tar god tid på sig", "takes their time"),
        SimOutcome::FailsDocumentCheck => {
            return Text::new(
                "identifierar sig, men klarar inte kontrollen av ID-handlingen",
                "identifies, but fails the ID document check",
            )
        }
        SimOutcome::Fails(code) => code,
    };
    let (sv, en) = match fails {
        HintCode::UserCancel => ("avbryter i appen", "cancels in the app"),
        HintCode::UserDeclinedCall => (
            "nekar samtalet (möjligt bedrägeri)",
            "declines the call (possible fraud)",
        ),
        HintCode::ExpiredTransaction => ("öppnar aldrig appen", "never opens the app"),
        HintCode::CertificateErr => ("har ett spärrat BankID", "has a blocked BankID"),
        HintCode::StartFailed => ("har ingen BankID-app", "has no BankID app"),
        HintCode::NotSupportedByUserApp => ("har för gammal app", "has an app too old"),
        HintCode::TransactionRiskBlocked => ("stoppas av BankID", "is stopped by BankID"),
        HintCode::Cancelled => (
            "avbryts av en nyare beställning",
            "is cancelled by a newer order",
        ),
        HintCode::MrtdVerificationFailed => (
            "klarar inte kontrollen av ID-handlingen",
            "fails the ID document check",
        ),
        HintCode::FacialRecognitionFailed => {
            ("klarar inte ansiktskontrollen", "fails the face check")
        }
        HintCode::NfcNotSupportedByDevice => (
            "har en telefon som inte kan läsa ID-handlingen",
            "has a phone that cannot read the ID document",
        ),
        HintCode::MultipleBankIdsOnDevice => (
            "har flera BankID i telefonen",
            "has several BankIDs on the phone",
        ),
        HintCode::StepUpFailed => ("klarar inte den extra kontrollen", "fails the extra check"),
        // Pending codes as a final outcome, and codes this version does not know: only a
        // hand-made scenario ends like that, and the simulator's README explains it.
        HintCode::OutstandingTransaction
        | HintCode::NoClient
        | HintCode::Started
        | HintCode::UserCallConfirm
        | HintCode::UserMrtd
        | HintCode::UserSign
        | HintCode::UserFace
        | HintCode::UserStepUp
        | HintCode::Processing
        | HintCode::Unknown(_) => ("se simulatorns README", "see the simulator's README"),
    };
    Text::new(sv, en)
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: Text = Text::new("se simulatorns README", "see the simulator's README");

    #[test]
    fn every_test_person_has_a_behaviour_in_swedish_and_english() {
        let persons = simulator_persons();
        assert_eq!(persons.len(), bankid_sim::TEST_PERSONS.len());
        for p in &persons {
            assert!(!p.behaviour.sv.is_empty() && !p.behaviour.en.is_empty());
            assert_ne!(p.behaviour, README, "{}: no own text", p.name);
            assert_ne!(p.behaviour.sv, p.behaviour.en, "{}: untranslated", p.name);
        }
    }

    #[test]
    fn every_failing_hint_code_has_its_own_text() {
        for code in [
            "userCancel",
            "userDeclinedCall",
            "expiredTransaction",
            "certificateErr",
            "startFailed",
            "notSupportedByUserApp",
            "transactionRiskBlocked",
            "cancelled",
            "mrtdVerificationFailed",
            "facialRecognitionFailed",
            "nfcNotSupportedByDevice",
            "multipleBankIdsOnDevice",
            "stepUpFailed",
        ] {
            let outcome = SimOutcome::parse(code);
            assert!(
                !matches!(outcome, SimOutcome::Fails(HintCode::Unknown(_))),
                "{code}"
            );
            let t = behaviour(&outcome);
            assert_ne!(t, README, "{code}");
            assert!(!t.sv.is_empty() && !t.en.is_empty(), "{code}");
        }
        assert_eq!(behaviour(&SimOutcome::parse("somethingNew")), README);
        assert_eq!(SimOutcome::parse("slow"), SimOutcome::Slow);
    }
}
