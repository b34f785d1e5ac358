//! The login page and its form: the token kept in an HttpOnly cookie.

use askama::Template;
use axum::extract::{Extension, Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::cookies::{Csrf, TOKEN_COOKIE, same_secret};
use crate::state::AppState;

use super::layout::{Chrome, render};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    next: String,
    needed: bool,
    error: String,
}

pub(crate) fn login_page(csrf: &Csrf, next: &str, needed: bool, error: Option<&str>) -> Response {
    let t = LoginPage {
        c: Chrome {
            title: "Log in".into(),
            nav: "",
            csrf: csrf.0.clone(),
            flash: None,
            login: false,
        },
        next: next.to_string(),
        needed,
        error: error.unwrap_or_default().to_string(),
    };
    render(&t, StatusCode::OK)
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Only paths on this server are followed after a login.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/".to_string(),
    }
}

/// `GET /login`.
pub(crate) async fn login_form(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<LoginQuery>,
) -> Response {
    login_page(
        &csrf,
        &local_path(q.next.as_deref()),
        state.0.token.is_some(),
        None,
    )
}

/// `POST /login`: checks the token and keeps it in an HttpOnly cookie.
pub(crate) async fn login_submit(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = local_path(f.next.as_deref());
    let Some(expected) = &state.0.token else {
        return Redirect::to(&next).into_response();
    };
    if !same_secret(expected, f.token.trim()) {
        let mut r = login_page(&csrf, &next, true, Some("wrong token"));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    let mut r = Redirect::to(&next).into_response();
    let c = format!(
        "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000",
        f.token.trim()
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// `POST /logout`: forgets the token cookie.
pub(crate) async fn logout() -> Response {
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("tributary_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_followed_after_a_login() {
        assert_eq!(local_path(Some("/dags/x")), "/dags/x");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }
}
