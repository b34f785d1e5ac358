//! The `txn` app ids a transform records in each commit of its output: the
//! last source version the output holds, and the version of every other
//! table the SQL read (reference data), so the commit says exactly what it
//! was computed from.

/// The app id of a transform's checkpoint on its source table.
pub fn source_app_id(transform: &str, table: &str) -> String {
    format!("tributary-transform:{transform}:source:{table}")
}

/// The app id recording which version of a reference table a transform
/// commit read.
pub fn reference_app_id(transform: &str, table: &str) -> String {
    format!("tributary-transform:{transform}:ref:{table}")
}

/// The app id of a windowed transform's watermark state: `role` is `wm`
/// (the latest event time of source partition `part`, microseconds),
/// `seen` (when that partition last had rows, source commit milliseconds)
/// or `watermark` (the watermark itself, `part` = `all`).
pub fn state_app_id(transform: &str, role: &str, part: &str) -> String {
    format!("tributary-transform:{transform}:{role}:{part}")
}

/// The app id of the late rows a windowed transform put in its late
/// table (the version is the source version they came with).
pub fn late_app_id(transform: &str) -> String {
    format!("tributary-transform:{transform}:late")
}

/// Splits an app id made here into (transform, role, name): role `source`
/// or `ref` with a table name, or a watermark-state role with a partition.
pub fn parse_app_id(id: &str) -> Option<(&str, &str, &str)> {
    let rest = id.strip_prefix("tributary-transform:")?;
    let (transform, rest) = rest.split_once(':')?;
    let (role, name) = rest.split_once(':')?;
    matches!(role, "source" | "ref" | "wm" | "seen" | "watermark")
        .then_some((transform, role, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_round_trip() {
        let id = source_app_id("enriched", "users");
        assert_eq!(id, "tributary-transform:enriched:source:users");
        assert_eq!(parse_app_id(&id), Some(("enriched", "source", "users")));
        let id = reference_app_id("enriched", "nations");
        assert_eq!(parse_app_id(&id), Some(("enriched", "ref", "nations")));
        assert_eq!(parse_app_id("tributary:users:users:0"), None);
    }
}
