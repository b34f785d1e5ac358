//! The offline random-user API: `GET /api/?results=N&seed=S&page=P&nat=XX`
//! in the real API's format, deterministic per seed and page, with switches
//! that inject the failures a real API has (HTTP 500, 429 with Retry-After,
//! an error body with HTTP 200, slow responses, malformed users).
//!
//! By default users are generated ([`crate::random_user::generator`]); with
//! a fixtures folder, users come from its `results-5000.json`, page after
//! page.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::random_user::MAX_RESULTS;

/// A failure to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 with the API's error body.
    Status500,
    /// HTTP 429 with `Retry-After: secs`.
    TooManyRequests {
        /// Seconds in the Retry-After header.
        retry_after_secs: u64,
    },
    /// HTTP 200 with `{"error": …}`.
    ErrorBody,
    /// A normal answer after a delay.
    Slow {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// A normal answer in which every 10th user has a broken latitude.
    MalformedUsers,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        let (kind, arg) = s.split_once(':').map_or((s, None), |(k, a)| (k, Some(a)));
        let num = |d: u64| -> Result<u64, String> {
            arg.map_or(Ok(d), |a| {
                a.parse()
                    .map_err(|_| format!("{s:?}: {a:?} is not a whole number"))
            })
        };
        Ok(match kind {
            "500" => Fault::Status500,
            "429" => Fault::TooManyRequests {
                retry_after_secs: num(1)?,
            },
            "error-body" => Fault::ErrorBody,
            "slow" => Fault::Slow { ms: num(2000)? },
            "malformed" => Fault::MalformedUsers,
            _ => {
                return Err(format!(
                    "unknown fault {s:?}: use 500, 429[:retry_after_secs], error-body, slow[:ms] or malformed"
                ));
            }
        })
    }
}

/// When faults happen.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The fault to inject.
    pub fault: Option<Fault>,
    /// Inject it on the first N requests (then answer normally).
    pub first: u64,
    /// Also inject it on every Nth request.
    pub every: Option<u64>,
}

impl Faults {
    fn hit(&self, n: u64) -> Option<Fault> {
        let f = self.fault?;
        let by_every = self.every.is_some_and(|e| e > 0 && n.is_multiple_of(e));
        (n <= self.first || by_every).then_some(f)
    }
}

/// Settings of the offline API.
#[derive(Debug, Clone, Default)]
pub struct OfflineApiConfig {
    /// Serve users from this `results-5000.json` pool instead of generating them.
    pub fixture_pool: Option<Arc<Vec<Value>>>,
    /// Injected failures.
    pub faults: Faults,
}

impl OfflineApiConfig {
    /// Loads `results-5000.json` from a fixtures folder.
    pub fn with_fixtures(mut self, dir: &Path) -> Result<Self, String> {
        let path = dir.join("results-5000.json");
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let resp = crate::random_user::parse_response(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if resp.users.is_empty() {
            return Err(format!("{}: no users", path.display()));
        }
        self.fixture_pool = Some(Arc::new(resp.users));
        Ok(self)
    }
}

struct AppState {
    cfg: OfflineApiConfig,
    requests: Arc<AtomicU64>,
}

/// A running offline API.
#[derive(Debug, Clone)]
pub struct OfflineApi {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests answered so far (faulty ones included).
    pub requests: Arc<AtomicU64>,
}

impl OfflineApi {
    /// The API's URL (`http://127.0.0.1:PORT/api/`).
    pub fn url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }
}

#[derive(Deserialize)]
struct Params {
    results: Option<String>,
    seed: Option<String>,
    page: Option<String>,
    nat: Option<String>,
}

fn error_body() -> Value {
    json!({"error": "Uh oh, something has gone wrong. Please tweet us @randomapi about the issue. Thank you."})
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": msg}))).into_response()
}

async fn api(State(st): State<Arc<AppState>>, Query(p): Query<Params>) -> Response {
    let n = st.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let results = match p.results.as_deref().map(str::parse::<usize>) {
        None => 1,
        Some(Ok(r)) if (1..=MAX_RESULTS).contains(&r) => r,
        Some(_) => {
            return bad_request(format!(
                "results must be a whole number from 1 to {MAX_RESULTS}"
            ));
        }
    };
    let page = match p.page.as_deref().map(str::parse::<u64>) {
        None => 1,
        Some(Ok(pg)) if pg >= 1 => pg,
        Some(_) => return bad_request("page must be a whole number from 1".into()),
    };
    let fault = st.cfg.faults.hit(n);
    match fault {
        Some(Fault::Status500) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(error_body())).into_response();
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(error_body())).into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Some(Fault::ErrorBody) => {
            return (StatusCode::OK, axum::Json(error_body())).into_response();
        }
        Some(Fault::Slow { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        _ => {}
    }
    let seed = p.seed.unwrap_or_else(|| format!("offline{n}"));
    let mut body = match &st.cfg.fixture_pool {
        Some(pool) => {
            let start = (page as usize - 1).saturating_mul(results);
            let users: Vec<Value> = (0..results)
                .map(|i| pool[(start + i) % pool.len()].clone())
                .collect();
            json!({"results": users, "info": {"seed": seed, "results": results, "page": page, "version": "1.4"}})
        }
        None => crate::random_user::generator::response(&seed, page, results, p.nat.as_deref()),
    };
    if fault == Some(Fault::MalformedUsers)
        && let Some(users) = body["results"].as_array_mut()
    {
        for u in users.iter_mut().step_by(10) {
            u["location"]["coordinates"]["latitude"] = json!("not a number");
        }
    }
    axum::Json(body).into_response()
}

/// The router (also used by tests without a socket).
fn router(cfg: OfflineApiConfig, requests: Arc<AtomicU64>) -> Router {
    let st = Arc::new(AppState { cfg, requests });
    Router::new()
        .route("/api/", get(api))
        .route("/api", get(api))
        .with_state(st)
}

/// Starts the offline API on `bind` (port 0 picks a free port) until `stop` fires.
pub async fn start(
    bind: SocketAddr,
    cfg: OfflineApiConfig,
    stop: CancellationToken,
) -> std::io::Result<OfflineApi> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let requests = Arc::new(AtomicU64::new(0));
    let app = router(cfg, requests.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok(OfflineApi { addr, requests })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_faults() {
        assert_eq!(
            "429:3".parse::<Fault>().unwrap(),
            Fault::TooManyRequests {
                retry_after_secs: 3
            }
        );
        assert_eq!("slow".parse::<Fault>().unwrap(), Fault::Slow { ms: 2000 });
        assert!(
            "teapot"
                .parse::<Fault>()
                .unwrap_err()
                .contains("unknown fault")
        );
        assert!("slow:x".parse::<Fault>().is_err());
    }

    #[test]
    fn faults_hit_first_and_every() {
        let f = Faults {
            fault: Some(Fault::Status500),
            first: 2,
            every: Some(5),
        };
        let hits: Vec<u64> = (1..=11).filter(|n| f.hit(*n).is_some()).collect();
        assert_eq!(hits, vec![1, 2, 5, 10]);
        assert!(Faults::default().hit(1).is_none());
    }
}
