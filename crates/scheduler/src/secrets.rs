//! `${VAR}` references in settings: resolved from the environment at run
//! time, never at parse time, and never written to logs (values found are
//! masked in task logs).
//!
//! Syntax: `${NAME}`, `${NAME:-fallback}` (used when NAME is unset or empty),
//! and `$$` for a literal `$`.

/// A template with its `${VAR}` references resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The text with references replaced.
    pub value: String,
    /// The values that came from the environment (to mask in logs).
    pub secrets: Vec<String>,
}

use std::collections::BTreeMap;
use std::sync::RwLock;

static PROVIDED: RwLock<BTreeMap<String, String>> = RwLock::new(BTreeMap::new());

/// Provides a value for `${name}` when the environment leaves it unset.
/// `tributary standalone` announces its dev broker and offline API this way
/// without touching the process environment. Provided values are addresses,
/// not secrets: they are not masked.
pub fn provide(name: &str, value: &str) {
    if let Ok(mut m) = PROVIDED.write() {
        m.insert(name.to_string(), value.to_string());
    }
}

/// Every provided value whose variable the environment leaves unset (for
/// child processes such as shell tasks).
pub fn provided() -> Vec<(String, String)> {
    PROVIDED
        .read()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| std::env::var_os(k).is_none())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Resolves `${VAR}` references in `template` with `lookup`; every value found is a secret.
pub fn resolve_with(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Resolved, String> {
    resolve_inner(template, |n| lookup(n).map(|v| (v, true)))
}

/// Resolves with a lookup that also says whether each value is a secret.
fn resolve_inner(
    template: &str,
    lookup: impl Fn(&str) -> Option<(String, bool)>,
) -> Result<Resolved, String> {
    let mut out = String::with_capacity(template.len());
    let mut secrets = Vec::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let close = body
                .find('}')
                .ok_or_else(|| format!("unclosed reference \"${{{body}\": add the closing '}}'"))?;
            let inner = &body[..close];
            let (name, fallback) = match inner.split_once(":-") {
                Some((n, f)) => (n, Some(f)),
                None => (inner, None),
            };
            check_name(name)?;
            match (lookup(name).filter(|(v, _)| !v.is_empty()), fallback) {
                (Some((v, secret)), _) => {
                    out.push_str(&v);
                    if secret {
                        secrets.push(v);
                    }
                }
                (None, Some(f)) => out.push_str(f),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (referenced as ${{{name}}})"
                    ));
                }
            }
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Resolved {
        value: out,
        secrets,
    })
}

/// Resolves `${VAR}` references from the process environment, then from
/// [`provide`]d values.
pub fn resolve(template: &str) -> Result<Resolved, String> {
    resolve_inner(template, |n| match std::env::var(n) {
        Ok(v) => Some((v, true)),
        Err(_) => PROVIDED
            .read()
            .ok()
            .and_then(|m| m.get(n).cloned())
            .map(|v| (v, false)),
    })
}

/// Checks the syntax of every reference without reading the environment
/// (used when validating DAG files).
pub fn check_syntax(template: &str) -> Result<(), String> {
    resolve_with(template, |_| Some("x".into())).map(|_| ())
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid environment variable name {name:?} in ${{…}} reference"
        ))
    }
}

/// Replaces every occurrence of each secret in `line` with `***`.
pub fn mask(line: &str, secrets: &[String]) -> String {
    let mut out = line.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: &str) -> Option<String> {
        match n {
            "TOKEN" => Some("s3cr3t".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn resolves_references() {
        let r = resolve_with(
            "Bearer ${TOKEN} costs $$5, ${MISSING:-none}, ${EMPTY:-e}",
            env,
        )
        .unwrap();
        assert_eq!(r.value, "Bearer s3cr3t costs $5, none, e");
        assert_eq!(r.secrets, vec!["s3cr3t".to_string()]);
        assert_eq!(
            resolve_with("plain $HOME", env).unwrap().value,
            "plain $HOME"
        );
    }

    #[test]
    fn errors_name_the_variable() {
        assert!(
            resolve_with("${NOPE}", env)
                .unwrap_err()
                .contains("NOPE is not set")
        );
        assert!(
            resolve_with("${TOKEN", env)
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            check_syntax("${1BAD}")
                .unwrap_err()
                .contains("invalid environment variable name")
        );
        assert!(check_syntax("${OK_NAME} and ${X:-y}").is_ok());
    }

    #[test]
    fn provided_values_fill_unset_variables_and_are_not_secrets() {
        provide("TRIBUTARY_TEST_PROVIDED_ONLY", "127.0.0.1:9092");
        let r = resolve("kafka at ${TRIBUTARY_TEST_PROVIDED_ONLY}").unwrap();
        assert_eq!(r.value, "kafka at 127.0.0.1:9092");
        assert!(r.secrets.is_empty());
        assert!(provided().contains(&(
            "TRIBUTARY_TEST_PROVIDED_ONLY".into(),
            "127.0.0.1:9092".into()
        )));
        // The real environment wins (HOME is always set).
        provide("HOME", "/nowhere");
        assert_ne!(resolve("${HOME}").unwrap().value, "/nowhere");
        assert!(!provided().iter().any(|(k, _)| k == "HOME"));
    }

    #[test]
    fn masks_secrets() {
        let secrets = vec!["s3cr3t".to_string(), "ab".to_string()];
        assert_eq!(mask("token=s3cr3t; ab", &secrets), "token=***; ab");
    }
}
