//! The fetcher against the offline random-user API, with injected faults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use scheduler::operator::{TaskError, TaskLog};
use tasks::dev::random_user_api::{Fault, Faults, OfflineApi, OfflineApiConfig, start};
use tasks::http::{RequestRetries, client, get};
use tasks::random_user::{generator, parse_response};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

async fn api(cfg: OfflineApiConfig) -> (OfflineApi, CancellationToken) {
    let stop = CancellationToken::new();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    (start(addr, cfg, stop.clone()).await.unwrap(), stop)
}

fn faults(fault: Fault, first: u64) -> OfflineApiConfig {
    OfflineApiConfig {
        faults: Faults {
            fault: Some(fault),
            first,
            every: None,
        },
        ..OfflineApiConfig::default()
    }
}

fn policy() -> RequestRetries {
    RequestRetries {
        attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(5),
    }
}

fn check(body: &[u8]) -> Result<(), String> {
    parse_response(body).map(|_| ()).map_err(|e| e.to_string())
}

async fn fetch(url: &str, timeout: Duration) -> (Result<Vec<u8>, TaskError>, Vec<String>) {
    let (log, mut rx): (TaskLog, UnboundedReceiver<String>) = TaskLog::channel();
    let c = client(Duration::from_secs(2), timeout).unwrap();
    let r = get(&c, url, &policy(), &log, &CancellationToken::new(), check).await;
    drop(log);
    let mut lines = Vec::new();
    while let Some(l) = rx.recv().await {
        lines.push(l);
    }
    (r, lines)
}

#[tokio::test]
async fn serves_deterministic_pages() {
    let (a, _stop) = api(OfflineApiConfig::default()).await;
    let url = format!("{}?results=50&seed=abc&page=2&nat=fr", a.url());
    let (r, log) = fetch(&url, Duration::from_secs(5)).await;
    let body = r.unwrap();
    assert!(log.is_empty(), "{log:?}");
    let resp = parse_response(&body).unwrap();
    assert_eq!(resp.users, generator::users("abc", 2, 50, Some("fr")));
    assert_eq!((resp.seed.as_deref(), resp.page), (Some("abc"), Some(2)));
    let (again, _) = fetch(&url, Duration::from_secs(5)).await;
    assert_eq!(again.unwrap(), body);
    // Bad parameters are a 400 with a clear message, and fatal for the fetcher.
    let (r, _) = fetch(&format!("{}?results=6000", a.url()), Duration::from_secs(5)).await;
    assert!(
        matches!(r, Err(TaskError::Fatal(m)) if m.contains("results must be a whole number from 1 to 5000"))
    );
}

#[tokio::test]
async fn retries_http_500_then_succeeds() {
    let (a, _stop) = api(faults(Fault::Status500, 2)).await;
    let (r, log) = fetch(&format!("{}?results=5", a.url()), Duration::from_secs(5)).await;
    assert_eq!(parse_response(&r.unwrap()).unwrap().users.len(), 5);
    assert_eq!(a.requests.load(Ordering::SeqCst), 3);
    assert_eq!(
        log.iter().filter(|l| l.contains("HTTP 500")).count(),
        2,
        "{log:?}"
    );
}

#[tokio::test]
async fn error_body_with_200_is_retried() {
    let (a, _stop) = api(faults(Fault::ErrorBody, 1)).await;
    let (r, log) = fetch(&a.url(), Duration::from_secs(5)).await;
    assert!(r.is_ok());
    assert!(
        log[0].contains("the API returned an error: Uh oh"),
        "{log:?}"
    );
}

#[tokio::test]
async fn honours_retry_after() {
    let (a, _stop) = api(faults(
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        1,
    ))
    .await;
    let t = Instant::now();
    let (r, log) = fetch(&a.url(), Duration::from_secs(5)).await;
    assert!(r.is_ok());
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        t.elapsed()
    );
    assert!(
        log[0].contains("HTTP 429")
            && log[0].contains("Retry-After 1s")
            && log[0].contains("in 1.0s"),
        "{log:?}"
    );
}

#[tokio::test]
async fn slow_response_times_out_and_is_retried() {
    let (a, _stop) = api(faults(Fault::Slow { ms: 3000 }, 1)).await;
    let (r, log) = fetch(&a.url(), Duration::from_millis(300)).await;
    assert!(r.is_ok());
    assert!(log[0].contains("timed out"), "{log:?}");
}

#[tokio::test]
async fn gives_up_after_all_attempts_as_retryable() {
    let cfg = OfflineApiConfig {
        faults: Faults {
            fault: Some(Fault::Status500),
            first: 0,
            every: Some(1),
        },
        ..Default::default()
    };
    let (a, _stop) = api(cfg).await;
    let (r, log) = fetch(&a.url(), Duration::from_secs(5)).await;
    assert!(
        matches!(&r, Err(TaskError::Retryable(m)) if m.contains("after 4 attempt(s): HTTP 500")),
        "{r:?}"
    );
    assert_eq!(log.len(), 3);
    assert_eq!(a.requests.load(Ordering::SeqCst), 4);
    let (r, _) = fetch(&format!("http://{}/nope", a.addr), Duration::from_secs(5)).await;
    assert!(matches!(r, Err(TaskError::Fatal(m)) if m.contains("HTTP 404")));
}

#[tokio::test]
async fn malformed_users_are_served_when_asked() {
    let (a, _stop) = api(faults(Fault::MalformedUsers, 1)).await;
    let (r, _) = fetch(&format!("{}?results=20", a.url()), Duration::from_secs(5)).await;
    let users = parse_response(&r.unwrap()).unwrap().users;
    assert_eq!(
        users
            .iter()
            .filter(|u| u["location"]["coordinates"]["latitude"] == "not a number")
            .count(),
        2
    );
}

#[tokio::test]
async fn fixture_mode_pages_through_the_recorded_users() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/randomuser");
    let cfg = OfflineApiConfig::default().with_fixtures(&dir).unwrap();
    let pool = parse_response(&std::fs::read(dir.join("results-5000.json")).unwrap())
        .unwrap()
        .users;
    let (a, _stop) = api(cfg).await;
    let (r, _) = fetch(
        &format!("{}?results=50&page=3", a.url()),
        Duration::from_secs(5),
    )
    .await;
    let users = parse_response(&r.unwrap()).unwrap().users;
    assert_eq!(users[..], pool[100..150]);
    assert!(
        OfflineApiConfig::default()
            .with_fixtures(&dir.join("missing"))
            .is_err()
    );
}
