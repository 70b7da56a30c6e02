//! Every element and attribute name of the Cally Square export format, in one place.
//!
//! No public schema of Cally Square's XML export exists; the editor behaves like JGraph's
//! mxGraph editor, so documents are read as an `mxGraphModel` whose `root` holds one element per
//! block (named for the block type, carrying `id`, `label` and the block's parameters as
//! attributes) and `mxCell edge="1"` elements for the arrows (`source`, `target`, `value` = the
//! exit label). The block and parameter names below are our reading of the documented block
//! parameters, not a confirmed schema; matching is case-insensitive and unknown attributes are
//! ignored, so the reader stays tolerant.

/// The document element.
pub const MODEL: &str = "mxGraphModel";
/// Holds the cells.
pub const ROOT: &str = "root";
/// A plain cell (layer, or an arrow when `edge="1"`).
pub const CELL: &str = "mxCell";
/// Attributes of cells.
pub const ID: &str = "id";
/// A block's caption.
pub const LABEL: &str = "label";
/// Arrow marker.
pub const EDGE: &str = "edge";
/// Arrow start.
pub const SOURCE: &str = "source";
/// Arrow end.
pub const TARGET: &str = "target";
/// Arrow label (the exit: a digit, `i`, `t`, `success`, …).
pub const VALUE: &str = "value";

/// Block kinds we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The entry point.
    Start,
    /// Plays an audio file.
    Playback,
    /// Plays a prompt and reads DTMF into a variable; exits per digit/label, `i`, `t`.
    Menu,
    /// Sets a variable.
    Set,
    /// Evaluates an expression into a variable.
    Math,
    /// Writes to the Asterisk log.
    NoOp,
    /// Runs a command; its output goes into a variable.
    System,
    /// Runs an AGI script.
    Agi,
    /// Enters another project.
    SubProject,
    /// Any Asterisk application.
    CustomApp,
    /// Asterisk `Queue()`.
    Queue,
    /// Dials out.
    Dial,
    /// Hangs up.
    Hangup,
    /// Ends the flow.
    End,
    /// Jumps to another block.
    Goto,
    /// Runs after hang-up.
    Finally,
    /// Our custom block: a BankID phone identification through libbankid.so.
    BankIdRequest,
}

/// Element name → kind (case-insensitive; a few spellings seen in documentation are accepted).
pub fn kind_of(element: &str) -> Option<Kind> {
    Some(match element.to_ascii_lowercase().as_str() {
        "start" => Kind::Start,
        "playback" => Kind::Playback,
        "menu" => Kind::Menu,
        "set" => Kind::Set,
        "math" => Kind::Math,
        "noop" => Kind::NoOp,
        "system" => Kind::System,
        "agi" => Kind::Agi,
        "subproject" => Kind::SubProject,
        "customapp" | "custom_app" => Kind::CustomApp,
        "queue" => Kind::Queue,
        "dial" => Kind::Dial,
        "hangup" => Kind::Hangup,
        "end" => Kind::End,
        "goto" => Kind::Goto,
        "finally" => Kind::Finally,
        "bankidrequest" | "bankid_request" => Kind::BankIdRequest,
        _ => return None,
    })
}

/// Blocks that need no outgoing arrow.
pub fn is_terminal(k: Kind) -> bool {
    matches!(
        k,
        Kind::Hangup | Kind::End | Kind::Queue | Kind::Dial | Kind::Goto
    )
}

/// Blocks that need no incoming arrow.
pub fn is_entry(k: Kind) -> bool {
    matches!(k, Kind::Start | Kind::Finally)
}

/// Parameter attribute names.
pub mod param {
    /// Start: answer the call (`yes`/`no`).
    pub const ANSWER: &str = "answer";
    /// Playback, Menu: audio file (without extension).
    pub const AUDIO: &str = "audio";
    /// Menu: seconds to wait for input.
    pub const TIMEOUT: &str = "timeout";
    /// Menu: most digits read.
    pub const MAX_DIGITS: &str = "maxDigits";
    /// Menu: repeats after a timeout or invalid entry.
    pub const RETRIES: &str = "retries";
    /// Menu, Set, System: the variable.
    pub const VARIABLE: &str = "variable";
    /// Set: the value (`{VAR}` substitutions).
    pub const VALUE: &str = "value";
    /// Math: the expression.
    pub const OPERATION: &str = "operation";
    /// Math: the result variable.
    pub const RESULT: &str = "result";
    /// NoOp: text for the log.
    pub const OUTPUT: &str = "output";
    /// System, AGI: the command.
    pub const COMMAND: &str = "command";
    /// AGI, CustomApp: arguments.
    pub const ARGUMENTS: &str = "arguments";
    /// SubProject: the project's name (file `NAME.xml` beside this one).
    pub const PROJECT: &str = "project";
    /// CustomApp: the application.
    pub const APPLICATION: &str = "application";
    /// Queue: the queue's name.
    pub const QUEUE: &str = "queue";
    /// Goto: the target block id.
    pub const TARGET: &str = "target";

    /// BankIdRequest: path of libbankid.so (empty: found by bankid-ivr).
    pub const LIBRARY: &str = "library";
    /// BankIdRequest: variable holding the personal number.
    pub const PNR_VARIABLE: &str = "pnrVariable";
    /// BankIdRequest: `user` or `RP`.
    pub const CALL_INITIATOR: &str = "callInitiator";
    /// BankIdRequest: the agent-visible result variable (`__` prefix to reach the agent).
    pub const RESULT_VARIABLE: &str = "resultVariable";
    /// BankIdRequest: `sv` or `en` prompts.
    pub const LANGUAGE: &str = "language";
    /// BankIdRequest: seconds before giving up (and cancelling at BankID).
    pub const BANKID_TIMEOUT: &str = "timeout";
    /// BankIdRequest: audio played once the order is started.
    pub const START_AUDIO: &str = "startAudio";
    /// BankIdRequest: how many invalid numbers take the `invalid` exit before `error`.
    pub const MAX_INVALID: &str = "maxInvalid";
    /// BankIdRequest: `identify` (default) or `sign` (the caller approves `userVisibleData`).
    pub const MODE: &str = "mode";
    /// BankIdRequest: text shown in the BankID app, with `{VARIABLE}` substitutions; required
    /// with `mode="sign"`.
    pub const USER_VISIBLE_DATA: &str = "userVisibleData";
    /// BankIdRequest: `yes` to require the security code (never biometrics).
    pub const REQUIRE_PIN_CODE: &str = "requirePinCode";
    /// BankIdRequest: `yes` to require an extra check of the passport or national ID card.
    pub const REQUIRE_ID_DOCUMENT: &str = "requireIdDocument";
}

/// The values of a yes/no parameter (`requirePinCode`, `requireIdDocument`): `yes`/`no`,
/// `true`/`false`, `1`/`0`, case-insensitive; `None` for anything else.
pub fn yes_no(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// Exit labels.
pub mod exit {
    /// Menu: invalid entry.
    pub const INVALID: &str = "i";
    /// Menu: nothing entered.
    pub const TIMEOUT: &str = "t";
    /// Menu: any other input (our reading of the documented "Variable" menus).
    pub const ANY: &str = "*";
    /// BankIdRequest: identified.
    pub const SUCCESS: &str = "success";
    /// BankIdRequest: BankID said failed (declined call, cancelled, expired, …).
    pub const FAILED: &str = "failed";
    /// BankIdRequest: no usable answer (BankID error, connection, timeout).
    pub const ERROR: &str = "error";
    /// BankIdRequest: the number was refused locally (nothing sent); re-prompt.
    pub const BAD_NUMBER: &str = "invalid";
}
