use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Top {
    name: String,
    retries: Option<u32>,
    level: Option<i8>,
    enabled: Option<bool>,
    topics: Option<Vec<String>>,
    mode: Option<Mode>,
    rotation: Option<Rotation>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Mode {
    Overwrite,
    Append,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Rotation {
    max_rows: Option<u64>,
    #[schemars(extend("x-expected" = "a duration such as \"10s\""))]
    max_age: Option<String>,
}

/// The problems of `src` as `line:col message`.
fn problems(src: &str) -> Vec<String> {
    let root = toml::de::DeTable::parse(src).expect("valid TOML");
    let value = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    Schema::of::<Top>()
        .check(&value, &["stream"])
        .into_iter()
        .map(|p| {
            let (l, c) = crate::line_col(src, p.span.start);
            format!("{l}:{c} {}", p.message)
        })
        .collect()
}

#[test]
fn a_valid_table_has_no_problems() {
    let src = "name = \"a\"\nretries = 3\nmode = \"append\"\nrotation = { max_rows = 5, max_age = \"1s\" }\nenv = { A = \"b\" }\n";
    assert_eq!(problems(src), Vec::<String>::new());
}

#[test]
fn every_wrong_value_is_reported_at_its_key_in_user_words() {
    let src =
        "name = 1\nretries = \"3\"\nenabled = \"yes\"\ntopics = [\"a\", 2]\nenv = { A = 1 }\n";
    assert_eq!(
        problems(src),
        [
            "1:1 `name`: expected a string, found the number 1",
            "2:1 `retries`: expected a whole number ≥ 0, found the string \"3\"",
            "3:1 `enabled`: expected true or false, found the string \"yes\"",
            "4:16 `topics[1]`: expected a string, found the number 2",
            "5:9 `env.A`: expected a string, found the number 1",
        ]
    );
}

#[test]
fn numbers_out_of_range_are_reported() {
    let src = "name = \"a\"\nretries = -1\nlevel = 300\nrotation = { max_rows = 99999999999999999999999999999999999999999 }\n";
    assert_eq!(
        problems(src),
        [
            "2:1 `retries`: must not be negative, found -1",
            "3:1 `level`: 300 is too large: at most 127",
            "4:14 `rotation.max_rows`: 99999999999999999999999999999999999999999 is too large",
        ]
    );
}

#[test]
fn each_value_of_an_inline_table_is_reported() {
    let src = "name = \"a\"\nrotation = { max_rows = -5, max_age = 3, max_rowz = 1 }\n";
    assert_eq!(
        problems(src),
        [
            "2:14 `rotation.max_rows`: must not be negative, found -5",
            "2:29 `rotation.max_age`: expected a duration such as \"10s\", found the number 3",
            "2:42 unknown key `max_rowz` in `rotation` (did you mean `max_rows`?)",
        ]
    );
}

#[test]
fn unknown_keys_get_suggestions_from_their_own_table() {
    let src = "name = \"a\"\nretires = 1\nstreams = 2\nzzz = 0\n";
    let got = problems(src);
    assert_eq!(
        got[0],
        "2:1 unknown key `retires` (did you mean `retries`?)"
    );
    assert_eq!(got[1], "3:1 unknown key `streams` (did you mean `stream`?)");
    assert_eq!(
        got[2],
        "4:1 unknown key `zzz` (known keys: enabled, env, level, mode, name, retries, rotation, topics, stream)"
    );
}

#[test]
fn missing_keys_and_bad_enum_values_are_named() {
    let src = "mode = \"apend\"\n";
    assert_eq!(
        problems(src),
        [
            "1:1 `mode`: expected one of `overwrite`, `append`, found the string \"apend\" (did you mean `append`?)",
            "1:1 missing key `name`",
        ]
    );
}

#[test]
fn long_texts_are_cut_with_a_note() {
    let long = "x".repeat(10_000);
    let src = format!("name = \"a\"\nretries = \"{long}\"\n");
    let got = problems(&src);
    assert!(got[0].len() < 200, "{}", got[0]);
    assert!(
        got[0].ends_with("(10000 characters in all)\""),
        "{}",
        got[0]
    );
}
