//! What a task does: the [`Operator`] trait that task kinds implement, the
//! context a try receives, and the [`TaskKind`] registry used to validate
//! kind-specific settings and build operators.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::timetable::DataInterval;

/// How a successful try ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The work was done.
    Success,
    /// The task decided there was nothing to do (e.g. a shell exit code 99).
    Skipped,
}

/// Why a try failed, and whether another try may help. Decided here, once:
/// retries, backoff and `upstream_failed` all follow from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// A transient failure (network, non-zero exit, timeout): retry if tries remain.
    #[error("{0}")]
    Retryable(String),
    /// A failure another try cannot fix (bad settings, missing secret): fail now.
    #[error("{0}")]
    Fatal(String),
}

impl TaskError {
    /// Whether a retry may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TaskError::Retryable(_))
    }
}

/// Where a try writes its log lines. Cheap to clone; lines are stored per try
/// in the metadata database. Secret values registered with [`TaskLog::mask`]
/// are replaced by `***` in every later line.
#[derive(Clone)]
pub struct TaskLog {
    tx: mpsc::UnboundedSender<String>,
    secrets: Arc<Mutex<Vec<String>>>,
}

impl TaskLog {
    /// A log and the receiving end its lines arrive on.
    pub fn channel() -> (TaskLog, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            TaskLog {
                tx,
                secrets: Arc::default(),
            },
            rx,
        )
    }

    /// Writes one line (secrets masked).
    pub fn line(&self, text: impl AsRef<str>) {
        let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        let masked = crate::secrets::mask(text.as_ref(), &secrets);
        // The receiver lives as long as the try; a closed channel means the try is over.
        let _ = self.tx.send(masked);
    }

    /// Masks `secret` in every later line.
    pub fn mask(&self, secret: &str) {
        let mut s = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        if !secret.is_empty() && !s.iter().any(|x| x == secret) {
            s.push(secret.to_string());
        }
    }
}

impl fmt::Debug for TaskLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskLog")
    }
}

/// Everything a try knows about itself.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// 1-based try number.
    pub try_number: u32,
    /// The run's logical date.
    pub logical_date: DateTime<Utc>,
    /// The run's data interval.
    pub data_interval: DataInterval,
    /// The run's conf as given at trigger time.
    pub conf: Value,
    /// The DAG's params: defaults overridden by the conf.
    pub params: Map<String, Value>,
    /// The try's log.
    pub log: TaskLog,
    /// Cancelled when the try must stop (timeout, shutdown, cleared).
    pub cancel: CancellationToken,
}

/// What a task does. Implementations must return soon after `ctx.cancel`
/// fires, leaving nothing running behind them.
#[async_trait]
pub trait Operator: Send + Sync + fmt::Debug {
    /// Runs one try.
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError>;
}

/// A problem in a task's kind-specific settings, at a byte span of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// Byte range in the DAG file, when known.
    pub span: Option<Range<usize>>,
    /// A plain sentence.
    pub message: String,
}

impl SettingsError {
    /// An error at `span`.
    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        SettingsError {
            span: Some(span),
            message: message.into(),
        }
    }
}

/// The kind-specific keys of one `[[task]]` table, still carrying their
/// positions in the file.
pub struct KindSettings<'a> {
    pub(crate) value: toml::Spanned<toml::de::DeValue<'a>>,
    pub(crate) source: &'a str,
    pub(crate) file: std::path::PathBuf,
    pub(crate) warnings: std::cell::RefCell<Vec<SettingsError>>,
}

impl KindSettings<'_> {
    /// Deserializes the settings into the kind's settings struct (use
    /// `#[serde(deny_unknown_fields)]` so a typo is reported).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, SettingsError> {
        let de = toml::de::ValueDeserializer::from(self.value.clone());
        T::deserialize(de).map_err(|e| SettingsError {
            span: e.span(),
            message: e.message().to_string(),
        })
    }

    /// Checks the settings against `T`'s schema, reporting every problem at
    /// its key, then deserializes them (serde's error, if any, is the one
    /// left: a check the schema cannot express).
    pub fn checked<T: DeserializeOwned + schemars::JsonSchema + 'static>(
        &self,
    ) -> Result<T, Vec<SettingsError>> {
        let problems = diag::Schema::of::<T>().check(&self.value, &[]);
        if !problems.is_empty() {
            return Err(problems
                .into_iter()
                .map(|p| SettingsError::at(p.span, p.message))
                .collect());
        }
        self.deserialize().map_err(|e| vec![e])
    }

    /// The settings as JSON (for display; `${VAR}` references are kept as written).
    pub fn to_json(&self) -> Value {
        let de = toml::de::ValueDeserializer::from(self.value.clone());
        serde::Deserialize::deserialize(de).unwrap_or(Value::Null)
    }

    /// Records something valid but probably not meant; `dags validate`
    /// shows it with the position of the key `message` names (see
    /// [`KindSettings::span_named_in`]).
    pub fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        let span = self.span_named_in(&message);
        self.warnings
            .borrow_mut()
            .push(SettingsError { span, message });
    }

    /// Where the key a message is about is written: the first `key` in
    /// backticks, or the leading `key:` / `key.sub:`, that the settings
    /// hold. Kinds' own checks name keys this way without spans.
    pub fn span_named_in(&self, message: &str) -> Option<Range<usize>> {
        let toml::de::DeValue::Table(t) = self.value.get_ref() else {
            return None;
        };
        let leading = message
            .split([':', '.', ' '])
            .next()
            .filter(|w| !w.is_empty());
        let quoted = message.split('`').skip(1).step_by(2);
        quoted
            .chain(leading)
            .find_map(|name| t.get_key_value(name).map(|(k, _)| k.span()))
    }

    /// The file's text, for kinds that need positions of their own.
    pub fn source(&self) -> &str {
        self.source
    }

    /// The DAG file these settings are in (files a task names, such as a
    /// `sql_file`, are relative to its folder).
    pub fn dag_file(&self) -> &std::path::Path {
        &self.file
    }

    /// Where the value of top-level key `key` is written in the file.
    pub fn value_span(&self, key: &str) -> Option<Range<usize>> {
        let toml::de::DeValue::Table(t) = self.value.get_ref() else {
            return None;
        };
        t.get(key).map(toml::Spanned::span)
    }
}

/// A task kind: validates its settings and builds an operator, without I/O.
pub trait TaskKind: Send + Sync {
    /// The name used in `kind = "…"`.
    fn name(&self) -> &'static str;
    /// One sentence for `tributary tasks kinds`.
    fn summary(&self) -> &'static str;
    /// JSON Schema of the kind's settings.
    fn settings_schema(&self) -> Value;
    /// Validates settings and builds the operator, reporting every problem found.
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>>;
}

/// The task kinds available to DAG files, by name.
#[derive(Clone, Default)]
pub struct Kinds(BTreeMap<&'static str, Arc<dyn TaskKind>>);

impl Kinds {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a kind (replacing one of the same name).
    pub fn register(&mut self, kind: Arc<dyn TaskKind>) -> &mut Self {
        self.0.insert(kind.name(), kind);
        self
    }

    /// The kind with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn TaskKind>> {
        self.0.get(name)
    }

    /// Every kind, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn TaskKind>> {
        self.0.values()
    }

    /// Every kind name.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.keys().copied().collect()
    }
}

impl fmt::Debug for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}
