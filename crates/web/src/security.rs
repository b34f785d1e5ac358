//! Who may read and change things: the token check and cross-site request
//! protection ([`guard`]); the login page that keeps the token in a cookie
//! is `pages::login`.
//!
//! Reads (GET/HEAD/OPTIONS): with a token configured, every request must
//! carry it (bearer or login cookie) — DAG code, conf, logs and table data
//! are not for anyone who can reach the port — unless `[web]
//! anonymous_read = true`. `/healthz`, `/metrics` and the login page stay
//! open. Without a token (loopback only) everything is open.
//!
//! Rules, applied by [`guard`] to every request that is not GET/HEAD:
//! 1. A request a browser marks as cross-site (`Sec-Fetch-Site: cross-site`,
//!    or an `Origin` that is not this server) is refused (403).
//! 2. With a token configured, the request must carry it: `Authorization:
//!    Bearer TOKEN` (API clients) or the `tributary_token` cookie set by
//!    `/login` (the UI). Otherwise 401 (the UI redirects to the login page).
//! 3. Requests without a bearer token must prove they come from our own
//!    pages or from a non-browser client: HTML forms carry `_csrf` equal to
//!    the `tributary_csrf` cookie (double submit); API calls must send
//!    `Content-Type: application/json`, which a cross-site page cannot send
//!    without a CORS preflight this server never grants.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::cookies::{
    CSRF_COOKIE, Csrf, FLASH_COOKIE, TOKEN_COOKIE, cookie, random_token, same_secret,
};
use crate::error::{ApiError, Failure};
use crate::pages::layout::error_page;
use crate::state::AppState;

/// Largest form body the guard reads to find `_csrf`.
const MAX_FORM: usize = 1 << 20;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Whether a browser says the request comes from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return true;
    }
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

fn refuse(api: bool, status: StatusCode, message: &str, next_path: &str) -> Response {
    if api {
        return ApiError(Failure::new(status, message)).into_response();
    }
    if status == StatusCode::UNAUTHORIZED {
        let to = format!(
            "/login?next={}",
            percent_encoding::utf8_percent_encode(next_path, percent_encoding::NON_ALPHANUMERIC)
        );
        return Redirect::to(&to).into_response();
    }
    error_page(&Failure::new(status, message))
}

/// The middleware enforcing the rules above; it also hands every browser a
/// CSRF cookie on its first page view.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let api = is_api(req.uri().path());
    if let Some(refused) = refuse_foreign_host(&state, &req, api) {
        return with_security_headers(refused);
    }
    with_security_headers(guarded(state, req, next).await)
}

/// Headers every answer carries: scripts, styles and frames from this
/// server only, no MIME sniffing.
fn with_security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// DNS rebinding: without a token the server trusts whoever reaches it, so
/// it must be reached by a loopback name. A page on `attacker.example`
/// whose name now resolves to 127.0.0.1 sends `Host: attacker.example`;
/// such a request is refused whatever its method. Names in `[web]
/// allowed_hosts` are accepted too.
fn refuse_foreign_host(state: &AppState, req: &Request, api: bool) -> Option<Response> {
    if state.0.token.is_some() {
        return None;
    }
    // A browser always sends `Host`; a request without one is not a page's.
    let host = req
        .headers()
        .get(header::HOST)?
        .to_str()
        .unwrap_or_default();
    let name = host_name(host);
    if is_loopback_name(name)
        || state
            .0
            .allowed_hosts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(name))
    {
        return None;
    }
    let message = format!(
        "this server answers to loopback names only (got Host {host:?}): open it as \
         http://127.0.0.1 or http://localhost, add the name to [web] allowed_hosts, or set a token"
    );
    Some(refuse(api, StatusCode::FORBIDDEN, &message, "/"))
}

/// The name of a `Host` value, without the port (`[::1]:8080` → `::1`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn is_loopback_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An API request whose path exists without its method: 405 with `Allow`,
/// before the token and body checks (the methods come from the OpenAPI
/// document, which a router test holds equal to the routes).
fn method_not_allowed(req: &Request) -> Option<Response> {
    let rest = req.uri().path().strip_prefix("/api/v1")?;
    let allowed = crate::openapi::allowed_methods(rest)?;
    if allowed.iter().any(|m| m == req.method().as_str()) || *req.method() == Method::OPTIONS {
        return None;
    }
    let message = format!(
        "{} is not allowed on {}: use {}",
        req.method(),
        req.uri().path(),
        allowed.join(", ")
    );
    let mut resp = refuse(true, StatusCode::METHOD_NOT_ALLOWED, &message, "/");
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    Some(resp)
}

/// Methods some route has. Any other method can only be answered 405 (or
/// 404) by the router, so it goes there without the checks below; a client
/// sending `TRACE` learns that the method is not allowed, not that it
/// lacks a JSON body.
const ROUTED_METHODS: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::OPTIONS,
    Method::POST,
    Method::PATCH,
];

async fn guarded(state: AppState, mut req: Request, next: Next) -> Response {
    if !ROUTED_METHODS.contains(req.method()) {
        return next.run(req).await;
    }
    if let Some(refused) = method_not_allowed(&req) {
        return refused;
    }
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let path = req.uri().path().to_string();
    let api = is_api(&path);
    let headers = req.headers().clone();
    let have = cookie(&headers, CSRF_COOKIE)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let csrf = have.clone().unwrap_or_else(random_token);
    req.extensions_mut().insert(Csrf(csrf.clone()));
    if safe && !may_read(&state, &headers, &path) {
        let message = "this server needs a token: log in, or send Authorization: Bearer TOKEN";
        return refuse(
            api,
            StatusCode::UNAUTHORIZED,
            message,
            &path_and_query(&req),
        );
    }
    if safe {
        let resp = next.run(req).await;
        return with_cookies(resp, &headers, api, have.is_none().then_some(&csrf));
    }
    let back = referer_path(&headers);
    if cross_site(&headers) {
        return refuse(
            api,
            StatusCode::FORBIDDEN,
            "cross-site request refused: changes can only be made from this server's own pages or an API client",
            &back,
        );
    }
    let bearer_ok = match (&state.0.token, bearer(&headers)) {
        (Some(t), Some(b)) => same_secret(t, b),
        (None, Some(_)) => true,
        _ => false,
    };
    if bearer(&headers).is_some() && !bearer_ok {
        return refuse(api, StatusCode::UNAUTHORIZED, "wrong token", &back);
    }
    if bearer_ok {
        return next.run(req).await;
    }
    // Login and logout need no token, but still the CSRF check below.
    let login = path == "/login" || path == "/logout";
    if let Some(t) = &state.0.token
        && !login
        && !cookie(&headers, TOKEN_COOKIE).is_some_and(|c| same_secret(t, c))
    {
        return refuse(
            api,
            StatusCode::UNAUTHORIZED,
            "this server needs a token for changes: send Authorization: Bearer TOKEN",
            &back,
        );
    }
    if api {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return refuse(
                api,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send a JSON body with Content-Type: application/json (use {} when there is nothing to say)",
                &back,
            );
        }
        return next.run(req).await;
    }
    match checked_form(req, &headers).await {
        Ok(req) => next.run(req).await,
        Err((status, message)) => refuse(api, status, message, &back),
    }
}

/// A safe request's answer, with the flash message cleared once a page
/// showed it, and a new browser's CSRF cookie (`new_csrf`).
fn with_cookies(
    mut resp: Response,
    headers: &HeaderMap,
    api: bool,
    new_csrf: Option<&String>,
) -> Response {
    if api {
        return resp;
    }
    if resp.status().is_success() && cookie(headers, FLASH_COOKIE).is_some_and(|f| !f.is_empty()) {
        resp.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("tributary_flash=; Path=/; Max-Age=0"),
        );
    }
    if let Some(csrf) = new_csrf {
        let c = format!("{CSRF_COOKIE}={csrf}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Paths anyone may read whatever the token: probes, and what the login
/// page needs.
const OPEN_PATHS: &[&str] = &[
    "/healthz",
    "/metrics",
    "/login",
    "/static/app.css",
    "/static/app.js",
];

/// Whether a safe request may be answered: no token set, anonymous reads
/// allowed, an open path, or the token as a bearer or a login cookie.
fn may_read(state: &AppState, headers: &HeaderMap, path: &str) -> bool {
    let Some(token) = &state.0.token else {
        return true;
    };
    state.0.anonymous_read
        || OPEN_PATHS.contains(&path)
        || bearer(headers).is_some_and(|b| same_secret(token, b))
        || cookie(headers, TOKEN_COOKIE).is_some_and(|c| same_secret(token, c))
}

fn path_and_query(req: &Request) -> String {
    req.uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string())
}

/// The page a refused UI form came from, to return to after a login.
fn referer_path(headers: &HeaderMap) -> String {
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|r| r.find('/').map(|i| r[i..].to_string()))
        .unwrap_or_else(|| "/".to_string())
}

/// An HTML form whose `_csrf` field matches the CSRF cookie, with its body
/// read and put back; else why it is refused.
async fn checked_form(
    req: Request,
    headers: &HeaderMap,
) -> Result<Request, (StatusCode, &'static str)> {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "form too large"))?;
    let sent = form_field(&bytes, "_csrf");
    match (sent, cookie(headers, CSRF_COOKIE)) {
        (Some(s), Some(e)) if same_secret(&s, e) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err((
            StatusCode::FORBIDDEN,
            "this form has expired or did not come from this server (CSRF check failed): reload the page and try again",
        )),
    }
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_forms_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tributary_csrf=abc"),
        );
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(
            form_field(b"x=1&_csrf=a%2Bb+c&y=", "_csrf").as_deref(),
            Some("a+b c")
        );
        assert_eq!(form_field(b"x=1", "_csrf"), None);
    }

    #[test]
    fn cross_site_detection() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!cross_site(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(!cross_site(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(cross_site(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_site(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
    }

    #[test]
    fn secrets_and_redirects() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert_eq!(random_token().len(), 32);
        assert_ne!(random_token(), random_token());
    }
}
