//! How a switch (swap, rollback) is shown: JSON for programs, two lines
//! for people.

use std::process::ExitCode;

use anyhow::Result;
use lake::generation::SwitchReport;

use crate::output;
use crate::settings::Settings;

/// Prints what a swap or rollback (`what`) did.
pub fn print_switch(settings: &Settings, what: &str, r: &SwitchReport) -> Result<ExitCode> {
    if settings.json() {
        output::json(r)?;
        return Ok(ExitCode::SUCCESS);
    }
    for line in r.summary(what) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
