//! What most queues never use: settings other than the defaults, the policies
//! that apply, the deduplication cache, the body bytes counted for a byte
//! limit. A queue with none of them holds one empty pointer (they were ~170 of
//! a queue's bytes); the default settings are a `static`.

use std::sync::Arc;

use crate::core::model::policy::Policy;
use crate::core::model::queue::args::{DeadLetterStrategy, Overflow, QueueSettings, QueueType};
use crate::core::model::queue::dedup::DedupCache;

/// The settings of a queue without arguments or policies: what
/// `QueueSettings::default()` gives (a test checks), usable in a `static`.
static DEFAULT_SETTINGS: QueueSettings = QueueSettings {
    kind: QueueType::Classic,
    dead_letter_strategy: DeadLetterStrategy::AtMostOnce,
    message_ttl_ms: None,
    expires_ms: None,
    max_length: None,
    max_length_bytes: None,
    overflow: Overflow::DropHead,
    dead_letter_exchange: None,
    dead_letter_routing_key: None,
    max_priority: None,
    single_active_consumer: false,
    delivery_limit: None,
    consumer_timeout_ms: None,
};

#[derive(Default)]
struct Tuned {
    settings: QueueSettings,
    policy: Option<Arc<Policy>>,
    operator_policy: Option<Arc<Policy>>,
    dedup: Option<DedupCache>,
    /// Body bytes of ready messages, tracked only when x-max-length-bytes is
    /// set (RabbitMQ counts bodies; the store counts whole records).
    ready_body_bytes: u64,
}

impl Tuned {
    fn is_default(&self) -> bool {
        self.settings == DEFAULT_SETTINGS
            && self.policy.is_none()
            && self.operator_policy.is_none()
            && self.dedup.is_none()
            && self.ready_body_bytes == 0
    }
}

/// A queue's rarely used parts: none while all are defaults.
#[derive(Default)]
pub(super) struct Tuning(Option<Box<Tuned>>);

impl Tuning {
    /// The effective settings (the defaults without a box).
    #[inline]
    pub(super) fn settings(&self) -> &QueueSettings {
        match &self.0 {
            Some(t) => &t.settings,
            None => &DEFAULT_SETTINGS,
        }
    }

    pub(super) fn policy(&self) -> Option<&Arc<Policy>> {
        self.0.as_ref()?.policy.as_ref()
    }

    pub(super) fn operator_policy(&self) -> Option<&Arc<Policy>> {
        self.0.as_ref()?.operator_policy.as_ref()
    }

    #[inline]
    pub(super) fn dedup_mut(&mut self) -> Option<&mut DedupCache> {
        self.0.as_mut()?.dedup.as_mut()
    }

    #[inline]
    pub(super) fn ready_body_bytes(&self) -> u64 {
        self.0.as_ref().map_or(0, |t| t.ready_body_bytes)
    }

    /// Sets the counted body bytes (a box is made only for a non-zero count,
    /// which a byte limit's settings have made already).
    #[inline]
    pub(super) fn set_ready_body_bytes(&mut self, n: u64) {
        if n != 0 || self.0.is_some() {
            self.change(|t| t.ready_body_bytes = n);
        }
    }

    /// Changes the parts through `f`; the box goes when all are defaults again.
    fn change(&mut self, f: impl FnOnce(&mut Tuned)) {
        let mut t = self.0.take().unwrap_or_default();
        f(&mut t);
        if !t.is_default() {
            self.0 = Some(t);
        }
    }

    pub(super) fn set_dedup(&mut self, d: Option<DedupCache>) {
        self.change(|t| t.dedup = d);
    }

    /// Replaces the settings and the policies they came from.
    pub(super) fn set_settings(
        &mut self,
        s: QueueSettings,
        policy: Option<Arc<Policy>>,
        operator: Option<Arc<Policy>>,
    ) {
        self.change(|t| {
            t.settings = s;
            t.policy = policy;
            t.operator_policy = operator;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_defaults_are_the_defaults() {
        assert_eq!(DEFAULT_SETTINGS, QueueSettings::default());
    }

    #[test]
    fn a_box_only_while_something_is_not_default() {
        let mut t = Tuning::default();
        t.set_ready_body_bytes(0);
        assert!(t.0.is_none());
        let s = QueueSettings {
            max_length_bytes: Some(10),
            ..Default::default()
        };
        t.set_settings(s, None, None);
        t.set_ready_body_bytes(5);
        assert_eq!((t.settings().max_length_bytes, t.ready_body_bytes()), (Some(10), 5));
        t.set_ready_body_bytes(0);
        t.set_settings(QueueSettings::default(), None, None);
        assert!(t.0.is_none());
    }
}
