//! The edges of triage's input: Alertmanager's payloads decoded into
//! [`AlertRecord`](triage_model::AlertRecord)s, and the Prometheus label-set
//! fingerprint.
//!
//! One input line may be an Alertmanager webhook payload (version 4), an
//! array of Alertmanager API v2 alerts, or a single alert object; see
//! [`decode_line`]. Decoding borrows strings from the line, tolerates unknown
//! fields, and never panics: a bad line or a bad alert inside a good line
//! comes back as a [`DecodeError`] that says what is wrong and where.
//! Nothing here does I/O.

mod decode;
mod error;
mod fingerprint;

pub use decode::{DecodeLimits, DecodedLine, RejectedAlert, decode_line};
pub use error::{DecodeError, RejectReason};
pub use fingerprint::fingerprint_of;
