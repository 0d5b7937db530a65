//! Delivery to one responder: a bounded queue and one task that sends its
//! notices in order (a resolve never overtakes its trigger), retrying what
//! a retry can fix.
//!
//! - 2xx: delivered.
//! - 429 and 5xx, timeouts, refused connections: retried up to
//!   `delivery.max_attempts`, waiting `initial_backoff` doubled per attempt
//!   (at most `max_backoff`) with jitter, or what `Retry-After` asks when it
//!   asks for longer. Past the last attempt: given up.
//! - Other 4xx: not retried (the request is wrong, a retry sends it
//!   again); recorded with the response body.
//!
//! Every outcome is counted and logged ([`crate::telemetry`]); each job's
//! `done` is called whatever the outcome, so the Kafka responder can
//! commit past it. One responder failing never holds up another: each has
//! its own queue and task.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::respond::policy::Notice;
use crate::respond::render::{Prepared, render};
use crate::telemetry::Telemetry;
use triage_config::DeliverySettings;

/// Longest wait a `Retry-After` can impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Bytes of a refusing response kept in the log.
const BODY_KEPT: usize = 512;

/// A notice to deliver, and what to call once it is settled.
pub struct Job {
    /// What to send.
    pub notice: Notice,
    /// Called with the outcome when delivered, refused or given up.
    pub done: Option<Box<dyn FnOnce(Outcome) + Send>>,
}

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (2xx), after this many attempts.
    Delivered(u32),
    /// Refused with a 4xx other than 429: status and body.
    Refused(u16, String),
    /// Still failing after the last attempt: the last error.
    GaveUp(String),
}

impl Outcome {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered(_) => "delivered",
            Outcome::Refused(..) => "refused",
            Outcome::GaveUp(_) => "gave_up",
        }
    }
}

/// The sending end of one responder's queue.
#[derive(Clone)]
pub struct Queue {
    sender: mpsc::Sender<Job>,
}

impl Queue {
    /// Queues without waiting; a full queue hands the job back.
    pub fn offer(&self, job: Job) -> Result<(), Job> {
        self.sender.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => job,
        })
    }
}

/// Starts the task delivering to `prepared` on the current runtime.
pub fn spawn(
    prepared: Arc<Prepared>,
    client: reqwest::Client,
    settings: DeliverySettings,
    telemetry: Arc<Telemetry>,
    seed: u64,
) -> (Queue, tokio::task::JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::channel::<Job>(settings.queue);
    let task = tokio::spawn(async move {
        let mut jitter = Jitter(seed | 1);
        while let Some(job) = receiver.recv().await {
            let outcome =
                deliver(&prepared, &client, &settings, &telemetry, &job.notice, &mut jitter).await;
            telemetry.responder_outcome(&prepared.target.name, &outcome);
            if let Some(done) = job.done {
                done(outcome);
            }
        }
    });
    (Queue { sender }, task)
}

async fn deliver(
    prepared: &Prepared,
    client: &reqwest::Client,
    settings: &DeliverySettings,
    telemetry: &Telemetry,
    notice: &Notice,
    jitter: &mut Jitter,
) -> Outcome {
    let name = &prepared.target.name;
    let mut last = String::new();
    for attempt in 1..=settings.max_attempts {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let request = render(prepared, notice, now);
        let mut builder = client
            .post(&prepared.url)
            .timeout(settings.timeout)
            .header("Content-Type", "application/json")
            .body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let backoff = backoff(settings, attempt, jitter);
        let wait = match builder.send().await {
            Ok(response) if response.status().is_success() => return Outcome::Delivered(attempt),
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = retry_after(response.headers());
                if status != 429 && !response.status().is_server_error() {
                    let body = response.text().await.unwrap_or_default();
                    let kept: String = body.chars().take(BODY_KEPT).collect();
                    return Outcome::Refused(status, kept);
                }
                last = format!("HTTP {status}");
                retry_after.map_or(backoff, |asked| asked.max(backoff).min(MAX_RETRY_AFTER))
            }
            Err(e) => {
                last = if e.is_timeout() {
                    format!("no answer within {:?}", settings.timeout)
                } else if e.is_connect() {
                    "connection failed".to_owned()
                } else {
                    "request failed".to_owned()
                };
                backoff
            }
        };
        if attempt < settings.max_attempts {
            telemetry.responder_retry(name, attempt, &last, wait);
            tokio::time::sleep(wait).await;
        }
    }
    Outcome::GaveUp(last)
}

/// `Retry-After` in seconds (the HTTP-date form is not used by PagerDuty
/// or Slack, and is treated as absent).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// `initial_backoff * 2^(attempt-1)`, at most `max_backoff`, then between
/// half and all of it, so retries from many instances spread out.
fn backoff(settings: &DeliverySettings, attempt: u32, jitter: &mut Jitter) -> Duration {
    let doubled = settings.initial_backoff.saturating_mul(1 << (attempt - 1).min(20));
    let capped = doubled.min(settings.max_backoff);
    capped.mul_f64(0.5 + 0.5 * jitter.next_unit())
}

/// xorshift64: jitter needs spread, not quality; seeded at the edge.
struct Jitter(u64);

impl Jitter {
    fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_it() {
        let settings = DeliverySettings {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            ..DeliverySettings::default()
        };
        let mut jitter = Jitter(42);
        for (attempt, full) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)] {
            let wait = backoff(&settings, attempt, &mut jitter).as_secs_f64();
            assert!(wait >= full * 0.5 && wait <= full, "attempt {attempt}: {wait}");
        }
    }
}
