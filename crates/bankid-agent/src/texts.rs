//! What the agent reads about an order: one line for where it stands or why it ended, in
//! Swedish and English. (What the *caller* sees in the app is BankID's RFA text, from the
//! library.)

use bankid::order::{local, OrderView, State};
use serde::Serialize;

/// A text in both languages.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Text {
    /// Svenska.
    pub sv: &'static str,
    /// English.
    pub en: &'static str,
}

const fn t(sv: &'static str, en: &'static str) -> Text {
    Text { sv, en }
}

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

fn pending(step: &'static str, text: Text) -> AgentText {
    AgentText {
        step,
        text,
        fraud_warning: false,
    }
}

fn ended(text: Text) -> AgentText {
    AgentText {
        step: "",
        text,
        fraud_warning: false,
    }
}

/// What to tell the agent about `v`.
pub fn for_order(v: &OrderView) -> AgentText {
    match v.state {
        State::Pending => match v.hint_code.as_deref() {
            None => pending("app", t("Skickar till BankID…", "Sending to BankID…")),
            Some("outstandingTransaction") | Some("noClient") => pending(
                "app",
                t(
                    "Väntar på att kunden öppnar BankID-appen.",
                    "Waiting for the caller to open the BankID app.",
                ),
            ),
            Some("userCallConfirm") => pending(
                "confirm",
                t(
                    "Kunden bekräftar i BankID-appen att hen pratar med er.",
                    "The caller is confirming in the BankID app that they are on a call with you.",
                ),
            ),
            Some("userSign") => pending(
                "code",
                t(
                    "Kunden skriver in sin säkerhetskod i BankID-appen.",
                    "The caller is entering their security code in the BankID app.",
                ),
            ),
            Some("userMrtd") => pending(
                "document",
                t(
                    "Kunden läser av sin ID-handling med BankID-appen.",
                    "The caller is scanning their ID document with the BankID app.",
                ),
            ),
            Some(_) => pending(
                "other",
                t(
                    "Identifieringen pågår.",
                    "The identification is in progress.",
                ),
            ),
        },
        State::Complete => ended(t(
            "Kunden är identifierad med BankID.",
            "The caller is identified with BankID.",
        )),
        State::Failed => failed(v),
        State::Error => error(v.error_code.as_deref().unwrap_or("")),
    }
}

fn failed(v: &OrderView) -> AgentText {
    if v.error_code.as_deref() == Some(local::CANCELLED) {
        return ended(t(
            "Du avbröt identifieringen.",
            "You cancelled the identification.",
        ));
    }
    let text = match v.hint_code.as_deref().unwrap_or("") {
        "userDeclinedCall" => {
            return AgentText {
                step: "",
                text: t(
                    "Möjligt bedrägeriförsök: den som äger BankID:t svarade i appen att hen inte pratar med er. Personen i telefon är kanske inte den hen utger sig för att vara. Lämna inte ut några uppgifter och följ rutinen för misstänkt bedrägeri.",
                    "Possible fraud attempt: the owner of the BankID answered in the app that they are not on a call with you. The person on the line may not be who they claim to be. Do not disclose anything and follow the procedure for suspected fraud.",
                ),
                fraud_warning: true,
            }
        }
        "userCancel" => t(
            "Kunden avbröt identifieringen i BankID-appen.",
            "The caller cancelled the identification in the BankID app.",
        ),
        "expiredTransaction" => t(
            "Kunden identifierade sig inte i tid.",
            "The caller did not identify in time.",
        ),
        "certificateErr" => t(
            "Kundens BankID är spärrat eller för gammalt. Kunden behöver ett nytt BankID från sin bank.",
            "The caller's BankID is blocked or too old. They need a new BankID from their bank.",
        ),
        "startFailed" => t(
            "Kunden öppnade aldrig BankID-appen (har kanske ingen app).",
            "The caller never opened the BankID app (they may not have it).",
        ),
        "notSupportedByUserApp" => t(
            "Kundens BankID-app är för gammal för identifiering i telefonsamtal. Be kunden uppdatera appen.",
            "The caller's BankID app is too old for identification during calls. Ask them to update it.",
        ),
        "transactionRiskBlocked" => t(
            "BankID stoppade identifieringen av säkerhetsskäl. Behandla samtalet med försiktighet.",
            "BankID stopped the identification for security reasons. Treat the call with caution.",
        ),
        "cancelled" => t(
            "Identifieringen avbröts: en ny startades för samma personnummer.",
            "The identification was cancelled: a new one was started for the same personal number.",
        ),
        _ => t("Identifieringen misslyckades.", "The identification failed."),
    };
    ended(text)
}

fn error(code: &str) -> AgentText {
    ended(match code {
        "alreadyInProgress" => t(
            "En identifiering för det här personnumret pågår redan, kanske hos en kollega. Vänta en stund och försök igen.",
            "An identification for this personal number is already in progress, perhaps with a colleague. Wait a moment and try again.",
        ),
        local::DEADLINE => t(
            "BankID gav inget slutligt svar i tid. Försök igen.",
            "BankID gave no final answer in time. Try again.",
        ),
        local::SHUTDOWN => t(
            "Tjänsten startades om under identifieringen. Försök igen.",
            "The service restarted during the identification. Try again.",
        ),
        "maintenance" | "internalError" | "requestTimeout" | "tooManyRequests" | "transport" => t(
            "BankID svarar inte just nu. Försök igen om en stund.",
            "BankID is not answering right now. Try again in a moment.",
        ),
        c if c.starts_with("http-5") => t(
            "BankID svarar inte just nu. Försök igen om en stund.",
            "BankID is not answering right now. Try again in a moment.",
        ),
        _ => t(
            "Något gick fel i kontakten med BankID. Försök igen; kvarstår felet, kontakta support.",
            "Something went wrong talking to BankID. Try again; if it persists, contact support.",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bankid::messages;

    fn view(state: State, hint: Option<&str>, err: Option<&str>) -> OrderView {
        OrderView {
            state,
            hint_code: hint.map(str::to_string),
            error_code: err.map(str::to_string),
            completion: None,
            order_ref: None,
            result_text: String::new(),
            message: messages::RFA1,
        }
    }

    #[test]
    fn only_a_declined_call_is_flagged_as_fraud() {
        let declined = for_order(&view(State::Failed, Some("userDeclinedCall"), None));
        assert!(declined.fraud_warning);
        assert!(declined.text.sv.contains("bedrägeri"));
        for hint in [
            "userCancel",
            "expiredTransaction",
            "certificateErr",
            "startFailed",
            "notSupportedByUserApp",
            "transactionRiskBlocked",
            "cancelled",
            "somethingNew",
        ] {
            assert!(!for_order(&view(State::Failed, Some(hint), None)).fraud_warning);
        }
    }

    #[test]
    fn every_pending_step_and_ending_has_its_own_words() {
        let mut seen = std::collections::HashSet::new();
        for (hint, step) in [
            ("outstandingTransaction", "app"),
            ("userCallConfirm", "confirm"),
            ("userSign", "code"),
            ("userMrtd", "document"),
        ] {
            let a = for_order(&view(State::Pending, Some(hint), None));
            assert_eq!(a.step, step);
            assert!(seen.insert(a.text.sv));
        }
        for hint in [
            "userCancel",
            "expiredTransaction",
            "certificateErr",
            "startFailed",
            "notSupportedByUserApp",
            "transactionRiskBlocked",
        ] {
            assert!(seen.insert(for_order(&view(State::Failed, Some(hint), None)).text.sv));
        }
        let mine = for_order(&view(State::Failed, None, Some(local::CANCELLED)));
        assert!(mine.text.en.contains("You cancelled"));
        let busy = for_order(&view(State::Error, None, Some("alreadyInProgress")));
        assert!(busy.text.en.contains("already in progress"));
        let down = for_order(&view(State::Error, None, Some("http-503")));
        assert!(down.text.en.contains("not answering"));
    }
}
