//! The agent-visible result line: `result_success` with `{pnr}` (`YYMMDD-NNNN`, the form
//! agents see), `{pnr_masked}` (`YYMMDD-XXXX`) and `{name}` (BankID's `user.name`) filled in.
//! Cally Square shows it on the agent's call as the `__BANKID_RESULT` variable.

use crate::personnummer::Personnummer;

/// The success line for `pnr` (the number asked for, which BankID confirmed) and `name`.
/// `{name}` goes last, so a name that looks like a placeholder stays as it is.
pub fn success(template: &str, pnr: &Personnummer, name: &str) -> String {
    template
        .replace("{pnr_masked}", &pnr.masked())
        .replace("{pnr}", &pnr.display())
        .replace("{name}", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_nothing_else_changes() {
        let p = Personnummer::parse("198503121116").unwrap();
        assert_eq!(
            success(crate::config::DEFAULT_RESULT_SUCCESS, &p, "Anna Lindqvist"),
            "Identification successful for social security number 850312-1116"
        );
        assert_eq!(
            success("{name} ({pnr_masked}) {pnr} {other}", &p, "Anna"),
            "Anna (850312-XXXX) 850312-1116 {other}"
        );
        assert_eq!(success("{name}", &p, "{pnr}"), "{pnr}");
    }
}
