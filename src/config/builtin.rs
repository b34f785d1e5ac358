//! The configuration `standalone` and every command use when there is no
//! config file.

/// The built-in configuration used when there is no config file: the
/// reference pipeline's `users` stream into `./lake`, and the
/// `users_enriched` transform (users joined with the `nations` seed the
/// `nations` example DAG loads), its 5-minute windows per region, and the
/// `users_by_nation` Lambda view (its batch refreshed by the
/// `users_by_nation` example DAG).
pub const DEFAULT_CONFIG: &str = r#"
[lake]
url = "lake"

[[stream]]
name = "users"
topics = ["users"]
table = "users"
schema = "random_user"
partition_by = ["nation", "date(event_time)"]
rotation = { max_age = "2s" }

[[transform]]
name = "users_enriched"
source = "users"
sql = """
SELECT u.user_id, u.name, u.gender, u.city, u.nation, n.code AS nation_code,
       n.region, n.continent, u.latitude, u.longitude, u.event_time, u.date
FROM users u JOIN nations n ON u.nation = n.nation
WHERE n.continent = 'Europe'
"""
table = "users_enriched"
partition_by = ["region"]

[[transform]]
name = "users_by_region_5m"
source = "users_enriched"
sql = """
SELECT window_start, window_end, region, count(*) AS users,
       avg(latitude) AS avg_latitude, avg(longitude) AS avg_longitude
FROM TUMBLE(users_enriched, event_time, INTERVAL '5 minutes')
GROUP BY window_start, window_end, region
"""
table = "users_by_region_5m"
watermark = { column = "event_time", delay = "30s" }
allowed_lateness = "5m"

[[view]]
name = "users_by_nation"
source = "users"
sql = """
SELECT nation, count(*) AS users, avg(latitude) AS avg_latitude,
       min(event_time) AS first_seen, max(event_time) AS last_seen
FROM users
GROUP BY nation
"""
"#;

/// Tables the built-in transforms read that an example DAG loads
/// (`dags/nations.toml` writes `nations`). They count as declared even
/// when the DAGs folder has no such DAG, so `config` and `standalone`
/// work in an empty folder: the transforms reading them wait for the
/// table (the streams page says so) instead of failing the check. A config
/// file gets no such allowance: there an unknown table is a typo until a
/// stream, transform or DAG task declares it.
pub(super) const BUILT_IN_SEEDED: &[&str] = &["nations"];
