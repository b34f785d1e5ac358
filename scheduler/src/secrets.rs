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

/// Resolves `${VAR}` references in `template` with `lookup`.
pub fn resolve_with(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
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
            match (lookup(name).filter(|v| !v.is_empty()), fallback) {
                (Some(v), _) => {
                    out.push_str(&v);
                    secrets.push(v);
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

/// Resolves `${VAR}` references from the process environment.
pub fn resolve(template: &str) -> Result<Resolved, String> {
    resolve_with(template, |n| std::env::var(n).ok())
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
    fn masks_secrets() {
        let secrets = vec!["s3cr3t".to_string(), "ab".to_string()];
        assert_eq!(mask("token=s3cr3t; ab", &secrets), "token=***; ab");
    }
}
