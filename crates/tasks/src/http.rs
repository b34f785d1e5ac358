//! GET with the robustness a scheduled ingest needs: connect and request
//! timeouts, retries with exponential backoff and full jitter on network
//! errors, 5xx and 429 (honouring `Retry-After`), and a body check so an
//! API that reports errors with HTTP 200 is retried too. Every retry is
//! logged to the task log; 4xx other than 429 is fatal.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use scheduler::operator::{TaskError, TaskLog};
use tokio_util::sync::CancellationToken;

/// How hard one HTTP request is tried within a task try (attempts with
/// jittered backoff); not the task-level retries of `scheduler::dag::RetryPolicy`.
#[derive(Debug, Clone)]
pub struct RequestRetries {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Delay before the second attempt; doubles after each failure.
    pub base_delay: Duration,
    /// Upper bound of a delay (also of an honoured Retry-After).
    pub max_delay: Duration,
}

impl Default for RequestRetries {
    fn default() -> Self {
        RequestRetries {
            attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RequestRetries {
    /// Full jitter: a random delay in `[0, min(max, base * 2^(attempt-1))]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .checked_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(attempt);
        let unit = (h.finish() % 10_000) as f64 / 10_000.0;
        cap.mul_f64(unit)
    }
}

/// A client with connect and request timeouts.
pub fn client(
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, TaskError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TaskError::Fatal(format!("cannot build the HTTP client: {e}")))
}

/// `Retry-After` as a delay: seconds, or an HTTP date.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .to_string();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(&v).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

/// GETs `url`, retrying per `policy`; `check` inspects a 2xx body and
/// returns an error message to retry on. Returns the body.
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    policy: &RequestRetries,
    log: &TaskLog,
    cancel: &CancellationToken,
    check: impl Fn(&[u8]) -> Result<(), String>,
) -> Result<Vec<u8>, TaskError> {
    let attempts = policy.attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        let mut wait = None;
        match client.get(url).send().await {
            Err(e) => {
                last = if e.is_timeout() {
                    format!("timed out ({e})")
                } else {
                    format!("request failed ({e})")
                };
            }
            Ok(resp) => {
                let status = resp.status();
                if status == StatusCode::TOO_MANY_REQUESTS {
                    wait = retry_after(&resp).map(|d| d.min(policy.max_delay));
                    last = format!(
                        "HTTP 429 Too Many Requests{}",
                        wait.map_or(String::new(), |d| format!(
                            " (Retry-After {}s)",
                            d.as_secs()
                        ))
                    );
                } else if status.is_server_error() {
                    last = format!("HTTP {status}");
                } else if !status.is_success() {
                    let body = resp.text().await.unwrap_or_default();
                    return Err(TaskError::Fatal(format!(
                        "GET {url}: HTTP {status}: {}",
                        body.chars().take(300).collect::<String>()
                    )));
                } else {
                    match resp.bytes().await {
                        Err(e) => last = format!("reading the body failed ({e})"),
                        Ok(body) => match check(&body) {
                            Ok(()) => return Ok(body.to_vec()),
                            Err(msg) => last = msg,
                        },
                    }
                }
            }
        }
        if attempt == attempts {
            break;
        }
        let delay = wait.unwrap_or_else(|| policy.backoff(attempt));
        log.line(format!(
            "GET {url}: {last}; retry {attempt}/{} in {:.1}s",
            attempts - 1,
            delay.as_secs_f64()
        ));
        tokio::select! {
            () = cancel.cancelled() => return Err(TaskError::Retryable(format!("cancelled while retrying GET {url}"))),
            () = tokio::time::sleep(delay) => {}
        }
    }
    Err(TaskError::Retryable(format!(
        "GET {url} failed after {attempts} attempt(s): {last}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RequestRetries {
            attempts: 9,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for a in 1..=9 {
            let cap = (100u64 << (a - 1)).min(1000);
            assert!(p.backoff(a) <= Duration::from_millis(cap), "attempt {a}");
        }
    }
}
