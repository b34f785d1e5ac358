//! `shell`: runs a bash command. The run's coordinates reach it as
//! environment variables; stdout and stderr go to the task log line by line;
//! a non-zero exit fails the try (retryable), exit code 99 (configurable)
//! skips the task. On cancellation (timeout, shutdown) the whole process
//! group gets SIGTERM, then SIGKILL after a grace period.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use scheduler::operator::{
    KindSettings, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskLog, TaskOutcome,
};
use scheduler::secrets;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// Time between SIGTERM and SIGKILL when a try is cancelled.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Settings of a `shell` task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellSettings {
    /// The command, run with `bash -c`. Bash expands `$VAR` and `${VAR}` from
    /// the environment itself.
    pub command: String,
    /// Extra environment variables; values may hold `${VAR}` references,
    /// resolved at run time and masked in the log.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (may hold `${VAR}` references). Default: the
    /// scheduler's working directory.
    pub cwd: Option<String>,
    /// Exit code that marks the task skipped instead of failed. Default 99.
    #[serde(default = "default_skip_exit_code")]
    pub skip_exit_code: Option<u8>,
}

fn default_skip_exit_code() -> Option<u8> {
    Some(99)
}

/// The `shell` kind.
pub struct ShellKind;

impl TaskKind for ShellKind {
    fn name(&self) -> &'static str {
        "shell"
    }
    fn summary(&self) -> &'static str {
        "Runs a bash command; run coordinates and params arrive as TRIBUTARY_* environment variables."
    }
    fn settings_schema(&self) -> Value {
        crate::kind_settings::schema::<ShellSettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: ShellSettings = settings.checked()?;
        let mut errors = Vec::new();
        let at = |msg: String| SettingsError {
            span: None,
            message: msg,
        };
        if s.command.trim().is_empty() {
            errors.push(at("`command` must not be empty".into()));
        }
        if s.command.contains("{{") && s.command.contains("}}") {
            settings.warn(
                "`command` contains `{{ … }}`, which is run literally (there is no templating): \
                 the run's coordinates and params arrive as environment variables, \
                 e.g. \"$TRIBUTARY_LOGICAL_DATE\" or \"$TRIBUTARY_DATA_INTERVAL_START\"",
            );
        }
        for (k, v) in &s.env {
            let valid = k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                errors.push(at(format!("env: invalid variable name {k:?}")));
            }
            if let Err(e) = secrets::check_syntax(v) {
                errors.push(at(format!("env.{k}: {e}")));
            }
        }
        if let Some(cwd) = &s.cwd
            && let Err(e) = secrets::check_syntax(cwd)
        {
            errors.push(at(format!("cwd: {e}")));
        }
        if errors.is_empty() {
            Ok(Arc::new(Shell(s)))
        } else {
            Err(errors)
        }
    }
}

/// The `shell` operator.
#[derive(Debug)]
pub struct Shell(pub ShellSettings);

/// The environment variables every shell try receives.
pub fn context_env(ctx: &TaskContext) -> Vec<(String, String)> {
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let mut env = vec![
        ("TRIBUTARY_DAG_ID".into(), ctx.dag_id.clone()),
        ("TRIBUTARY_RUN_ID".into(), ctx.run_id.clone()),
        ("TRIBUTARY_TASK_ID".into(), ctx.task_id.clone()),
        ("TRIBUTARY_TRY_NUMBER".into(), ctx.try_number.to_string()),
        ("TRIBUTARY_LOGICAL_DATE".into(), ts(ctx.logical_date)),
        (
            "TRIBUTARY_DATA_INTERVAL_START".into(),
            ts(ctx.data_interval.start),
        ),
        (
            "TRIBUTARY_DATA_INTERVAL_END".into(),
            ts(ctx.data_interval.end),
        ),
        ("TRIBUTARY_CONF".into(), ctx.conf.to_string()),
    ];
    for (name, v) in &ctx.params {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let key: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        env.push((format!("TRIBUTARY_PARAM_{key}"), text));
    }
    env
}

fn signal_group(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // The group may already be gone; nothing to do then.
        let _ = killpg(Pid::from_raw(pid), sig);
    }
}

async fn pump<R: AsyncRead + Unpin>(reader: R, log: TaskLog) {
    let mut r = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                log.line(line.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

#[async_trait]
impl Operator for Shell {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let s = &self.0;
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(&s.command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (k, v) in secrets::provided().into_iter().chain(context_env(&ctx)) {
            cmd.env(k, v);
        }
        for (k, template) in &s.env {
            let r = secrets::resolve(template)
                .map_err(|e| TaskError::Fatal(format!("env.{k}: {e}")))?;
            for secret in &r.secrets {
                ctx.log.mask(secret);
            }
            cmd.env(k, r.value);
        }
        if let Some(cwd) = &s.cwd {
            let r = secrets::resolve(cwd).map_err(|e| TaskError::Fatal(format!("cwd: {e}")))?;
            if !std::path::Path::new(&r.value).is_dir() {
                return Err(TaskError::Fatal(format!("cwd {cwd:?} is not a directory")));
            }
            cmd.current_dir(r.value);
        }
        ctx.log.line(format!("$ {}", s.command));
        let mut child = cmd
            .spawn()
            .map_err(|e| TaskError::Retryable(format!("could not start bash: {e}")))?;
        let pid = child.id();
        let out = child
            .stdout
            .take()
            .map(|o| tokio::spawn(pump(o, ctx.log.clone())));
        let err = child
            .stderr
            .take()
            .map(|e| tokio::spawn(pump(e, ctx.log.clone())));
        let status = tokio::select! {
            st = child.wait() => st,
            () = ctx.cancel.cancelled() => {
                ctx.log.line("cancelled: sending SIGTERM to the command's process group");
                signal_group(pid, Signal::SIGTERM);
                match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                    Ok(st) => st,
                    Err(_) => {
                        ctx.log.line("still running after 5s: sending SIGKILL");
                        signal_group(pid, Signal::SIGKILL);
                        child.wait().await
                    }
                }
            }
        }
        .map_err(|e| TaskError::Retryable(format!("waiting for bash failed: {e}")))?;
        // Background processes the command left behind would keep the pipes
        // (and the try) open: the task is over, so its group goes too.
        signal_group(pid, Signal::SIGKILL);
        for h in [out, err].into_iter().flatten() {
            let _ = h.await;
        }
        if ctx.cancel.is_cancelled() {
            return Err(TaskError::Retryable("cancelled".into()));
        }
        match status.code() {
            Some(0) => Ok(TaskOutcome::Success),
            Some(c) if s.skip_exit_code.is_some_and(|skip| i32::from(skip) == c) => {
                ctx.log.line(format!("exit code {c}: task skipped"));
                Ok(TaskOutcome::Skipped)
            }
            Some(c) => Err(TaskError::Retryable(format!(
                "command exited with code {c}"
            ))),
            None => Err(TaskError::Retryable(format!(
                "command was killed by a signal ({status})"
            ))),
        }
    }
}
