//! What to tell the caller, the agent and the IVR: BankID's recommended user messages (RFA) in
//! Swedish and English, our own texts for the phone hint codes that have none, the agent page's
//! line per code, and the IVR prompt to play — all from [`guidance`], one table per outcome.

use crate::order::{OrderError, State};
use crate::rp::{ErrorCode, HintCode};

/// Message language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// Svenska (the default).
    #[default]
    Sv,
    /// English.
    En,
}

impl Language {
    /// `sv`/`en` (case-insensitive; `sv-SE`, `en-GB` work too).
    pub fn parse(s: &str) -> Option<Language> {
        let l = s.trim().to_ascii_lowercase();
        if l == "sv" || l.starts_with("sv-") || l.starts_with("sv_") {
            Some(Language::Sv)
        } else if l == "en" || l.starts_with("en-") || l.starts_with("en_") {
            Some(Language::En)
        } else {
            None
        }
    }
}

/// One text in both languages: the only type for a two-language text in the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Text {
    /// Svenska.
    pub sv: &'static str,
    /// English.
    pub en: &'static str,
}

impl Text {
    /// A text from its Swedish and English forms.
    pub const fn new(sv: &'static str, en: &'static str) -> Text {
        Text { sv, en }
    }

    /// The text in `lang`.
    pub fn get(self, lang: Language) -> &'static str {
        match lang {
            Language::Sv => self.sv,
            Language::En => self.en,
        }
    }
}

/// What the caller is told: BankID's RFA number where there is one (`BIVR-…` for ours), and
/// the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// `RFA1`, `RFA21`, … or `BIVR-…` for our own texts.
    pub id: &'static str,
    /// The text.
    pub text: Text,
}

impl Message {
    /// The text in `lang`.
    pub fn text(&self, lang: Language) -> &'static str {
        self.text.get(lang)
    }
}

macro_rules! msg {
    ($name:ident, $id:literal, $sv:literal, $en:literal) => {
        #[doc = concat!($id, ": ", $en)]
        pub const $name: Message = Message {
            id: $id,
            text: Text::new($sv, $en),
        };
    };
}
msg!(
    RFA1,
    "RFA1",
    "Starta BankID-appen.",
    "Start your BankID app."
);
msg!(
    RFA3,
    "RFA3",
    "Åtgärden avbröts. Försök igen.",
    "The action was cancelled. Please try again."
);
msg!(
    RFA4,
    "RFA4",
    "En identifiering eller underskrift för det här personnumret är redan påbörjad. Försök igen.",
    "An identification or signing for this personal number is already started. Please try again."
);
msg!(
    RFA5,
    "RFA5",
    "Något gick fel. Försök igen.",
    "Something went wrong. Please try again."
);
msg!(
    RFA6,
    "RFA6",
    "Åtgärden avbröts.",
    "The action was cancelled."
);
msg!(RFA8, "RFA8", "BankID-appen svarar inte. Kontrollera att den är startad och att du har internetanslutning. Försök sedan igen.", "The BankID app is not responding. Please check that it's started and that you have internet access. Try again.");
msg!(
    RFA9,
    "RFA9",
    "Skriv in din säkerhetskod i BankID-appen och välj Identifiera eller Skriv under.",
    "Enter your security code in the BankID app and select Identify or Sign."
);
msg!(RFA16, "RFA16", "Ditt BankID är för gammalt eller spärrat. Använd ett annat BankID eller skaffa ett nytt hos din bank.", "Your BankID is blocked or too old. Please use another BankID or get a new one from your bank.");
msg!(
    RFA17A,
    "RFA17A",
    "Du verkar inte ha BankID-appen. Installera den och skaffa ett BankID hos din bank.",
    "You don't seem to have the BankID app. Please install it and get a BankID from your bank."
);
msg!(
    RFA21,
    "RFA21",
    "En identifiering eller underskrift pågår.",
    "An identification or signing is in progress."
);
msg!(
    RFA22,
    "RFA22",
    "Något gick fel. Försök igen.",
    "Something went wrong. Please try again."
);
msg!(
    RFA23,
    "RFA23",
    "Fotografera och läs av din ID-handling med BankID-appen.",
    "Take a photo of, and scan, your ID document with the BankID app."
);
msg!(
    CALL_CONFIRM,
    "BIVR-CALL-CONFIRM",
    "Bekräfta i BankID-appen att du pratar med oss.",
    "Confirm in the BankID app that you are on a call with us."
);
msg!(
    CALL_DECLINED,
    "BIVR-CALL-DECLINED",
    "Du angav i BankID-appen att du inte pratar med oss. Identifieringen avbröts.",
    "You told the BankID app that you are not on a call with us. The identification was stopped."
);
msg!(
    APP_TOO_OLD,
    "BIVR-APP-TOO-OLD",
    "Din BankID-app behöver uppdateras. Uppdatera den och försök igen.",
    "Your BankID app needs to be updated. Please update it and try again."
);
msg!(
    RISK_BLOCKED,
    "BIVR-RISK-BLOCKED",
    "BankID stoppade identifieringen. Kontakta din bank om du har frågor.",
    "BankID stopped the identification. Contact your bank if you have questions."
);
msg!(
    FACE,
    "BIVR-FACE",
    "Följ instruktionerna i BankID-appen för att kontrollera ditt ansikte.",
    "Follow the instructions in the BankID app to check your face."
);
msg!(
    STEP_UP,
    "BIVR-STEP-UP",
    "Följ instruktionerna i BankID-appen för den extra kontrollen.",
    "Follow the instructions in the BankID app for the extra check."
);
msg!(
    MRTD_FAILED,
    "BIVR-MRTD-FAILED",
    "Kontrollen av din ID-handling misslyckades. Försök igen med ditt pass eller nationella id-kort.",
    "The check of your ID document failed. Please try again with your passport or national ID card."
);
msg!(
    FACE_FAILED,
    "BIVR-FACE-FAILED",
    "Kontrollen av ditt ansikte misslyckades. Försök igen.",
    "The check of your face failed. Please try again."
);
msg!(
    NFC_UNSUPPORTED,
    "BIVR-NFC-UNSUPPORTED",
    "Din telefon kan inte läsa av ID-handlingen. Använd en telefon som kan läsa NFC.",
    "Your phone cannot read the ID document. Please use a phone that can read NFC."
);
msg!(
    MULTIPLE_BANKIDS,
    "BIVR-MULTIPLE-BANKIDS",
    "Den extra kontrollen kan inte göras eftersom det finns flera BankID i din telefon.",
    "The extra check cannot be done because there are several BankIDs on your phone."
);
msg!(
    STEP_UP_FAILED,
    "BIVR-STEP-UP-FAILED",
    "Den extra kontrollen i BankID-appen misslyckades. Försök igen.",
    "The extra check in the BankID app failed. Please try again."
);
msg!(
    IDENTIFIED,
    "BIVR-IDENTIFIED",
    "Du är nu identifierad.",
    "You are now identified."
);

/// Where a pending order stands, for the agent page's progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Waiting for the app to open (or for BankID to get the order).
    App,
    /// The caller confirms in the app that they are on a call with us.
    Confirm,
    /// The caller enters their security code.
    Code,
    /// The caller scans their ID document.
    Document,
    /// Anything else while pending.
    Other,
}

impl Step {
    /// `app`, `confirm`, `code`, `document`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::App => "app",
            Step::Confirm => "confirm",
            Step::Code => "code",
            Step::Document => "document",
            Step::Other => "other",
        }
    }
}

/// Everything said about an order now, to each audience — the one place that owns it, per
/// BankID code, in both languages. The IVR tools play `prompt`, the C ABI and the tools show
/// `caller`, the agent page shows `agent`, `step` and `fraud_warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guidance {
    /// What the caller sees in the app or hears (BankID's RFA, or ours for phone codes).
    pub caller: Message,
    /// The line the agent reads.
    pub agent: Text,
    /// While pending: where the order stands.
    pub step: Option<Step>,
    /// The IVR audio prompt to play (see the IVR tool's `prompts`).
    pub prompt: &'static str,
    /// The outcome suggests the person on the line is not who they claim to be.
    pub fraud_warning: bool,
}

/// What to say about an order in `state` with BankID's last `hint` and, when it ended in an
/// error or was cancelled here, its `error`.
///
/// Every table below matches BankID's codes without a wildcard for known codes: a code added
/// to [`HintCode`] or [`ErrorCode`] does not compile until each table says what it means.
pub fn guidance(state: State, hint: Option<&HintCode>, error: Option<&OrderError>) -> Guidance {
    match state {
        State::Pending => pending(hint),
        State::Complete => Guidance {
            caller: IDENTIFIED,
            agent: Text::new(
                "Kunden är identifierad med BankID.",
                "The caller is identified with BankID.",
            ),
            step: None,
            prompt: "bankid-success",
            fraud_warning: false,
        },
        State::Failed if error == Some(&OrderError::CancelledByHost) => ended(
            RFA6,
            Text::new(
                "Du avbröt identifieringen.",
                "You cancelled the identification.",
            ),
            "bankid-failed",
        ),
        State::Failed => failed(hint),
        State::Error => error_guidance(error),
    }
}

fn ended(caller: Message, agent: Text, prompt: &'static str) -> Guidance {
    Guidance {
        caller,
        agent,
        step: None,
        prompt,
        fraud_warning: false,
    }
}

fn pending(hint: Option<&HintCode>) -> Guidance {
    use HintCode::*;
    let (caller, agent, step, prompt) = match hint {
        None => (
            RFA1,
            Text::new("Skickar till BankID…", "Sending to BankID…"),
            Step::App,
            "bankid-rfa1",
        ),
        Some(OutstandingTransaction | NoClient) => (
            RFA1,
            Text::new(
                "Väntar på att kunden öppnar BankID-appen.",
                "Waiting for the caller to open the BankID app.",
            ),
            Step::App,
            "bankid-rfa1",
        ),
        Some(UserCallConfirm) => (
            CALL_CONFIRM,
            Text::new(
                "Kunden bekräftar i BankID-appen att hen pratar med er.",
                "The caller is confirming in the BankID app that they are on a call with you.",
            ),
            Step::Confirm,
            "bankid-call-confirm",
        ),
        Some(UserSign) => (
            RFA9,
            Text::new(
                "Kunden skriver in sin säkerhetskod i BankID-appen.",
                "The caller is entering their security code in the BankID app.",
            ),
            Step::Code,
            "bankid-rfa9",
        ),
        Some(UserMrtd) => (
            RFA23,
            Text::new(
                "Kunden läser av sin ID-handling med BankID-appen.",
                "The caller is scanning their ID document with the BankID app.",
            ),
            Step::Document,
            "bankid-rfa23",
        ),
        Some(UserFace) => (
            FACE,
            Text::new(
                "Kunden kontrollerar sitt ansikte med BankID-appen.",
                "The caller is having their face checked by the BankID app.",
            ),
            Step::Document,
            "bankid-face",
        ),
        Some(UserStepUp) => (
            STEP_UP,
            Text::new(
                "Kunden gör en extra kontroll i BankID-appen.",
                "The caller is doing an extra check in the BankID app.",
            ),
            Step::Document,
            "bankid-step-up",
        ),
        // Pending without a more specific text, final codes seen while pending, and codes
        // this version does not know.
        Some(
            Started
            | Processing
            | ExpiredTransaction
            | CertificateErr
            | UserCancel
            | Cancelled
            | StartFailed
            | UserDeclinedCall
            | NotSupportedByUserApp
            | TransactionRiskBlocked
            | MrtdVerificationFailed
            | FacialRecognitionFailed
            | NfcNotSupportedByDevice
            | MultipleBankIdsOnDevice
            | StepUpFailed
            | Unknown(_),
        ) => (
            RFA21,
            Text::new(
                "Identifieringen pågår.",
                "The identification is in progress.",
            ),
            Step::Other,
            "bankid-rfa21",
        ),
    };
    Guidance {
        caller,
        agent,
        step: Some(step),
        prompt,
        fraud_warning: false,
    }
}

fn failed(hint: Option<&HintCode>) -> Guidance {
    use HintCode::*;
    let (caller, agent) = match hint {
        Some(UserDeclinedCall) => {
            return Guidance {
                fraud_warning: true,
                ..ended(
                    CALL_DECLINED,
                    Text::new(
                        "Möjligt bedrägeriförsök: den som äger BankID:t svarade i appen att hen inte pratar med er. Personen i telefon är kanske inte den hen utger sig för att vara. Lämna inte ut några uppgifter och följ rutinen för misstänkt bedrägeri.",
                        "Possible fraud attempt: the owner of the BankID answered in the app that they are not on a call with you. The person on the line may not be who they claim to be. Do not disclose anything and follow the procedure for suspected fraud.",
                    ),
                    "bankid-failed",
                )
            }
        }
        Some(UserCancel) => (
            RFA6,
            Text::new(
                "Kunden avbröt identifieringen i BankID-appen.",
                "The caller cancelled the identification in the BankID app.",
            ),
        ),
        Some(ExpiredTransaction) => (
            RFA8,
            Text::new(
                "Kunden identifierade sig inte i tid.",
                "The caller did not identify in time.",
            ),
        ),
        Some(CertificateErr) => (
            RFA16,
            Text::new(
                "Kundens BankID är spärrat eller för gammalt. Kunden behöver ett nytt BankID från sin bank.",
                "The caller's BankID is blocked or too old. They need a new BankID from their bank.",
            ),
        ),
        Some(StartFailed) => (
            RFA17A,
            Text::new(
                "Kunden öppnade aldrig BankID-appen (har kanske ingen app).",
                "The caller never opened the BankID app (they may not have it).",
            ),
        ),
        Some(NotSupportedByUserApp) => (
            APP_TOO_OLD,
            Text::new(
                "Kundens BankID-app är för gammal för identifiering i telefonsamtal. Be kunden uppdatera appen.",
                "The caller's BankID app is too old for identification during calls. Ask them to update it.",
            ),
        ),
        Some(TransactionRiskBlocked) => (
            RISK_BLOCKED,
            Text::new(
                "BankID stoppade identifieringen av säkerhetsskäl. Behandla samtalet med försiktighet.",
                "BankID stopped the identification for security reasons. Treat the call with caution.",
            ),
        ),
        Some(MrtdVerificationFailed) => (
            MRTD_FAILED,
            Text::new(
                "Kontrollen av kundens ID-handling misslyckades (pass eller nationellt id-kort). Identifieringen gäller inte; försök igen eller använd er rutin för identifiering utan BankID.",
                "The check of the caller's ID document failed (passport or national ID card). The identification does not count; try again or use your procedure for identification without BankID.",
            ),
        ),
        Some(FacialRecognitionFailed) => (
            FACE_FAILED,
            Text::new(
                "Ansiktskontrollen i BankID-appen misslyckades. Identifieringen gäller inte.",
                "The face check in the BankID app failed. The identification does not count.",
            ),
        ),
        Some(NfcNotSupportedByDevice) => (
            NFC_UNSUPPORTED,
            Text::new(
                "Kundens telefon kan inte läsa av ID-handlingen (ingen NFC). Kontrollen med ID-handling går inte att göra med den telefonen.",
                "The caller's phone cannot read the ID document (no NFC). The ID-document check cannot be done with that phone.",
            ),
        ),
        Some(MultipleBankIdsOnDevice) => (
            MULTIPLE_BANKIDS,
            Text::new(
                "Den extra kontrollen gick inte: kunden har flera BankID i telefonen.",
                "The extra check could not be done: the caller has several BankIDs on the phone.",
            ),
        ),
        Some(StepUpFailed) => (
            STEP_UP_FAILED,
            Text::new(
                "Den extra kontrollen i BankID-appen misslyckades. Identifieringen gäller inte.",
                "The extra check in the BankID app failed. The identification does not count.",
            ),
        ),
        Some(Cancelled) => (
            RFA3,
            Text::new(
                "Identifieringen avbröts: en ny startades för samma personnummer.",
                "The identification was cancelled: a new one was started for the same personal number.",
            ),
        ),
        // Pending codes as a final one, no code, or a code this version does not know.
        None
        | Some(
            OutstandingTransaction | NoClient | Started | UserCallConfirm | UserMrtd | UserSign
            | UserFace | UserStepUp | Processing | Unknown(_),
        ) => (
            RFA22,
            Text::new("Identifieringen misslyckades.", "The identification failed."),
        ),
    };
    ended(caller, agent, "bankid-failed")
}

const NOT_ANSWERING: Text = Text::new(
    "BankID svarar inte just nu. Försök igen om en stund.",
    "BankID is not answering right now. Try again in a moment.",
);
const WENT_WRONG: Text = Text::new(
    "Något gick fel i kontakten med BankID. Försök igen; kvarstår felet, kontakta support.",
    "Something went wrong talking to BankID. Try again; if it persists, contact support.",
);

fn error_guidance(error: Option<&OrderError>) -> Guidance {
    let (caller, agent) = match error {
        Some(OrderError::Api(code)) => match code {
            ErrorCode::AlreadyInProgress => (
                RFA4,
                Text::new(
                    "En identifiering för det här personnumret pågår redan, kanske hos en kollega. Vänta en stund och försök igen.",
                    "An identification for this personal number is already in progress, perhaps with a colleague. Wait a moment and try again.",
                ),
            ),
            ErrorCode::RequestTimeout
            | ErrorCode::InternalError
            | ErrorCode::Maintenance
            | ErrorCode::TooManyRequests => (RFA5, NOT_ANSWERING),
            ErrorCode::InvalidParameters
            | ErrorCode::Unauthorized
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::Unknown(_) => (RFA22, WENT_WRONG),
        },
        Some(OrderError::Http(status)) if *status >= 500 => (RFA22, NOT_ANSWERING),
        Some(OrderError::Transport) => (RFA5, NOT_ANSWERING),
        Some(OrderError::Deadline) => (
            RFA5,
            Text::new(
                "BankID gav inget slutligt svar i tid. Försök igen.",
                "BankID gave no final answer in time. Try again.",
            ),
        ),
        Some(OrderError::Shutdown) => (
            RFA22,
            Text::new(
                "Tjänsten startades om under identifieringen. Försök igen.",
                "The service restarted during the identification. Try again.",
            ),
        ),
        Some(OrderError::PersonalNumberMismatch) => (
            RFA22,
            Text::new(
                "BankID svarade för ett annat personnummer än det du angav. Identifieringen gäller inte; behandla samtalet med försiktighet.",
                "BankID answered for another personal number than the one you gave. The identification does not count; treat the call with caution.",
            ),
        ),
        Some(OrderError::CancelledByHost) => (
            RFA6,
            Text::new(
                "Du avbröt identifieringen.",
                "You cancelled the identification.",
            ),
        ),
        Some(OrderError::Http(_) | OrderError::Decode) | None => (RFA22, WENT_WRONG),
    };
    ended(caller, agent, "bankid-error")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_HINTS: [HintCode; 22] = [
        HintCode::OutstandingTransaction,
        HintCode::NoClient,
        HintCode::Started,
        HintCode::UserCallConfirm,
        HintCode::UserMrtd,
        HintCode::UserSign,
        HintCode::Processing,
        HintCode::ExpiredTransaction,
        HintCode::CertificateErr,
        HintCode::UserCancel,
        HintCode::Cancelled,
        HintCode::StartFailed,
        HintCode::UserDeclinedCall,
        HintCode::NotSupportedByUserApp,
        HintCode::TransactionRiskBlocked,
        HintCode::UserFace,
        HintCode::UserStepUp,
        HintCode::MrtdVerificationFailed,
        HintCode::FacialRecognitionFailed,
        HintCode::NfcNotSupportedByDevice,
        HintCode::MultipleBankIdsOnDevice,
        HintCode::StepUpFailed,
    ];

    fn g(state: State, hint: Option<HintCode>, error: Option<OrderError>) -> Guidance {
        guidance(state, hint.as_ref(), error.as_ref())
    }

    #[test]
    fn pending_hints_map_to_the_recommended_messages_steps_and_prompts() {
        let p = |h: Option<HintCode>| g(State::Pending, h, None);
        assert_eq!(p(Some(HintCode::OutstandingTransaction)).caller, RFA1);
        assert_eq!(p(Some(HintCode::NoClient)).caller, RFA1);
        assert_eq!(p(None).caller, RFA1);
        assert_eq!(p(Some(HintCode::UserSign)).caller, RFA9);
        assert_eq!(p(Some(HintCode::UserMrtd)).caller, RFA23);
        assert_eq!(p(Some(HintCode::UserCallConfirm)).caller, CALL_CONFIRM);
        assert_eq!(p(Some(HintCode::Started)).caller, RFA21);
        assert_eq!(
            p(Some(HintCode::Unknown("somethingNew".into()))).caller,
            RFA21
        );
        for (h, step, prompt) in [
            (HintCode::OutstandingTransaction, Step::App, "bankid-rfa1"),
            (
                HintCode::UserCallConfirm,
                Step::Confirm,
                "bankid-call-confirm",
            ),
            (HintCode::UserSign, Step::Code, "bankid-rfa9"),
            (HintCode::UserMrtd, Step::Document, "bankid-rfa23"),
            (HintCode::Started, Step::Other, "bankid-rfa21"),
        ] {
            let x = p(Some(h));
            assert_eq!((x.step, x.prompt), (Some(step), prompt));
        }
    }

    #[test]
    fn failures_and_errors_map_to_the_recommended_messages() {
        let f = |h: HintCode| g(State::Failed, Some(h), None).caller;
        assert_eq!(f(HintCode::ExpiredTransaction), RFA8);
        assert_eq!(f(HintCode::CertificateErr), RFA16);
        assert_eq!(f(HintCode::UserCancel), RFA6);
        assert_eq!(f(HintCode::Cancelled), RFA3);
        assert_eq!(f(HintCode::StartFailed), RFA17A);
        assert_eq!(f(HintCode::UserDeclinedCall), CALL_DECLINED);
        assert_eq!(f(HintCode::NotSupportedByUserApp), APP_TOO_OLD);
        assert_eq!(f(HintCode::TransactionRiskBlocked), RISK_BLOCKED);
        assert_eq!(f(HintCode::Unknown("brandNew".into())), RFA22);
        let e = |x: OrderError| g(State::Error, None, Some(x)).caller;
        assert_eq!(e(OrderError::Api(ErrorCode::AlreadyInProgress)), RFA4);
        assert_eq!(e(OrderError::Api(ErrorCode::Maintenance)), RFA5);
        assert_eq!(e(OrderError::Api(ErrorCode::InternalError)), RFA5);
        assert_eq!(e(OrderError::Api(ErrorCode::Unauthorized)), RFA22);
        assert_eq!(e(OrderError::Transport), RFA5);
        assert_eq!(e(OrderError::Deadline), RFA5);
        assert_eq!(
            g(State::Failed, None, Some(OrderError::CancelledByHost)).caller,
            RFA6
        );
    }

    #[test]
    fn only_a_declined_call_is_flagged_as_fraud() {
        for h in ALL_HINTS {
            let x = g(State::Failed, Some(h.clone()), None);
            assert_eq!(x.fraud_warning, h == HintCode::UserDeclinedCall, "{h}");
            assert_eq!(x.prompt, "bankid-failed");
        }
        assert!(g(State::Failed, Some(HintCode::UserDeclinedCall), None)
            .agent
            .sv
            .contains("bedrägeri"));
    }

    #[test]
    fn every_known_code_has_a_swedish_and_an_english_text_for_caller_and_agent() {
        let mut all: Vec<Guidance> = Vec::new();
        for state in [State::Pending, State::Failed] {
            for h in ALL_HINTS {
                all.push(g(state, Some(h), None));
            }
        }
        for code in [
            "alreadyInProgress",
            "invalidParameters",
            "unauthorized",
            "notFound",
            "methodNotAllowed",
            "requestTimeout",
            "unsupportedMediaType",
            "internalError",
            "maintenance",
            "tooManyRequests",
        ] {
            let c = ErrorCode::from(code);
            assert!(!matches!(c, ErrorCode::Unknown(_)), "{code} is known");
            all.push(g(State::Error, None, Some(OrderError::Api(c))));
        }
        for e in [
            OrderError::Http(502),
            OrderError::Decode,
            OrderError::Transport,
            OrderError::Deadline,
            OrderError::Shutdown,
            OrderError::CancelledByHost,
            OrderError::PersonalNumberMismatch,
        ] {
            all.push(g(State::Error, None, Some(e)));
        }
        all.push(g(State::Complete, None, None));
        for x in all {
            for t in [x.caller.text, x.agent] {
                assert!(!t.sv.is_empty() && !t.en.is_empty(), "{x:?}");
                assert_ne!(t.sv, t.en, "{x:?}: both languages, not one copied");
            }
            assert!(x.prompt.starts_with("bankid-"));
        }
    }

    #[test]
    fn each_pending_step_and_ending_has_its_own_words_for_the_agent() {
        let mut seen = std::collections::HashSet::new();
        for h in [
            HintCode::OutstandingTransaction,
            HintCode::UserCallConfirm,
            HintCode::UserSign,
            HintCode::UserMrtd,
        ] {
            assert!(seen.insert(g(State::Pending, Some(h), None).agent.sv));
        }
        for h in [
            HintCode::UserCancel,
            HintCode::ExpiredTransaction,
            HintCode::CertificateErr,
            HintCode::StartFailed,
            HintCode::NotSupportedByUserApp,
            HintCode::TransactionRiskBlocked,
        ] {
            assert!(seen.insert(g(State::Failed, Some(h), None).agent.sv));
        }
        let down = g(State::Error, None, Some(OrderError::Http(503)));
        assert!(down.agent.en.contains("not answering"));
    }

    #[test]
    fn step_up_codes_have_their_own_texts_and_unknown_ones_the_generic_ones() {
        let f = |h: &str| g(State::Failed, Some(HintCode::from(h)), None);
        let failed = f("mrtdVerificationFailed");
        assert_eq!(failed.caller, MRTD_FAILED);
        assert!(failed.caller.text.en.contains("ID document"));
        assert!(failed.agent.sv.contains("ID-handling"));
        assert!(!failed.fraud_warning);
        assert_eq!(f("stepUpFailed").caller, STEP_UP_FAILED);
        assert_eq!(f("nfcNotSupportedByDevice").caller, NFC_UNSUPPORTED);
        assert_eq!(f("someFutureStepUpFailure").caller, RFA22);
        let p = |h: &str| g(State::Pending, Some(HintCode::from(h)), None);
        assert_eq!(p("userFace").caller, FACE);
        assert_eq!(p("userStepUp").prompt, "bankid-step-up");
        assert_eq!(p("userSomethingNew").caller, RFA21);
    }

    #[test]
    fn texts_follow_the_language() {
        assert_eq!(RFA1.text(Language::Sv), "Starta BankID-appen.");
        assert_eq!(RFA1.text(Language::En), "Start your BankID app.");
        assert_eq!(Language::parse("EN-gb"), Some(Language::En));
        assert_eq!(Language::parse("sv"), Some(Language::Sv));
        assert_eq!(Language::parse("de"), None);
    }
}
