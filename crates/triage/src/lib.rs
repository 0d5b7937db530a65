//! The `triage` command-line tool: wiring between files, the decoders and
//! the correlator. Library crates below it are pure; all I/O, exit codes
//! and human-facing output live here.
//!
//! - [`input`]: bounded line reading (a huge line is rejected, not loaded);
//! - [`replay`]: `triage replay`, the engine on a file or stdin;
//! - [`explain`]: `triage explain`, an incident's reasoning for people;
//! - [`sim`]: `triage sim`, the storm generator.

pub mod eval;
pub mod explain;
pub mod input;
pub mod replay;
pub mod sim;
