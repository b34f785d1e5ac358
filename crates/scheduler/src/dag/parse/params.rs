//! `[params.NAME]` tables: each deserialized and checked on its own, so one
//! broken param does not hide the others.

use std::collections::BTreeMap;

use diag::Diags;
use toml::Spanned;
use toml::de::DeValue;

use crate::conf::{Param, ParamDef};

/// The params of the `params` table.
pub(super) fn parse_params<'a>(
    d: &mut Diags<'a>,
    pv: Spanned<DeValue<'a>>,
) -> BTreeMap<String, Param> {
    let mut params = BTreeMap::new();
    let span = pv.span();
    match pv.into_inner() {
        DeValue::Table(t) => {
            for (name, value) in t {
                let vspan = value.span();
                let label = format!("param {:?}", name.get_ref());
                if let Some(def) = d.de::<ParamDef>(value, &label, &[]) {
                    match Param::from_def(name.get_ref(), def) {
                        Ok(p) => {
                            params.insert(name.get_ref().to_string(), p);
                        }
                        Err(problems) => {
                            for p in problems {
                                d.err(Some(vspan.clone()), p);
                            }
                        }
                    }
                }
            }
        }
        _ => d.err(
            Some(span),
            "`params` must be a table of [params.NAME] tables",
        ),
    }
    params
}
