//! Scenarios: what the simulated user does with an order, step by step, over time.
//! The built-in test persons, and the default scenario for everybody else.

use serde::{Deserialize, Serialize};

/// One pending step: BankID answers `pending` with `hint_code` for `ms` milliseconds
/// (before the speed factor is applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The `hintCode` collect returns during this step.
    pub hint_code: String,
    /// How long the step lasts, in scenario milliseconds.
    pub ms: u64,
}

/// What a simulated user does with an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scenario {
    /// Pending steps, in order.
    pub steps: Vec<Step>,
    /// After the last step: `complete`, or the `hintCode` of a `failed` status
    /// (`userCancel`, `userDeclinedCall`, `certificateErr`, …). `expiredTransaction` means
    /// nobody finishes: the last step lasts until the order lifetime runs out.
    pub outcome: String,
}

fn step(hint_code: &str, ms: u64) -> Step {
    Step {
        hint_code: hint_code.to_string(),
        ms,
    }
}

impl Scenario {
    /// The default phone order: the app picks it up, the user confirms the call, then
    /// enters the security code.
    pub fn phone_default() -> Scenario {
        Scenario::phone_ending_in("complete")
    }

    /// The default `auth`/`sign` order.
    pub fn web_default() -> Scenario {
        Scenario {
            steps: vec![step("outstandingTransaction", 2000), step("userSign", 3000)],
            outcome: "complete".into(),
        }
    }

    fn phone_ending_in(outcome: &str) -> Scenario {
        Scenario {
            steps: vec![
                step("outstandingTransaction", 2000),
                step("userCallConfirm", 3000),
                step("userSign", 3000),
            ],
            outcome: outcome.into(),
        }
    }

    /// Whether this scenario ends in `complete`.
    pub fn completes(&self) -> bool {
        self.outcome == "complete"
    }

    /// The scenario as the order's requirements change it. `mrtd`: a `userMrtd` step (the
    /// caller scans the passport or ID card) before the security code, and for the test person
    /// whose document check fails, the order ends there in `mrtdVerificationFailed`.
    /// `pin_code`: a `userSign` step (the security code, never biometrics) if there is none.
    /// Only a scenario that would complete changes; one that already has the step keeps it.
    pub fn with_requirements(mut self, pnr: Option<&str>, mrtd: bool, pin_code: bool) -> Scenario {
        if !self.completes() {
            return self;
        }
        let sign_at = self.steps.iter().position(|s| s.hint_code == "userSign");
        if pin_code && sign_at.is_none() {
            self.steps.push(step("userSign", 3000));
        }
        if mrtd && !self.steps.iter().any(|s| s.hint_code == "userMrtd") {
            let at = self
                .steps
                .iter()
                .position(|s| s.hint_code == "userSign")
                .unwrap_or(self.steps.len());
            self.steps.insert(at, step("userMrtd", 3000));
        }
        if mrtd
            && pnr
                .and_then(test_person)
                .is_some_and(|p| p.outcome == MRTD_FAILS)
        {
            let at = self
                .steps
                .iter()
                .position(|s| s.hint_code == "userMrtd")
                .map_or(self.steps.len(), |i| i + 1);
            self.steps.truncate(at);
            self.outcome = "mrtdVerificationFailed".into();
        }
        self
    }
}

/// The outcome key of the test person whose ID document check fails.
pub const MRTD_FAILS: &str = "mrtdFails";

/// A built-in test person.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestPerson {
    /// 12-digit personal number (valid check digit).
    pub personal_number: &'static str,
    /// Given name.
    pub given_name: &'static str,
    /// Surname.
    pub surname: &'static str,
    /// What their orders do, in words.
    pub behaviour: &'static str,
    /// The outcome key: `complete`, a failed hintCode, or `slow`.
    pub outcome: &'static str,
}

/// The documented test persons. Any other valid personal number completes with the default
/// scenario and the name "Test Testsson".
pub const TEST_PERSONS: &[TestPerson] = &[
    TestPerson {
        personal_number: "198503121116",
        given_name: "Anna",
        surname: "Lindqvist",
        behaviour: "identifies successfully",
        outcome: "complete",
    },
    TestPerson {
        personal_number: "196801642395",
        given_name: "Sven",
        surname: "Samordnare",
        behaviour: "identifies successfully (coordination number)",
        outcome: "complete",
    },
    TestPerson {
        personal_number: "199105212220",
        given_name: "Bengt",
        surname: "Karlsson",
        behaviour: "presses Cancel in the app",
        outcome: "userCancel",
    },
    TestPerson {
        personal_number: "197709083336",
        given_name: "Cecilia",
        surname: "Holm",
        behaviour: "says she is not on a call with you (possible fraud)",
        outcome: "userDeclinedCall",
    },
    TestPerson {
        personal_number: "196601014449",
        given_name: "David",
        surname: "Ek",
        behaviour: "never opens the app: the order expires",
        outcome: "expiredTransaction",
    },
    TestPerson {
        personal_number: "200002295558",
        given_name: "Eva",
        surname: "Sandberg",
        behaviour: "has a blocked BankID",
        outcome: "certificateErr",
    },
    TestPerson {
        personal_number: "198811116667",
        given_name: "Fredrik",
        surname: "Nyström",
        behaviour: "has no BankID app: the start window passes",
        outcome: "startFailed",
    },
    TestPerson {
        personal_number: "199506307777",
        given_name: "Greta",
        surname: "Ahlberg",
        behaviour: "has an app too old for phone orders",
        outcome: "notSupportedByUserApp",
    },
    TestPerson {
        personal_number: "199307079195",
        given_name: "Hugo",
        surname: "Berg",
        behaviour: "is blocked by BankID as too risky",
        outcome: "transactionRiskBlocked",
    },
    TestPerson {
        personal_number: "197904128886",
        given_name: "Jonas",
        surname: "Passlös",
        behaviour: "identifies, but when the ID document check is required (requirement.mrtd) it fails: mrtdVerificationFailed",
        outcome: MRTD_FAILS,
    },
    TestPerson {
        personal_number: "197204158880",
        given_name: "Ingrid",
        surname: "Långsam",
        behaviour: "is slow: 20 s on each step, then identifies",
        outcome: "slow",
    },
];

/// The test person with this number, if any.
pub fn test_person(pnr: &str) -> Option<&'static TestPerson> {
    TEST_PERSONS.iter().find(|p| p.personal_number == pnr)
}

/// The scenario for a person's phone (`phone == true`) or web order, before any override.
pub fn builtin(pnr: Option<&str>, phone: bool) -> Scenario {
    let person = pnr.and_then(test_person);
    let base = |outcome: &str| {
        if phone {
            Scenario::phone_ending_in(outcome)
        } else {
            Scenario {
                outcome: outcome.into(),
                ..Scenario::web_default()
            }
        }
    };
    match person.map(|p| p.outcome) {
        None | Some("complete") | Some(MRTD_FAILS) => base("complete"),
        Some("slow") => {
            let mut s = base("complete");
            s.steps.iter_mut().for_each(|st| st.ms = 20_000);
            s
        }
        Some("expiredTransaction") => Scenario {
            steps: vec![step("outstandingTransaction", 1000), step("noClient", 1000)],
            outcome: "expiredTransaction".into(),
        },
        Some("startFailed") => Scenario {
            steps: vec![step("outstandingTransaction", 3000)],
            outcome: "startFailed".into(),
        },
        Some("notSupportedByUserApp") | Some("transactionRiskBlocked") => Scenario {
            steps: vec![step("outstandingTransaction", 2000)],
            outcome: person.map(|p| p.outcome).unwrap_or_default().into(),
        },
        Some("userDeclinedCall") if phone => Scenario {
            steps: vec![
                step("outstandingTransaction", 2000),
                step("userCallConfirm", 2000),
            ],
            outcome: "userDeclinedCall".into(),
        },
        Some(other) => base(other),
    }
}

/// Given and family name for a completed order.
pub fn names(pnr: &str) -> (&'static str, &'static str) {
    test_person(pnr)
        .map(|p| (p.given_name, p.surname))
        .unwrap_or(("Test", "Testsson"))
}

/// A 12-digit personal number check as BankID does it: digits, a real date (day + 60 for
/// coordination numbers) and the Luhn check digit. Returns what is wrong.
pub fn check_personal_number(pnr: &str) -> Result<(), &'static str> {
    if pnr.len() != 12 || !pnr.bytes().all(|b| b.is_ascii_digit()) {
        return Err("personalNumber must be 12 digits");
    }
    let n = |r: std::ops::Range<usize>| pnr[r].parse::<u32>().unwrap_or(0);
    let (year, month, mut day) = (n(0..4), n(4..6), n(6..8));
    if day > 60 {
        day -= 60;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if !(1800..=2200).contains(&year) || day == 0 || day > days {
        return Err("personalNumber is not a valid date");
    }
    let sum: u32 = pnr.as_bytes()[2..11]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let p = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    if (10 - sum % 10) % 10 != u32::from(pnr.as_bytes()[11] - b'0') {
        return Err("personalNumber has an invalid check digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_person_has_a_valid_number() {
        for p in TEST_PERSONS {
            assert_eq!(
                check_personal_number(p.personal_number),
                Ok(()),
                "{}",
                p.given_name
            );
        }
    }

    #[test]
    fn requirements_add_their_steps_and_the_document_check_can_fail() {
        let hints = |s: &Scenario| {
            s.steps
                .iter()
                .map(|x| x.hint_code.clone())
                .collect::<Vec<_>>()
        };
        let anna = Some("198503121116");
        let s = builtin(anna, true).with_requirements(anna, true, false);
        assert_eq!(
            hints(&s),
            [
                "outstandingTransaction",
                "userCallConfirm",
                "userMrtd",
                "userSign"
            ]
        );
        assert!(s.completes());
        let jonas = Some("197904128886");
        let s = builtin(jonas, true).with_requirements(jonas, true, false);
        assert_eq!(
            hints(&s),
            ["outstandingTransaction", "userCallConfirm", "userMrtd"]
        );
        assert_eq!(s.outcome, "mrtdVerificationFailed");
        assert!(builtin(jonas, true)
            .with_requirements(jonas, false, true)
            .completes());
        let quick = Scenario {
            steps: vec![step("outstandingTransaction", 10)],
            outcome: "complete".into(),
        };
        assert_eq!(
            hints(&quick.clone().with_requirements(None, false, true)),
            ["outstandingTransaction", "userSign"]
        );
        let cancel = builtin(Some("199105212220"), true);
        assert_eq!(cancel.clone().with_requirements(None, true, true), cancel);
    }

    #[test]
    fn checks_reject_each_kind_of_mistake() {
        assert!(check_personal_number("19850312111").is_err());
        assert_eq!(
            check_personal_number("198513121116"),
            Err("personalNumber is not a valid date")
        );
        assert_eq!(
            check_personal_number("198503121117"),
            Err("personalNumber has an invalid check digit")
        );
        assert_eq!(
            check_personal_number("19850312111x"),
            Err("personalNumber must be 12 digits")
        );
    }
}
