//! Request validation for `/rp/v6.0/…`, as BankID does it, and dispatch to the order book.

use std::net::IpAddr;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::orders::{ApiError, Book, Kind, StartData, Timing};

/// The endpoints under `/rp/v6.0/`.
pub const ENDPOINTS: [&str; 6] = [
    "auth",
    "sign",
    "phone/auth",
    "phone/sign",
    "collect",
    "cancel",
];

fn invalid(details: impl Into<String>) -> ApiError {
    (400, "invalidParameters", details.into())
}

/// Checks method, content type and JSON shape, then runs the endpoint.
pub fn handle(
    book: &mut Book,
    timing: &Timing,
    endpoint: &str,
    method: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Value, ApiError> {
    if !ENDPOINTS.contains(&endpoint) {
        return Err((404, "notFound", format!("No such endpoint: {endpoint}")));
    }
    if method != "POST" {
        return Err((
            405,
            "methodNotAllowed",
            format!("{method} is not allowed, use POST"),
        ));
    }
    match content_type {
        Some(ct) if ct.trim().eq_ignore_ascii_case("application/json") => {}
        Some(ct) => {
            return Err((
                415,
                "unsupportedMediaType",
                format!("Content-Type must be exactly application/json, got {ct:?}"),
            ))
        }
        None => {
            return Err((
                415,
                "unsupportedMediaType",
                "Content-Type is missing".into(),
            ))
        }
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("Body is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(invalid("Body must be a JSON object"));
    };
    match endpoint {
        "collect" => book.collect(&order_ref(&obj)?, timing),
        "cancel" => book.cancel(&order_ref(&obj)?, timing),
        "phone/auth" => book.start(Kind::PhoneAuth, phone_start(&obj, false)?, timing),
        "phone/sign" => book.start(Kind::PhoneSign, phone_start(&obj, true)?, timing),
        "auth" => book.start(Kind::Auth, web_start(&obj, false)?, timing),
        _ => book.start(Kind::Sign, web_start(&obj, true)?, timing),
    }
}

fn order_ref(obj: &Map<String, Value>) -> Result<String, ApiError> {
    match obj.get("orderRef") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(invalid("orderRef must be a non-empty string")),
        None => Err(invalid("Missing orderRef")),
    }
}

fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

/// Checks a base64 text field's length (after encoding) and decoding; returns the text.
fn data_field(
    obj: &Map<String, Value>,
    key: &str,
    max: usize,
    required: bool,
) -> Result<Option<String>, ApiError> {
    let Some(s) = opt_str(obj, key)? else {
        return if required {
            Err(invalid(format!("Missing {key}")))
        } else {
            Ok(None)
        };
    };
    if s.is_empty() || s.len() > max {
        return Err(invalid(format!(
            "{key} must be 1 to {max} characters after base64 encoding, got {}",
            s.len()
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| invalid(format!("{key} is not valid base64")))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid(format!("{key} is not UTF-8 text")))?;
    Ok(Some(text))
}

fn common(obj: &Map<String, Value>, sign: bool) -> Result<StartData, ApiError> {
    let (visible_max, hidden_max) = if sign {
        (40_000, 200_000)
    } else {
        (1_500, 1_500)
    };
    let user_visible_data = data_field(obj, "userVisibleData", visible_max, sign)?;
    let non_visible_data = data_field(obj, "userNonVisibleData", hidden_max, false)?.is_some();
    let visible_data_format = opt_str(obj, "userVisibleDataFormat")?.map(str::to_string);
    if let Some(fmt) = &visible_data_format {
        if fmt != "simpleMarkdownV1" {
            return Err(invalid("userVisibleDataFormat must be simpleMarkdownV1"));
        }
    }
    let mut mrtd = false;
    let mut pin_code = false;
    match obj.get("requirement") {
        None | Some(Value::Null) => {}
        Some(Value::Object(req)) => {
            if let Some(v) = req.get("pinCode") {
                pin_code = v
                    .as_bool()
                    .ok_or_else(|| invalid("requirement.pinCode must be a boolean"))?;
            }
            if let Some(v) = req.get("mrtd") {
                mrtd = v
                    .as_bool()
                    .ok_or_else(|| invalid("requirement.mrtd must be a boolean"))?;
            }
            if let Some(v) = req.get("certificatePolicies") {
                let ok = v
                    .as_array()
                    .is_some_and(|a| a.iter().all(|p| p.is_string()));
                if !ok {
                    return Err(invalid(
                        "requirement.certificatePolicies must be a list of OID strings",
                    ));
                }
            }
            if req.contains_key("risk") {
                return Err(invalid("requirement.risk is no longer supported"));
            }
            if req.contains_key("personalNumber") && obj.contains_key("callInitiator") {
                return Err(invalid(
                    "personalNumber belongs at the top level of a phone order",
                ));
            }
        }
        Some(_) => return Err(invalid("requirement must be an object")),
    }
    let requirement = match obj.get("requirement") {
        Some(Value::Object(req)) => {
            let mut req = req.clone();
            if let Some(Value::String(p)) = req.get("personalNumber") {
                let masked = format!("{}-XXXX", p.get(2..8).unwrap_or("??????"));
                req.insert("personalNumber".into(), Value::String(masked));
            }
            Some(Value::Object(req))
        }
        _ => None,
    };
    Ok(StartData {
        user_visible_data,
        mrtd,
        pin_code,
        visible_data_format,
        non_visible_data,
        requirement,
        ..StartData::default()
    })
}

fn phone_start(obj: &Map<String, Value>, sign: bool) -> Result<StartData, ApiError> {
    let pnr = opt_str(obj, "personalNumber")?.ok_or_else(|| invalid("Missing personalNumber"))?;
    crate::scenario::check_personal_number(pnr).map_err(invalid)?;
    let initiator =
        opt_str(obj, "callInitiator")?.ok_or_else(|| invalid("Missing callInitiator"))?;
    if initiator != "user" && initiator != "RP" {
        return Err(invalid("callInitiator must be \"user\" or \"RP\""));
    }
    let mut data = common(obj, sign)?;
    data.personal_number = Some(pnr.to_string());
    data.call_initiator = Some(initiator.to_string());
    Ok(data)
}

fn web_start(obj: &Map<String, Value>, sign: bool) -> Result<StartData, ApiError> {
    let ip = opt_str(obj, "endUserIp")?.ok_or_else(|| invalid("Missing endUserIp"))?;
    ip.parse::<IpAddr>()
        .map_err(|_| invalid("endUserIp is not an IP address"))?;
    if obj.contains_key("personalNumber") {
        return Err(invalid(
            "personalNumber is not a parameter of auth/sign in v6; use requirement.personalNumber",
        ));
    }
    let mut data = common(obj, sign)?;
    data.end_user_ip = Some(ip.to_string());
    if let Some(Value::Object(req)) = obj.get("requirement") {
        if let Some(p) = req.get("personalNumber") {
            let p = p
                .as_str()
                .ok_or_else(|| invalid("requirement.personalNumber must be a string"))?;
            crate::scenario::check_personal_number(p)
                .map_err(|e| invalid(format!("requirement.{e}")))?;
            data.personal_number = Some(p.to_string());
        }
    }
    Ok(data)
}
