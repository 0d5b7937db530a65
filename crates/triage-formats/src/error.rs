//! Why a line or an alert was rejected, with a bounded reason code for
//! counting and a message for people.

use std::fmt;

/// A bounded classification of rejections: safe as a metric label and as a
/// key in summaries (never carries input text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// Not valid JSON (syntax, types, or invalid UTF-8).
    Json,
    /// Valid JSON of the wrong shape.
    Shape,
    /// A webhook payload of a version other than "4".
    Version,
    /// The alert has no labels.
    NoLabels,
    /// A label name is empty.
    LabelName,
    /// More labels than `limits.max_labels`.
    TooManyLabels,
    /// A label longer than `limits.max_label_bytes`.
    LabelTooLong,
    /// A timestamp that is not RFC 3339 or out of range.
    Timestamp,
    /// A status other than firing or resolved.
    Status,
    /// A fingerprint that is not 16 hex digits.
    Fingerprint,
    /// No start time and no earlier record to take the time from.
    NoTime,
    /// A line longer than `limits.max_line_bytes`.
    LineTooLong,
    /// The engine had no room for another active alert.
    Capacity,
}

impl RejectReason {
    /// Every reason, in a fixed order (for summaries and metric tables).
    pub const ALL: [RejectReason; 13] = [
        RejectReason::Json,
        RejectReason::Shape,
        RejectReason::Version,
        RejectReason::NoLabels,
        RejectReason::LabelName,
        RejectReason::TooManyLabels,
        RejectReason::LabelTooLong,
        RejectReason::Timestamp,
        RejectReason::Status,
        RejectReason::Fingerprint,
        RejectReason::NoTime,
        RejectReason::LineTooLong,
        RejectReason::Capacity,
    ];

    /// A short snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::Json => "json",
            RejectReason::Shape => "shape",
            RejectReason::Version => "version",
            RejectReason::NoLabels => "no_labels",
            RejectReason::LabelName => "label_name",
            RejectReason::TooManyLabels => "too_many_labels",
            RejectReason::LabelTooLong => "label_too_long",
            RejectReason::Timestamp => "timestamp",
            RejectReason::Status => "status",
            RejectReason::Fingerprint => "fingerprint",
            RejectReason::NoTime => "no_time",
            RejectReason::LineTooLong => "line_too_long",
            RejectReason::Capacity => "capacity",
        }
    }
}

/// A rejected line or alert: the classification and a message naming the
/// field and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Bounded classification.
    pub reason: RejectReason,
    /// What is wrong, for a person (may quote a short part of the input).
    pub message: String,
}

impl DecodeError {
    pub(crate) fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        DecodeError { reason, message: message.into() }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.reason.code())
    }
}

impl std::error::Error for DecodeError {}

/// Quotes at most 64 characters of input, so messages stay short even for
/// hostile input.
pub(crate) fn quote(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
    }
}
