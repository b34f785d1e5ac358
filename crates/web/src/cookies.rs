//! The cookies the UI uses and the secrets in them: the token after a login,
//! the CSRF token forms echo, and the one-shot flash message. A leaf module:
//! both the guard and the pages read them.

use std::fmt::Write as _;

use axum::http::{HeaderMap, header};

/// Cookie carrying a one-shot message to the next page.
pub const FLASH_COOKIE: &str = "tributary_flash";
/// Cookie holding the token after a login.
pub const TOKEN_COOKIE: &str = "tributary_token";
/// Cookie holding the CSRF token that forms echo in `_csrf`.
pub const CSRF_COOKIE: &str = "tributary_csrf";
/// A fresh random token (128 bits, hex).
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    // getrandom only fails when the OS has no entropy source at all.
    getrandom::fill(&mut b).expect("the OS random number generator is unavailable");
    b.iter().fold(String::with_capacity(32), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The value of cookie `name`, if the request has it.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The CSRF token pages embed in their forms (`_csrf`): the browser's
/// cookie, or the fresh one [`crate::security::guard`] sets on this response.
#[derive(Debug, Clone)]
pub struct Csrf(pub String);
