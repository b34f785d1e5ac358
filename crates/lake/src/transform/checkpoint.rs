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

/// Splits an app id made here into (transform, role, table), role being
/// `source` or `ref`.
pub fn parse_app_id(id: &str) -> Option<(&str, &str, &str)> {
    let rest = id.strip_prefix("tributary-transform:")?;
    let (transform, rest) = rest.split_once(':')?;
    let (role, table) = rest.split_once(':')?;
    matches!(role, "source" | "ref").then_some((transform, role, table))
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
