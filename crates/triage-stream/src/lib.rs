//! The streaming service.
