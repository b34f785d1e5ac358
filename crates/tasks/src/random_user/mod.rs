//! The random-user API (<https://randomuser.me>, format 1.4): its response,
//! parsed tolerantly, and the transform of each user into the [`UserRecord`]
//! the lake stores.
//!
//! Quirks handled (all present in `shared/data/randomuser/`): the postcode
//! is a number for some nationalities and a string for others; coordinates
//! are strings holding decimals; names, cities and streets carry non-ASCII
//! text and street names trailing spaces; `id.value` may be null. An
//! `{"error": …}` body is an error whatever the HTTP status.

pub mod generator;
mod record;

pub use record::{
    Provenance, UserRecord, check_schemas_agree, user_record_arrow_schema, user_record_json_schema,
};

use serde::Deserialize;
use serde_json::Value;

/// The most users one request returns (as the real API).
pub const MAX_RESULTS: usize = 5000;

/// Why a response could not be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The API said it failed (`{"error": …}`), even with HTTP 200.
    #[error("the API returned an error: {0}")]
    Api(String),
    /// The body is not the API's format.
    #[error("unexpected response body: {0}")]
    Format(String),
}

/// A parsed response: the users (still raw, transformed one by one so a bad
/// user is skipped, not fatal) and the `info` block.
#[derive(Debug, Clone)]
pub struct Response {
    /// Raw user objects.
    pub users: Vec<Value>,
    /// Seed the API used.
    pub seed: Option<String>,
    /// Page.
    pub page: Option<u64>,
}

/// Parses a response body.
pub fn parse_response(body: &[u8]) -> Result<Response, ResponseError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ResponseError::Format(format!("not JSON ({e}): {}", preview(body))))?;
    if let Some(err) = v.get("error") {
        let msg = err.as_str().map_or_else(|| err.to_string(), str::to_string);
        return Err(ResponseError::Api(msg));
    }
    let users = match v.get("results") {
        Some(Value::Array(a)) => a.clone(),
        Some(other) => {
            return Err(ResponseError::Format(format!(
                "`results` is not an array but {other}"
            )));
        }
        None => {
            return Err(ResponseError::Format(format!(
                "no `results` in {}",
                preview(body)
            )));
        }
    };
    let info = v.get("info");
    Ok(Response {
        users,
        seed: info
            .and_then(|i| i.get("seed"))
            .and_then(Value::as_str)
            .map(str::to_string),
        page: info.and_then(|i| i.get("page")).and_then(Value::as_u64),
    })
}

#[derive(Deserialize)]
struct RawBody<'a> {
    #[serde(borrow)]
    results: Option<Vec<&'a serde_json::value::RawValue>>,
    error: Option<Value>,
}

/// The fast path for tasks: the users of a body as raw JSON slices (no
/// `Value` tree, no copies), each transformed on its own by [`transform_raw`].
pub fn parse_users_raw(body: &[u8]) -> Result<Vec<&serde_json::value::RawValue>, ResponseError> {
    let text =
        std::str::from_utf8(body).map_err(|e| ResponseError::Format(format!("not UTF-8: {e}")))?;
    let raw: RawBody<'_> = serde_json::from_str(text).map_err(|e| {
        ResponseError::Format(format!("not the API's format ({e}): {}", preview(body)))
    })?;
    if let Some(err) = raw.error {
        return Err(ResponseError::Api(
            err.as_str().map_or_else(|| err.to_string(), str::to_string),
        ));
    }
    raw.results
        .ok_or_else(|| ResponseError::Format(format!("no `results` in {}", preview(body))))
}

/// [`transform`] from a user's raw JSON.
pub fn transform_raw(
    user: &serde_json::value::RawValue,
    provenance: &Provenance,
) -> Result<UserRecord, String> {
    let u: RawUser =
        serde_json::from_str(user.get()).map_err(|e| format!("malformed user: {e}"))?;
    build(u, provenance)
}

fn preview(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    if body.len() > 200 {
        format!("{s}…")
    } else {
        s
    }
}

#[derive(Deserialize)]
struct RawUser {
    gender: String,
    name: RawName,
    location: RawLocation,
    email: String,
    login: RawLogin,
}

#[derive(Deserialize)]
struct RawName {
    title: String,
    first: String,
    last: String,
}

#[derive(Deserialize)]
struct RawLocation {
    street: RawStreet,
    city: String,
    country: String,
    postcode: Value,
    coordinates: RawCoordinates,
}

#[derive(Deserialize)]
struct RawStreet {
    number: Value,
    name: String,
}

#[derive(Deserialize)]
struct RawCoordinates {
    latitude: Value,
    longitude: Value,
}

#[derive(Deserialize)]
struct RawLogin {
    uuid: String,
}

/// A number or a string holding one, as f64.
fn decimal(v: &Value, what: &str) -> Result<f64, String> {
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    x.filter(|f| f.is_finite())
        .ok_or_else(|| format!("{what} is not a decimal number: {v}"))
}

/// A postcode exactly as written: a number's JSON text or the string itself.
fn postcode_text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "postcode is neither a number nor a string: {other}"
        )),
    }
}

/// MD5 of the postcode as written: 32 lowercase hex characters.
pub fn zip_hash(postcode: &str) -> String {
    format!("{:x}", md5::compute(postcode.as_bytes()))
}

/// Transforms one raw user into the lake's record, or says why it cannot.
pub fn transform(user: &Value, provenance: &Provenance) -> Result<UserRecord, String> {
    let u = RawUser::deserialize(user).map_err(|e| format!("malformed user: {e}"))?;
    build(u, provenance)
}

fn build(u: RawUser, provenance: &Provenance) -> Result<UserRecord, String> {
    let uuid = u.login.uuid.trim();
    if uuid.is_empty() {
        return Err("login.uuid is empty".into());
    }
    let number = match &u.location.street.number {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => {
            return Err(format!(
                "street number is neither a number nor a string: {other}"
            ));
        }
    };
    let title = u.name.title.trim();
    let name = format!("{title}. {} {}", u.name.first.trim(), u.name.last.trim());
    Ok(UserRecord {
        user_id: uuid.to_string(),
        name: if title.is_empty() {
            name.trim_start_matches(". ").to_string()
        } else {
            name
        },
        gender: u.gender,
        address: format!("{number}, {}", u.location.street.name.trim())
            .trim()
            .to_string(),
        city: u.location.city.trim().to_string(),
        nation: u.location.country.trim().to_string(),
        zip: zip_hash(&postcode_text(&u.location.postcode)?),
        latitude: decimal(&u.location.coordinates.latitude, "latitude")?,
        longitude: decimal(&u.location.coordinates.longitude, "longitude")?,
        email: u.email.trim().to_string(),
        event_time: provenance.fetched_at.clone(),
        dag_id: provenance.dag_id.clone(),
        run_id: provenance.run_id.clone(),
        logical_date: provenance.logical_date.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prov() -> Provenance {
        Provenance {
            fetched_at: "2026-11-21T10:00:00Z".into(),
            dag_id: "d".into(),
            run_id: "r".into(),
            logical_date: "2026-11-21T00:00:00Z".into(),
        }
    }

    #[test]
    fn zip_is_md5_of_the_postcode_as_written() {
        // Expected values computed independently (Python's hashlib).
        assert_eq!(zip_hash("5010 PC"), "bdf84fdb859bacf933f6c15fa6e51cd0");
        assert_eq!(zip_hash("SW11 4AB"), "57ccd35a7aad32ace5bb1147a34282c9");
        assert_eq!(zip_hash(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(zip_hash("12345"), "827ccb0eea8a706c4c34a16891f84e7b");
        let u = json!({"gender": "male", "name": {"title": "Mr", "first": "A", "last": "B"},
            "location": {"street": {"number": 1, "name": "x"}, "city": "c", "country": "FR", "postcode": 12345,
                         "coordinates": {"latitude": "1.5", "longitude": "-2"}},
            "email": "e", "login": {"uuid": "u"}});
        assert_eq!(
            transform(&u, &prov()).unwrap().zip,
            "827ccb0eea8a706c4c34a16891f84e7b",
            "number written as 12345"
        );
    }

    #[test]
    fn error_body_is_an_error_even_with_200() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/randomuser/error.json"
        ))
        .unwrap();
        assert!(matches!(parse_response(&body), Err(ResponseError::Api(m)) if m.contains("Uh oh")));
        assert!(matches!(
            parse_response(b"<html>"),
            Err(ResponseError::Format(_))
        ));
        assert!(matches!(
            parse_response(b"{\"results\": 3}"),
            Err(ResponseError::Format(_))
        ));
    }

    /// The fast path and the `Value` path agree, user by user, on every fixture.
    #[test]
    fn raw_and_value_paths_agree() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/randomuser/results-5000.json"
        ))
        .unwrap();
        let raw = parse_users_raw(&body).unwrap();
        let val = parse_response(&body).unwrap().users;
        assert_eq!(raw.len(), val.len());
        for (r, v) in raw.iter().zip(&val) {
            assert_eq!(transform_raw(r, &prov()), transform(v, &prov()));
        }
        let err = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/randomuser/error.json"
        ))
        .unwrap();
        assert!(matches!(parse_users_raw(&err), Err(ResponseError::Api(_))));
        assert!(matches!(
            parse_users_raw(b"[1]"),
            Err(ResponseError::Format(_))
        ));
    }

    #[test]
    fn bad_users_say_why() {
        let mut u = json!({"gender": "male", "name": {"title": "Mr", "first": "A", "last": "B"},
            "location": {"street": {"number": 1, "name": "x"}, "city": "c", "country": "FR", "postcode": "75001",
                         "coordinates": {"latitude": "north", "longitude": "-2"}},
            "email": "e", "login": {"uuid": "u"}});
        assert!(
            transform(&u, &prov())
                .unwrap_err()
                .contains("latitude is not a decimal")
        );
        u["location"]["postcode"] = Value::Null;
        u["location"]["coordinates"]["latitude"] = json!("1");
        assert!(transform(&u, &prov()).unwrap_err().contains("postcode"));
        assert!(
            transform(&json!({"gender": 1}), &prov())
                .unwrap_err()
                .contains("malformed user")
        );
    }
}
