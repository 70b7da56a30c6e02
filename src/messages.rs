//! What to tell the caller or agent: BankID's recommended user messages (RFA) in Swedish and
//! English, with our own texts for the phone hint codes that have none.

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

/// A message: BankID's RFA number where there is one, and both texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// `RFA1`, `RFA21`, … or `BIVR-…` for our own texts.
    pub id: &'static str,
    /// Swedish.
    pub sv: &'static str,
    /// English.
    pub en: &'static str,
}

impl Message {
    /// The text in `lang`.
    pub fn text(&self, lang: Language) -> &'static str {
        match lang {
            Language::Sv => self.sv,
            Language::En => self.en,
        }
    }
}

macro_rules! msg {
    ($name:ident, $id:literal, $sv:literal, $en:literal) => {
        #[doc = concat!($id, ": ", $en)]
        pub const $name: Message = Message {
            id: $id,
            sv: $sv,
            en: $en,
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
    IDENTIFIED,
    "BIVR-IDENTIFIED",
    "Du är nu identifierad.",
    "You are now identified."
);

/// The message while an order is pending with `hint_code` (None: not yet sent to BankID).
pub fn pending(hint_code: Option<&str>) -> Message {
    match hint_code {
        None | Some("outstandingTransaction") | Some("noClient") => RFA1,
        Some("userSign") => RFA9,
        Some("userMrtd") => RFA23,
        Some("userCallConfirm") => CALL_CONFIRM,
        Some(_) => RFA21,
    }
}

/// The message for a `failed` order with `hint_code`.
pub fn failed(hint_code: &str) -> Message {
    match hint_code {
        "expiredTransaction" => RFA8,
        "certificateErr" => RFA16,
        "userCancel" => RFA6,
        "cancelled" => RFA3,
        "startFailed" => RFA17A,
        "userDeclinedCall" => CALL_DECLINED,
        "notSupportedByUserApp" => APP_TOO_OLD,
        "transactionRiskBlocked" => RISK_BLOCKED,
        _ => RFA22,
    }
}

/// The message for an order that ended in an error (`error_code` is BankID's errorCode or a
/// local kind such as `transport` or `deadline`).
pub fn error(error_code: &str) -> Message {
    match error_code {
        "alreadyInProgress" => RFA4,
        "requestTimeout" | "internalError" | "maintenance" | "tooManyRequests" | "transport"
        | "deadline" => RFA5,
        _ => RFA22,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_hints_map_to_the_recommended_messages() {
        assert_eq!(pending(Some("outstandingTransaction")), RFA1);
        assert_eq!(pending(Some("noClient")), RFA1);
        assert_eq!(pending(None), RFA1);
        assert_eq!(pending(Some("userSign")), RFA9);
        assert_eq!(pending(Some("userMrtd")), RFA23);
        assert_eq!(pending(Some("userCallConfirm")), CALL_CONFIRM);
        assert_eq!(pending(Some("started")), RFA21);
        assert_eq!(pending(Some("somethingNew")), RFA21);
    }

    #[test]
    fn failures_and_errors_map_to_the_recommended_messages() {
        assert_eq!(failed("expiredTransaction"), RFA8);
        assert_eq!(failed("certificateErr"), RFA16);
        assert_eq!(failed("userCancel"), RFA6);
        assert_eq!(failed("cancelled"), RFA3);
        assert_eq!(failed("startFailed"), RFA17A);
        assert_eq!(failed("userDeclinedCall"), CALL_DECLINED);
        assert_eq!(failed("notSupportedByUserApp"), APP_TOO_OLD);
        assert_eq!(failed("transactionRiskBlocked"), RISK_BLOCKED);
        assert_eq!(failed("brandNew"), RFA22);
        assert_eq!(error("alreadyInProgress"), RFA4);
        assert_eq!(error("maintenance"), RFA5);
        assert_eq!(error("internalError"), RFA5);
        assert_eq!(error("unauthorized"), RFA22);
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
