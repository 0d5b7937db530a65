//! `triage sim`: writes a seeded storm over the configured catalog, and its
//! ground truth.

use std::io::Write;

use triage_config::Config;
use triage_sim::{Storm, StormSpec, generate};

/// Generates the storm for `config` and `spec`.
pub fn storm(config: &Config, spec: &StormSpec) -> Storm {
    generate(&config.topology, spec)
}

/// Writes the storm's lines, and its truth as JSON lines when asked.
pub fn write(
    storm: &Storm,
    out: &mut dyn Write,
    truth: Option<&mut dyn Write>,
) -> std::io::Result<()> {
    for line in &storm.lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    if let Some(truth) = truth {
        for row in &storm.truth {
            serde_json::to_writer(&mut *truth, row)?;
            truth.write_all(b"\n")?;
        }
    }
    Ok(())
}
