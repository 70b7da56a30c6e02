//! The fault matrix: every fault the simulator can produce × every endpoint the engine calls ×
//! where it strikes, against the real engine over mutual TLS. For each cell: the order's final
//! state and code, that it is final by the local deadline, what is left pending at BankID, and
//! whether the same person can start again at once.
//!
//! The expectations are BankID's rules (`../shared/bankid-rp-v6.md` §4–5) written as a table in
//! [`expect`]; `docs/faults.md` is generated from it and checked here, so the document can never
//! say something the test does not prove. After changing a rule:
//! `BANKID_BLESS_FAULTS=1 cargo test --test faults` rewrites the document.

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bankid::order::{Engine, OrderError, StartOptions, State};
use bankid::rp::ErrorCode;
use bankid::Personnummer;
use bankid_sim::{Fault, FaultKind, Scenario, Step};

const PERSON: &str = "198503121116";
/// Local deadline of every order in the matrix.
const ORDER_TIMEOUT: Duration = Duration::from_secs(3);
/// Per-request timeout; the `delay` fault answers after twice this.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(300);
const DELAY_MS: u64 = 600;
/// "Repeatedly": more strikes than any order can use up.
const REPEATED: u32 = 1000;

/// A fault as the matrix names it: the simulator's kind and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    Maintenance,
    TooMany1,
    TooMany0,
    TooManyHuge,
    RetryAfter1,
    InternalError,
    RequestTimeout,
    Unauthorized,
    UnknownErrorCode,
    Html403,
    Html502,
    Html503,
    Html429,
    MalformedJson,
    Delay,
    Drop,
    UnknownStatus,
    UnknownHintCode,
    ExtraFields,
    NullFields,
    OtherPerson,
    BadPersonalNumber,
    MissingPersonalNumber,
}

const ALL: [F; 23] = [
    F::Maintenance,
    F::TooMany1,
    F::TooMany0,
    F::TooManyHuge,
    F::RetryAfter1,
    F::InternalError,
    F::RequestTimeout,
    F::Unauthorized,
    F::UnknownErrorCode,
    F::Html403,
    F::Html502,
    F::Html503,
    F::Html429,
    F::MalformedJson,
    F::Delay,
    F::Drop,
    F::UnknownStatus,
    F::UnknownHintCode,
    F::ExtraFields,
    F::NullFields,
    F::OtherPerson,
    F::BadPersonalNumber,
    F::MissingPersonalNumber,
];

impl F {
    fn label(self) -> &'static str {
        match self {
            F::Maintenance => "`maintenance` (503 JSON)",
            F::TooMany1 => "`tooManyRequests`, `RateLimit-Reset: 1`",
            F::TooMany0 => "`tooManyRequests`, `RateLimit-Reset: 0`",
            F::TooManyHuge => "`tooManyRequests`, `RateLimit-Reset: 2⁶⁴−1`",
            F::RetryAfter1 => "`tooManyRequests`, `Retry-After: 1`",
            F::InternalError => "`internalError` (500)",
            F::RequestTimeout => "`requestTimeout` (408)",
            F::Unauthorized => "`unauthorized` (401)",
            F::UnknownErrorCode => "unknown `errorCode` (400)",
            F::Html403 => "HTML 403 (a proxy)",
            F::Html502 => "HTML 502 (a proxy)",
            F::Html503 => "HTML 503 (a proxy)",
            F::Html429 => "HTML 429 (a proxy)",
            F::MalformedJson => "200, body not JSON",
            F::Delay => "answer after 2× the request timeout",
            F::Drop => "connection closed, no answer",
            F::UnknownStatus => "unknown `status`",
            F::UnknownHintCode => "unknown pending `hintCode`",
            F::ExtraFields => "unknown extra fields",
            F::NullFields => "`null` optional fields in `completionData`",
            F::OtherPerson => "`complete` for another personal number",
            F::BadPersonalNumber => "`complete`, `personalNumber` non-ASCII",
            F::MissingPersonalNumber => "`complete` without `personalNumber`",
        }
    }

    /// A collect answer shape (the simulator rewrites a real collect answer).
    fn is_shape(self) -> bool {
        matches!(
            self,
            F::UnknownStatus
                | F::UnknownHintCode
                | F::ExtraFields
                | F::NullFields
                | F::OtherPerson
                | F::BadPersonalNumber
                | F::MissingPersonalNumber
        )
    }

    fn fault(self, count: u32) -> Fault {
        let f = |k| Fault::new(k, count);
        match self {
            F::Maintenance => f(FaultKind::Maintenance),
            F::TooMany1 => f(FaultKind::TooManyRequests).reset_s(1),
            F::TooMany0 => f(FaultKind::TooManyRequests).reset_s(0),
            F::TooManyHuge => f(FaultKind::TooManyRequests).reset_s(u64::MAX),
            F::RetryAfter1 => f(FaultKind::TooManyRequests).retry_after_s(1),
            F::InternalError => f(FaultKind::InternalError),
            F::RequestTimeout => f(FaultKind::RequestTimeout),
            F::Unauthorized => f(FaultKind::Unauthorized),
            F::UnknownErrorCode => f(FaultKind::UnknownErrorCode),
            F::Html403 => f(FaultKind::Html403),
            F::Html502 => f(FaultKind::Html502),
            F::Html503 => f(FaultKind::Html503),
            F::Html429 => f(FaultKind::Html429),
            F::MalformedJson => f(FaultKind::MalformedJson),
            F::Delay => f(FaultKind::Delay).delay(DELAY_MS),
            F::Drop => f(FaultKind::Drop),
            F::UnknownStatus => f(FaultKind::UnknownStatus),
            F::UnknownHintCode => f(FaultKind::UnknownHintCode),
            F::ExtraFields => f(FaultKind::ExtraFields),
            F::NullFields => f(FaultKind::NullFields),
            F::OtherPerson => f(FaultKind::OtherPerson),
            F::BadPersonalNumber => f(FaultKind::BadPersonalNumber),
            F::MissingPersonalNumber => f(FaultKind::MissingPersonalNumber),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ep {
    PhoneAuth,
    Collect,
    Cancel,
}

impl Ep {
    fn path(self) -> &'static str {
        match self {
            Ep::PhoneAuth => "phone/auth",
            Ep::Collect => "collect",
            Ep::Cancel => "cancel",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// The first request to the endpoint, once.
    First,
    /// The third request to the endpoint, once (collect: mid-order).
    Mid,
    /// Every request to the endpoint.
    Repeatedly,
}

impl When {
    fn label(self) -> &'static str {
        match self {
            When::First => "first request",
            When::Mid => "3rd request",
            When::Repeatedly => "every request",
        }
    }
}

/// What a cell must show.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expect {
    state: State,
    /// The error code (state Error), the local kind (cancelled here), or `None`.
    code: Option<&'static str>,
    /// An order left pending at BankID after everything settled.
    left_pending: bool,
    /// How a new start for the same person ends right after (faults cleared).
    restart: Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    Identified,
    AlreadyInProgress,
}

fn ok() -> Expect {
    Expect {
        state: State::Complete,
        code: None,
        left_pending: false,
        restart: Restart::Identified,
    }
}

fn error(code: &'static str) -> Expect {
    Expect {
        state: State::Error,
        code: Some(code),
        left_pending: false,
        restart: Restart::Identified,
    }
}

/// The rules. `None`: the cell does not exist (an answer shape on another endpoint than
/// collect; "mid" on endpoints called once per order).
fn expect(f: F, ep: Ep, when: When) -> Option<Expect> {
    use F::*;
    if f.is_shape() && ep != Ep::Collect {
        return None;
    }
    // "Mid" exists only where an order makes several requests, and not for the shapes that
    // strike the one `complete` answer.
    let complete_only = matches!(
        f,
        NullFields | OtherPerson | BadPersonalNumber | MissingPersonalNumber
    );
    if when == When::Mid && (ep != Ep::Collect || complete_only) {
        return None;
    }
    let once = when != When::Repeatedly;
    Some(match ep {
        // A start is never blindly repeated: only BankID's own JSON overload answers (nothing
        // was created) are retried, within the deadline and at most 5 times.
        Ep::PhoneAuth => match f {
            Maintenance if once => ok(),
            Maintenance => error("maintenance"),
            TooMany1 | TooMany0 | RetryAfter1 if once => ok(),
            // Asks for longer than the order has left: ended at once, not at the deadline.
            TooMany1 | TooMany0 | RetryAfter1 | TooManyHuge => error("tooManyRequests"),
            InternalError => error("internalError"),
            RequestTimeout => error("requestTimeout"),
            Unauthorized => error("unauthorized"),
            UnknownErrorCode => error("someFutureError"),
            Html403 => error("http-403"),
            Html502 => error("http-502"),
            Html503 => error("http-503"),
            Html429 => error("http-429"),
            MalformedJson => error("decode"),
            Drop => error("transport"),
            // The simulator holds a delayed request before handling it, and drops it with the
            // connection: nothing was created (see the note below the table).
            Delay => error("transport"),
            _ => unreachable!(),
        },
        // A collect may be repeated; an answer that says the order failed or errs ends it, and
        // an order that ends here is cancelled at BankID.
        Ep::Collect => match f {
            Maintenance | TooMany1 | TooMany0 | RetryAfter1 | Html503 | Html429 if once => ok(),
            Maintenance => error("maintenance"),
            TooMany1 | TooMany0 | RetryAfter1 | TooManyHuge => error("tooManyRequests"),
            Html503 => error("http-503"),
            Html429 => error("http-429"),
            InternalError => error("internalError"),
            RequestTimeout => error("requestTimeout"),
            Unauthorized => error("unauthorized"),
            UnknownErrorCode => error("someFutureError"),
            Html403 => error("http-403"),
            Html502 => error("http-502"),
            MalformedJson | Delay | Drop | UnknownStatus | UnknownHintCode if once => ok(),
            MalformedJson | Delay | Drop | UnknownStatus | UnknownHintCode => error("deadline"),
            ExtraFields | NullFields => ok(),
            // Complete at BankID, but not for the person asked for: no identification.
            OtherPerson | BadPersonalNumber | MissingPersonalNumber => {
                error("personalNumberMismatch")
            }
        },
        // The host releases a pending order; the cancel is retried for 3 s.
        Ep::Cancel => {
            let cancelled = Expect {
                state: State::Failed,
                code: Some("cancelledByHost"),
                left_pending: false,
                restart: Restart::Identified,
            };
            if once {
                cancelled
            } else {
                Expect {
                    left_pending: true,
                    restart: Restart::AlreadyInProgress,
                    ..cancelled
                }
            }
        }
    })
}

fn cells() -> Vec<(F, Ep, When, Expect)> {
    let mut v = Vec::new();
    for ep in [Ep::PhoneAuth, Ep::Collect, Ep::Cancel] {
        for f in ALL {
            for when in [When::First, When::Mid, When::Repeatedly] {
                if let Some(e) = expect(f, ep, when) {
                    v.push((f, ep, when, e));
                }
            }
        }
    }
    v
}

/// What one cell showed.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    state: State,
    code: Option<String>,
    final_in: Duration,
    left_pending: bool,
    restart: Restart,
}

fn run_cell(f: F, ep: Ep, when: When) -> Seen {
    // At a tenth of real time: results stay collectable 18 s and orders live 10 min at
    // BankID, so only the engine's deadline and cancels end them.
    let env = common::sim_with(bankid_sim::SimConfig {
        speed: 0.1,
        order_lifetime: Duration::from_secs(6000),
        ..Default::default()
    });
    let mut cfg = env.config();
    cfg.order_timeout = ORDER_TIMEOUT;
    cfg.request_timeout = REQUEST_TIMEOUT;
    // The matrix is about BankID's rules; records have their own tests (tests/audit.rs). 43
    // cells start at once, and 43 writers migrating 43 SQLite files on a 2-core machine made
    // starts miss the cells' bounds.
    cfg.audit.database = None;
    let engine = Engine::new(cfg).unwrap();
    let pnr = Personnummer::parse(PERSON).unwrap();
    let count = if when == When::Repeatedly {
        REPEATED
    } else {
        1
    };
    let skip = if when == When::Mid { 2 } else { 0 };
    // 450 ms to complete (so the 3rd collect is still pending), or pending long enough for the
    // host to give up on it.
    let step = |hint: &str, ms: u64| Step {
        hint_code: hint.into(),
        ms,
    };
    let steps = if ep == Ep::Cancel {
        vec![step("userCallConfirm", 1_000_000)]
    } else {
        ["outstandingTransaction", "userCallConfirm", "userSign"]
            .map(|h| step(h, 1500))
            .to_vec()
    };
    env.lab.set_scenario(
        PERSON,
        Scenario {
            steps,
            outcome: "complete".into(),
        },
    );
    env.lab
        .inject_fault(f.fault(count).skip(skip).on(ep.path()));
    let t0 = Instant::now();
    let id = engine.start(&pnr, StartOptions::default()).unwrap();
    if ep == Ep::Cancel {
        while engine.poll(id).unwrap().order_ref.is_none() {
            // Generous: 43 cells, each with its own simulator, run at once.
            assert!(t0.elapsed() < Duration::from_secs(30), "never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        engine.cancel(id).unwrap();
    }
    let v = engine.wait(id, ORDER_TIMEOUT * 3).unwrap();
    let final_in = t0.elapsed();
    engine.release(id).unwrap();
    // Let every cancel run its course (it retries for up to 3 s) before judging BankID's side.
    let settle = Instant::now() + Duration::from_secs(4);
    while env.lab.orders().iter().any(|o| o.status == "pending") && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left_pending = env.lab.orders().iter().any(|o| o.status == "pending");
    env.lab.clear_faults();
    env.lab.clear_scenario(PERSON);
    let again = engine.start(&pnr, StartOptions::default()).unwrap();
    let a = engine.wait(again, Duration::from_secs(5)).unwrap();
    let restart = match (a.state, a.error) {
        (State::Complete, _) => Restart::Identified,
        (State::Error, Some(OrderError::Api(ErrorCode::AlreadyInProgress))) => {
            Restart::AlreadyInProgress
        }
        other => panic!("{f:?} on {ep:?} {when:?}: the new start ended {other:?}"),
    };
    Seen {
        state: v.state,
        code: match v.state {
            State::Complete => None,
            _ => v.error.map(|e| e.to_string()),
        },
        final_in,
        left_pending,
        restart,
    }
}

#[test]
fn every_fault_on_every_endpoint_ends_as_bankids_rules_say() {
    let cells = cells();
    let mut failures = Vec::new();
    // Each cell has its own simulator; run a handful at a time.
    for chunk in cells.chunks(43) {
        let seen: Vec<Seen> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(f, ep, when, _)| s.spawn(move || run_cell(*f, *ep, *when)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for ((f, ep, when, e), got) in chunk.iter().zip(seen) {
            let bound = ORDER_TIMEOUT + REQUEST_TIMEOUT + Duration::from_secs(1);
            let ok = got.state == e.state
                && got.code.as_deref() == e.code
                && got.left_pending == e.left_pending
                && got.restart == e.restart
                && got.final_in <= bound;
            if !ok {
                failures.push(format!(
                    "{} on {} ({}): expected {e:?}, got {got:?}",
                    f.label(),
                    ep.path(),
                    when.label()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cells differ:\n{}",
        failures.len(),
        cells.len(),
        failures.join("\n")
    );
}

fn document() -> String {
    let mut md = String::from(
        "# What the engine does with every fault BankID (or something in between) can produce\n\n\
         Generated from `tests/faults.rs`, which proves every row against `bankid-sim` over mutual \
         TLS (CI fails if this file differs; `BANKID_BLESS_FAULTS=1 cargo test --test faults` \
         rewrites it). Each cell: one order for a test person who completes after 450 ms, with \
         a 3 s local deadline, a 300 ms request timeout and collects every 20 ms; the fault strikes the endpoint's first request once, its 3rd \
         request once (collect: mid-order), or every request. Every order is final by its \
         deadline (+ one request timeout). *Left pending* is an order still pending at BankID \
         after the engine's cancel had its 3 s; *new start* is the same person starting again \
         at once, with the faults gone.\n\n\
         | fault | endpoint | strikes | final state | code | left pending at BankID | new start |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (f, ep, when, e) in cells() {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {:?} | {} | {} | {} |",
            f.label(),
            ep.path(),
            when.label(),
            e.state,
            e.code.map_or("—".to_string(), |c| format!("`{c}`")),
            if e.left_pending { "**yes**" } else { "no" },
            match e.restart {
                Restart::Identified => "identified",
                Restart::AlreadyInProgress => "**`alreadyInProgress`**",
            }
        );
    }
    md.push_str(
        "\nThe **yes** rows are BankID's API, not a choice: a BankID that refuses every cancel \
         keeps the order until it expires (about 3 minutes), and a new start for that person \
         meanwhile aborts both orders (`alreadyInProgress`, RFA4 \"already started\").\n\n\
         One case the simulator cannot show: its `delay` holds a request *before* handling it, \
         so a start that times out here was never handled there. A real BankID that handled the \
         start and answered too late would hold an order whose `orderRef` never arrived: nothing \
         can cancel it, and a new start for the person within its lifetime trips \
         `alreadyInProgress`. A collect that times out after BankID produced the final status \
         likewise loses it (the next collect answers `invalidParameters`: an error, and the \
         caller tries again).\n",
    );
    md
}

#[test]
fn docs_faults_md_is_generated_from_the_matrix() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/faults.md");
    let want = document();
    if std::env::var_os("BANKID_BLESS_FAULTS").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/faults.md is not what tests/faults.rs generates: run \
         BANKID_BLESS_FAULTS=1 cargo test --test faults"
    );
}
