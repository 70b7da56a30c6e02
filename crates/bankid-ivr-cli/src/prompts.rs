//! The audio prompts the flows and the FastAGI server play, with their Swedish and English
//! texts (recorded as `sv/NAME.wav` / `en/NAME.wav` in the Asterisk sounds directory).

use bankid::messages::{Language, Text};

/// (file name, its text in both languages).
pub const PROMPTS: &[(&str, Text)] = &[
    ("bankid-welcome", Text::new("Välkommen till kundtjänst.", "Welcome to customer service.")),
    ("bankid-offer", Text::new("För att identifiera dig med BankID innan du kopplas fram, tryck 1. Annars, tryck 2.", "To identify with BankID before you are connected, press 1. Otherwise, press 2.")),
    ("bankid-intro", Text::new("Du ska nu identifiera dig med Mobilt BankID.", "You will now identify yourself with Mobile BankID.")),
    ("bankid-enter-pnr", Text::new("Knappa in ditt personnummer med tolv siffror, år, månad, dag och de fyra sista siffrorna.", "Key in your twelve-digit personal identity number: year, month, day and the last four digits.")),
    ("bankid-invalid-entry", Text::new("Vi uppfattade inte ditt personnummer.", "We did not get your personal identity number.")),
    ("bankid-invalid-pnr", Text::new("Personnumret är inte giltigt. Försök igen.", "That personal identity number is not valid. Please try again.")),
    ("bankid-open-app", Text::new("Öppna Mobilt BankID och bekräfta att du pratar med oss.", "Open Mobile BankID and confirm that you are on a call with us.")),
    ("bankid-rfa1", Text::new("Starta BankID-appen.", "Start your BankID app.")),
    ("bankid-call-confirm", Text::new("Bekräfta i BankID-appen att du pratar med oss.", "Confirm in the BankID app that you are on a call with us.")),
    ("bankid-rfa9", Text::new("Skriv in din säkerhetskod i BankID-appen och välj Identifiera.", "Enter your security code in the BankID app and select Identify.")),
    ("bankid-rfa23", Text::new("Fotografera och läs av din ID-handling med BankID-appen.", "Take a photo of, and scan, your ID document with the BankID app.")),
    ("bankid-rfa21", Text::new("En identifiering pågår.", "An identification is in progress.")),
    ("bankid-face", Text::new("Följ instruktionerna i BankID-appen för att kontrollera ditt ansikte.", "Follow the instructions in the BankID app to check your face.")),
    ("bankid-step-up", Text::new("Följ instruktionerna i BankID-appen för den extra kontrollen.", "Follow the instructions in the BankID app for the extra check.")),
    ("bankid-call-notice", Text::new("BankID-appen kommer att fråga om du pratar med {company} i telefon. Svara ja bara om du själv ringt oss.", "The BankID app will ask whether you are on a call with {company}. Only answer yes if you called us yourself.")),
    ("bankid-have-id-document", Text::new("Ha ditt pass eller nationella id-kort till hands. BankID-appen ber dig läsa av det med telefonen.", "Have your passport or national ID card at hand. The BankID app will ask you to scan it with your phone.")),
    ("bankid-sign-notice", Text::new("Du kommer nu att få godkänna en text i BankID-appen. Läs den noga innan du skriver under.", "You will now be asked to approve a text in the BankID app. Read it carefully before you sign.")),
    ("bankid-success", Text::new("Tack, du är nu identifierad. Du kopplas till en handläggare.", "Thank you, you are now identified. We are connecting you to an agent.")),
    ("bankid-failed", Text::new("Identifieringen misslyckades. Du kopplas till en handläggare.", "The identification failed. We are connecting you to an agent.")),
    ("bankid-error", Text::new("Något gick fel med BankID. Du kopplas till en handläggare.", "Something went wrong with BankID. We are connecting you to an agent.")),
    ("bankid-blocked", Text::new("Vi kan inte identifiera dig med BankID just nu. Du kopplas till en handläggare.", "We cannot identify you with BankID right now. We are connecting you to an agent.")),
    ("bankid-done", Text::new("Tack. Du kopplas nu till en handläggare.", "Thank you. We are now connecting you to an agent.")),
];

/// The text of a prompt, or `None` for an audio file we do not ship.
pub fn text(name: &str, lang: Language) -> Option<&'static str> {
    PROMPTS
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, text)| text.get(lang))
}

/// A prompt's text with `{company}` filled in (the configured `company_name`, or "oss"/"us"):
/// what to record for the site's audio file, and what `flow run` prints.
pub fn script(name: &str, lang: Language, company: &str) -> Option<String> {
    text(name, lang).map(|t| t.replace("{company}", company))
}

/// The prompts to play before an order starts, in order: what the app will ask (the call
/// confirmation with the company's name), the signing notice, and the ID card reminder. Only
/// when the order signs or has a requirement, so a plain identification sounds as before.
pub fn before_start(sign: bool, pin_code: bool, id_document: bool) -> Vec<&'static str> {
    let mut out = Vec::new();
    if sign || pin_code || id_document {
        out.push("bankid-call-notice");
    }
    if sign {
        out.push("bankid-sign-notice");
    }
    if id_document {
        out.push("bankid-have-id-document");
    }
    out
}

/// The prompt to play while an order is pending with `hint` as the C ABI spells it (empty: not
/// yet at BankID), from the library's one table ([`bankid::messages::guidance`]).
pub fn for_pending_hint(hint: &str) -> &'static str {
    let hint = (!hint.is_empty()).then(|| bankid::rp::HintCode::from(hint));
    bankid::messages::guidance(bankid::State::Pending, hint.as_ref(), None).prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notices_name_the_company_and_the_id_card() {
        assert_eq!(before_start(false, false, false), Vec::<&str>::new());
        assert_eq!(
            before_start(true, false, true),
            [
                "bankid-call-notice",
                "bankid-sign-notice",
                "bankid-have-id-document"
            ]
        );
        let sv = script("bankid-call-notice", Language::Sv, "Kundtjänst AB").unwrap();
        assert!(sv.contains("pratar med Kundtjänst AB"), "{sv}");
        let en = script("bankid-have-id-document", Language::En, "us").unwrap();
        assert!(en.contains("passport or national ID card"), "{en}");
        for p in before_start(true, true, true) {
            for lang in [Language::Sv, Language::En] {
                assert!(text(p, lang).is_some_and(|t| !t.is_empty()), "{p}");
            }
        }
    }

    #[test]
    fn every_pending_prompt_the_library_names_is_shipped_in_both_languages() {
        for hint in [
            "",
            "outstandingTransaction",
            "noClient",
            "started",
            "userCallConfirm",
            "userSign",
            "userMrtd",
            "userFace",
            "userStepUp",
            "somethingNew",
        ] {
            let p = for_pending_hint(hint);
            for lang in [Language::Sv, Language::En] {
                assert!(text(p, lang).is_some_and(|t| !t.is_empty()), "{p} {lang:?}");
            }
        }
        assert_eq!(text("no-such-file", Language::Sv), None);
    }
}
