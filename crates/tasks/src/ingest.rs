//! API → Kafka task kinds: `random_user_to_kafka` (the reference job) and
//! the generic `http_json_to_kafka`, on one core: a number of requests (or a
//! duration with an interval between requests, like the classic job's 120 s
//! every 10 s), each fetched robustly ([`crate::http`]), turned into keyed
//! records (bad ones skipped, counted and logged; the try fails above a bad
//! ratio), and produced idempotently with every delivery awaited
//! ([`crate::kafka`]). The log ends with what was delivered per partition.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use reqwest::Url;
use scheduler::duration::Dur;
use scheduler::operator::{
    KindSettings, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskOutcome,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::http::{self, RequestRetries};
use crate::kafka::{DeliveryReport, KafkaSettings, produce_all};
use crate::random_user::{self, Provenance};

/// How many requests, and how far apart.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cadence {
    /// Number of requests (default 1 when no duration is given).
    pub requests: Option<u32>,
    /// Keep requesting for this long (with `interval`), e.g. "120s".
    pub duration: Option<Dur>,
    /// Pause between requests, e.g. "10s". Default 0.
    pub interval: Option<Dur>,
}

impl Cadence {
    fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.requests.is_some() && self.duration.is_some() {
            out.push("give either `requests` or `duration` (with `interval`), not both".into());
        }
        if self.requests == Some(0) {
            out.push("`requests` must be at least 1".into());
        }
        if self.duration.is_some() && self.interval.is_none_or(|i| i.0.is_zero()) {
            out.push("`duration` needs a non-zero `interval` between requests".into());
        }
        out
    }

    /// Requests to make and the pause between them.
    pub fn plan(&self) -> (u32, Duration) {
        let interval = self.interval.map_or(Duration::ZERO, |d| d.0);
        match (self.requests, self.duration) {
            (Some(n), _) => (n, interval),
            (None, Some(d)) if !interval.is_zero() => (
                u32::try_from((d.0.as_millis() / interval.as_millis()).max(1)).unwrap_or(u32::MAX),
                interval,
            ),
            _ => (1, interval),
        }
    }
}

/// HTTP settings shared by the ingest kinds.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Whole-request timeout. Default "10s".
    pub request_timeout: Option<Dur>,
    /// Connect timeout. Default "5s".
    pub connect_timeout: Option<Dur>,
    /// Attempts per request (network errors, 5xx, 429, error bodies). Default 5.
    pub attempts: Option<u32>,
}

/// Settings of `random_user_to_kafka`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomUserSettings {
    /// API URL (may hold `${VAR}`). Default:
    /// `${TRIBUTARY_RANDOM_USER_URL:-https://randomuser.me/api/}`.
    #[serde(default = "default_random_user_url")]
    pub url: String,
    /// Users per request, 1–5000. Default 1.
    #[serde(default = "one")]
    pub results: u32,
    /// Only these nationalities (the API's `nat`, e.g. "fr,de").
    pub nat: Option<String>,
    /// Seed: makes the pages deterministic (request i asks for page i).
    pub seed: Option<String>,
    /// Topic. Default "users".
    #[serde(default = "default_users_topic")]
    pub topic: String,
    /// Fail the try when more than this share of a response's users cannot be
    /// transformed (they are skipped and logged either way). Default 0.1.
    #[serde(default = "default_bad_ratio")]
    pub max_bad_ratio: f64,
    /// Requests and cadence.
    #[serde(flatten)]
    pub cadence: Cadence,
    /// HTTP behaviour.
    #[serde(flatten)]
    pub http: HttpSettings,
    /// Kafka producer.
    #[serde(default)]
    pub kafka: KafkaSettings,
}

/// Settings of `http_json_to_kafka`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpJsonSettings {
    /// URL to GET (may hold `${VAR}`).
    pub url: String,
    /// JSON pointer to the records in the body ("/results"); an array gives
    /// one record per element, anything else one record. Default: the body.
    #[serde(default)]
    pub records_pointer: String,
    /// JSON pointer to each record's key ("/login/uuid"). Default: no key.
    pub key_pointer: Option<String>,
    /// Topic.
    pub topic: String,
    /// Requests and cadence.
    #[serde(flatten)]
    pub cadence: Cadence,
    /// HTTP behaviour.
    #[serde(flatten)]
    pub http: HttpSettings,
    /// Kafka producer.
    #[serde(default)]
    pub kafka: KafkaSettings,
}

fn default_random_user_url() -> String {
    "${TRIBUTARY_RANDOM_USER_URL:-https://randomuser.me/api/}".into()
}
fn default_users_topic() -> String {
    "users".into()
}
fn default_bad_ratio() -> f64 {
    0.1
}
fn one() -> u32 {
    1
}

fn errors(v: Vec<String>) -> Result<(), Vec<SettingsError>> {
    if v.is_empty() {
        Ok(())
    } else {
        Err(v
            .into_iter()
            .map(|m| SettingsError {
                span: None,
                message: m,
            })
            .collect())
    }
}

fn check_common(url: &str, topic: &str, cadence: &Cadence, kafka: &KafkaSettings) -> Vec<String> {
    let mut v = cadence.check();
    v.extend(kafka.validate());
    if let Err(e) = scheduler::secrets::check_syntax(url) {
        v.push(format!("url: {e}"));
    } else if !url.contains("${") && Url::parse(url).is_err() {
        v.push(format!("url {url:?} is not a valid URL"));
    }
    if topic.is_empty()
        || topic.len() > 249
        || !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        v.push(format!("topic {topic:?} is not a valid Kafka topic name"));
    }
    v
}

/// One record to produce, or why an input item was skipped.
type Extracted = Vec<Result<(String, String), String>>;

/// What differs between the kinds: the query and the record extraction.
trait Source: Send + Sync + std::fmt::Debug {
    fn url(&self) -> &str;
    fn topic(&self) -> &str;
    fn cadence(&self) -> &Cadence;
    fn http(&self) -> &HttpSettings;
    fn kafka(&self) -> &KafkaSettings;
    fn max_bad_ratio(&self) -> f64;
    fn request_url(&self, base: &Url, index: u32) -> Url;
    fn check_body(&self, body: &[u8]) -> Result<(), String>;
    fn extract(&self, body: &[u8], ctx: &TaskContext) -> Result<Extracted, TaskError>;
}

/// The settings every source has, under the same field names.
macro_rules! common_accessors {
    () => {
        fn url(&self) -> &str {
            &self.url
        }
        fn topic(&self) -> &str {
            &self.topic
        }
        fn cadence(&self) -> &Cadence {
            &self.cadence
        }
        fn http(&self) -> &HttpSettings {
            &self.http
        }
        fn kafka(&self) -> &KafkaSettings {
            &self.kafka
        }
    };
}

impl Source for RandomUserSettings {
    common_accessors!();
    fn max_bad_ratio(&self) -> f64 {
        self.max_bad_ratio
    }
    fn request_url(&self, base: &Url, index: u32) -> Url {
        let mut u = base.clone();
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("results", &self.results.to_string());
            if let Some(seed) = &self.seed {
                q.append_pair("seed", seed)
                    .append_pair("page", &(index + 1).to_string());
            }
            if let Some(nat) = &self.nat {
                q.append_pair("nat", nat);
            }
        }
        u
    }
    fn check_body(&self, body: &[u8]) -> Result<(), String> {
        random_user::parse_users_raw(body)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    fn extract(&self, body: &[u8], ctx: &TaskContext) -> Result<Extracted, TaskError> {
        let users =
            random_user::parse_users_raw(body).map_err(|e| TaskError::Retryable(e.to_string()))?;
        let prov = Provenance {
            fetched_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            dag_id: ctx.dag_id.clone(),
            run_id: ctx.run_id.clone(),
            logical_date: ctx
                .logical_date
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        };
        Ok(users
            .iter()
            .map(|u| {
                let rec = random_user::transform_raw(u, &prov)?;
                let payload = serde_json::to_string(&rec).map_err(|e| e.to_string())?;
                Ok((rec.user_id, payload))
            })
            .collect())
    }
}

impl Source for HttpJsonSettings {
    common_accessors!();
    fn max_bad_ratio(&self) -> f64 {
        0.0
    }
    fn request_url(&self, base: &Url, _index: u32) -> Url {
        base.clone()
    }
    fn check_body(&self, body: &[u8]) -> Result<(), String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        v.pointer(&self.records_pointer)
            .map(|_| ())
            .ok_or_else(|| format!("no value at records_pointer {:?}", self.records_pointer))
    }
    fn extract(&self, body: &[u8], _ctx: &TaskContext) -> Result<Extracted, TaskError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| TaskError::Retryable(format!("the body is not JSON: {e}")))?;
        let records = match v.pointer(&self.records_pointer) {
            Some(Value::Array(a)) => a.clone(),
            Some(other) => vec![other.clone()],
            None => {
                return Err(TaskError::Retryable(format!(
                    "no value at records_pointer {:?}",
                    self.records_pointer
                )));
            }
        };
        Ok(records
            .into_iter()
            .map(|r| {
                let key = match &self.key_pointer {
                    Some(p) => match r.pointer(p) {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => return Err(format!("record has no key at {p:?}")),
                    },
                    None => String::new(),
                };
                Ok((key, r.to_string()))
            })
            .collect())
    }
}

/// The operator running a [`Source`].
#[derive(Debug)]
pub struct Ingest<S>(pub S);

#[async_trait]
impl<S: Source + 'static> Operator for Ingest<S> {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let s = &self.0;
        let (producer, bootstrap, secrets) = s.kafka().producer()?;
        for x in &secrets {
            ctx.log.mask(x);
        }
        let url = scheduler::secrets::resolve(s.url())
            .map_err(|e| TaskError::Fatal(format!("url: {e}")))?;
        for x in &url.secrets {
            ctx.log.mask(x);
        }
        let base = Url::parse(&url.value)
            .map_err(|e| TaskError::Fatal(format!("url {:?}: {e}", url.value)))?;
        let h = s.http();
        let client = http::client(
            h.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
            h.request_timeout.map_or(Duration::from_secs(10), |d| d.0),
        )?;
        let policy = RequestRetries {
            attempts: h.attempts.unwrap_or(5).max(1),
            ..RequestRetries::default()
        };
        let (n, interval) = s.cadence().plan();
        ctx.log.line(format!(
            "{n} request(s) {}to {} → Kafka topic {} on {bootstrap}",
            if interval.is_zero() {
                String::new()
            } else {
                format!("every {} ", humantime::format_duration(interval))
            },
            base,
            s.topic()
        ));
        let mut delivered = DeliveryReport::default();
        let (mut good, mut bad) = (0u64, 0u64);
        for i in 0..n {
            if i > 0 && !interval.is_zero() {
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Err(TaskError::Retryable("cancelled".into())),
                    () = tokio::time::sleep(interval) => {}
                }
            }
            let req = s.request_url(&base, i);
            let body = http::get(&client, req.as_str(), &policy, &ctx.log, &ctx.cancel, |b| {
                s.check_body(b)
            })
            .await?;
            let items = s.extract(&body, &ctx)?;
            let mut records = Vec::with_capacity(items.len());
            let mut bad_here = 0u64;
            for (j, item) in items.iter().enumerate() {
                match item {
                    Ok(r) => records.push(r.clone()),
                    Err(reason) => {
                        bad_here += 1;
                        if bad_here <= 5 {
                            ctx.log
                                .line(format!("request {}: record {j} skipped: {reason}", i + 1));
                        }
                    }
                }
            }
            let share = if items.is_empty() {
                0.0
            } else {
                bad_here as f64 / items.len() as f64
            };
            if bad_here > 0 && share > s.max_bad_ratio() {
                return Err(TaskError::Fatal(format!(
                    "request {}: {bad_here} of {} record(s) could not be used ({:.1}% > max_bad_ratio {:.1}%); nothing from it was produced",
                    i + 1,
                    items.len(),
                    share * 100.0,
                    s.max_bad_ratio() * 100.0
                )));
            }
            let report = produce_all(&producer, s.topic(), &records).await?;
            delivered.merge(&report);
            good += records.len() as u64;
            bad += bad_here;
        }
        for l in delivered.lines(s.topic()) {
            ctx.log.line(l);
        }
        ctx.log.line(format!(
            "delivered {good} record(s) to {}, skipped {bad} bad record(s)",
            s.topic()
        ));
        Ok(TaskOutcome::Success)
    }
}

/// The `random_user_to_kafka` kind.
pub struct RandomUserKind;

impl TaskKind for RandomUserKind {
    fn name(&self) -> &'static str {
        "random_user_to_kafka"
    }
    fn summary(&self) -> &'static str {
        "Fetches users from the random-user API and produces one record each to Kafka (keyed by user_id)."
    }
    fn settings_schema(&self) -> Value {
        crate::kind_settings::schema::<RandomUserSettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: RandomUserSettings = settings.checked()?;
        let mut v = check_common(&s.url, &s.topic, &s.cadence, &s.kafka);
        if !(1..=random_user::MAX_RESULTS as u32).contains(&s.results) {
            v.push(format!("results must be from 1 to 5000, got {}", s.results));
        }
        if !(0.0..=1.0).contains(&s.max_bad_ratio) {
            v.push(format!(
                "max_bad_ratio must be between 0 and 1, got {}",
                s.max_bad_ratio
            ));
        }
        errors(v)?;
        Ok(Arc::new(Ingest(s)))
    }
}

/// The `http_json_to_kafka` kind.
pub struct HttpJsonKind;

impl TaskKind for HttpJsonKind {
    fn name(&self) -> &'static str {
        "http_json_to_kafka"
    }
    fn summary(&self) -> &'static str {
        "GETs a JSON API, picks records with a JSON pointer and produces each to Kafka."
    }
    fn settings_schema(&self) -> Value {
        crate::kind_settings::schema::<HttpJsonSettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: HttpJsonSettings = settings.checked()?;
        let mut v = check_common(&s.url, &s.topic, &s.cadence, &s.kafka);
        for (what, p) in [
            ("records_pointer", Some(&s.records_pointer)),
            ("key_pointer", s.key_pointer.as_ref()),
        ] {
            if let Some(p) = p.filter(|p| !p.is_empty() && !p.starts_with('/')) {
                v.push(format!(
                    "{what} {p:?} is not a JSON pointer (it starts with '/', e.g. \"/results\")"
                ));
            }
        }
        errors(v)?;
        Ok(Arc::new(Ingest(s)))
    }
}
