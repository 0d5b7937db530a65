//! Responders: one deduplicated page per incident, to PagerDuty (Events
//! API v2), Slack (incoming webhooks) and signed generic webhooks.
//!
//! - [`policy`] decides, from the incident events alone, who is told what
//!   (routing by owner team and priority, re-pages on escalation and
//!   growth, resolutions);
//! - [`render`] builds each request;
//! - [`deliver`] sends them, one bounded queue and task per responder,
//!   with retries;
//! - [`kafka`] is the Kafka-mode responder: its own consumer group on the
//!   incidents topic, committing only what was settled.
//!
//! Standalone, the in-process engine hands its events to
//! [`Responders::offer`], which never waits: a full queue drops the notice,
//! counted and logged, so a slow responder cannot hold up correlation.

pub mod deliver;
pub mod kafka;
pub mod policy;
pub mod render;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use triage_config::ResponderSettings;
use triage_model::IncidentEvent;

use crate::error::StreamError;
use crate::respond::deliver::{Job, Queue};
use crate::respond::policy::Policy;
use crate::respond::render::Prepared;
use crate::telemetry::Telemetry;

/// The responders of one process: the policy and a queue per responder.
pub struct Responders {
    policy: Mutex<Policy>,
    /// Emptied by [`Responders::drain`]: the tasks end once their queue's
    /// senders are gone.
    queues: Mutex<Vec<Queue>>,
    names: Vec<String>,
    telemetry: Arc<Telemetry>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Responders {
    /// Reads every responder's secrets and starts its delivery task on
    /// `runtime`; `None` when no responder is configured.
    pub fn start(
        settings: &ResponderSettings,
        telemetry: Arc<Telemetry>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Option<Arc<Responders>>, StreamError> {
        if settings.targets.is_empty() {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("triage/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StreamError::Responder(format!("cannot build the HTTP client: {e}")))?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        let mut names = Vec::new();
        for (index, target) in settings.targets.iter().enumerate() {
            let prepared = Arc::new(Prepared::new(target).map_err(StreamError::Responder)?);
            telemetry.responder_ready(&target.name, target.kind.label());
            let _guard = runtime.enter();
            let (queue, task) = deliver::spawn(
                prepared,
                client.clone(),
                settings.delivery,
                telemetry.clone(),
                seed.wrapping_add(index as u64 * 0x9E37_79B9),
            );
            queues.push(queue);
            tasks.push(task);
            names.push(target.name.clone());
        }
        let policy = Policy::new(settings.targets.clone(), settings.repage_growth_percent);
        Ok(Some(Arc::new(Responders {
            policy: Mutex::new(policy),
            queues: Mutex::new(queues),
            names,
            telemetry,
            tasks: Mutex::new(tasks),
        })))
    }

    fn policy(&self) -> MutexGuard<'_, Policy> {
        self.policy.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Responder `target`'s queue, unless drained.
    fn queue(&self, target: usize) -> Option<Queue> {
        let queues = self.queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        queues.get(target).cloned()
    }

    /// Standalone: decides and queues without waiting; a full queue drops
    /// the notice, counted and logged.
    pub fn offer(&self, event: IncidentEvent) {
        let event = Arc::new(event);
        for notice in self.policy().decide(&event) {
            let target = notice.target;
            let queued = self.queue(target).map(|q| q.offer(Job { notice, done: None }));
            if !matches!(queued, Some(Ok(()))) {
                self.telemetry.responder_dropped(&self.names[target]);
            }
        }
    }

    /// Kafka: the notices `event` causes, each to be queued with
    /// [`Responders::try_queue`] in order.
    pub fn notices(&self, event: &Arc<IncidentEvent>) -> Vec<policy::Notice> {
        self.policy().decide(event)
    }

    /// Queues without waiting; a full (or drained) queue hands the job
    /// back, for the caller to hold and offer again.
    pub fn try_queue(&self, job: Job) -> Result<(), Job> {
        match self.queue(job.notice.target) {
            Some(queue) => queue.offer(job),
            None => Err(job),
        }
    }

    /// What was sent, for the standalone state file.
    pub fn memory(&self) -> Vec<policy::Remembered> {
        self.policy().memory()
    }

    /// Takes back what a state file kept.
    pub fn recall(&self, memory: Vec<policy::Remembered>) {
        self.policy().recall(memory);
    }

    /// Forgets what was sent: after a rebalance the partitions are read
    /// again from their beginning, and the memory is rebuilt from them.
    pub fn forget(&self) {
        self.policy().forget();
    }

    /// Feeds an event already handled before (below the committed offset)
    /// to the policy only, to rebuild what was sent.
    pub fn remember(&self, event: &Arc<IncidentEvent>) {
        let _ = self.policy().decide(event);
    }

    /// Closes the queues and waits up to `bound` for what is in them.
    pub async fn drain(&self, bound: Duration) {
        self.queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let waiting = async {
            for task in tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(bound, waiting).await.is_err() {
            self.telemetry.responders_abandoned(bound);
        }
    }
}
