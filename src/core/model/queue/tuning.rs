//! What most queues never use: settings other than the defaults, the policies
//! that apply, the deduplication cache, the body bytes counted for a byte
//! limit. A queue with none of them points at one shared `Tuned` of
//! defaults (they were ~170 of a queue's bytes, each queue's own).

use std::sync::{Arc, LazyLock};

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
    max_age_ms: None,
    stream_segment_bytes: None,
    stream_max_bytes: None,
};

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

/// The one `Tuned` of every queue whose parts are all defaults.
static DEFAULTS: LazyLock<Arc<Tuned>> = LazyLock::new(|| {
    Arc::new(Tuned {
        settings: DEFAULT_SETTINGS.clone(),
        policy: None,
        operator_policy: None,
        dedup: None,
        ready_body_bytes: 0,
    })
});

/// A queue's rarely used parts: the shared [`DEFAULTS`] while all are
/// defaults, its own otherwise. Never null, so reading a setting (several
/// times per message) is one load, no branch: an `Option<Box<_>>` read
/// through a static default cost ~60 instructions per message (callgrind).
pub(super) struct Tuning(Arc<Tuned>);

impl Default for Tuning {
    fn default() -> Self {
        Tuning(DEFAULTS.clone())
    }
}

impl Tuning {
    /// The effective settings.
    #[inline]
    pub(super) fn settings(&self) -> &QueueSettings {
        &self.0.settings
    }

    pub(super) fn policy(&self) -> Option<&Arc<Policy>> {
        self.0.policy.as_ref()
    }

    pub(super) fn operator_policy(&self) -> Option<&Arc<Policy>> {
        self.0.operator_policy.as_ref()
    }

    /// The dedup cache, if the queue has one (its own `Tuned` then).
    #[inline]
    pub(super) fn dedup_mut(&mut self) -> Option<&mut DedupCache> {
        self.0.dedup.as_ref()?;
        Arc::get_mut(&mut self.0)?.dedup.as_mut()
    }

    #[inline]
    pub(super) fn ready_body_bytes(&self) -> u64 {
        self.0.ready_body_bytes
    }

    /// Sets the counted body bytes.
    #[inline]
    pub(super) fn set_ready_body_bytes(&mut self, n: u64) {
        if n != self.0.ready_body_bytes {
            self.change(|t| t.ready_body_bytes = n);
        }
    }

    /// Changes the parts through `f`: on the queue's own `Tuned` (made from
    /// the shared defaults if it had none); back to the shared defaults when
    /// all are defaults again.
    fn change(&mut self, f: impl FnOnce(&mut Tuned)) {
        if Arc::get_mut(&mut self.0).is_none() {
            // Shared: only the defaults are (a queue's own is never cloned).
            debug_assert!(Arc::ptr_eq(&self.0, &DEFAULTS));
            self.0 = Arc::new(Tuned {
                settings: self.0.settings.clone(),
                policy: self.0.policy.clone(),
                operator_policy: self.0.operator_policy.clone(),
                dedup: None,
                ready_body_bytes: self.0.ready_body_bytes,
            });
        }
        let t = Arc::get_mut(&mut self.0).expect("a queue's own Tuned is not shared");
        f(t);
        if t.is_default() {
            self.0 = DEFAULTS.clone();
        }
    }

    pub(super) fn set_dedup(&mut self, d: Option<DedupCache>) {
        if d.is_some() || self.0.dedup.is_some() {
            self.change(|t| t.dedup = d);
        }
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

    /// Whether the queue has its own (not the shared defaults).
    #[cfg(test)]
    fn is_own(&self) -> bool {
        !Arc::ptr_eq(&self.0, &DEFAULTS)
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
        assert!(!t.is_own());
        let s = QueueSettings {
            max_length_bytes: Some(10),
            ..Default::default()
        };
        t.set_settings(s, None, None);
        t.set_ready_body_bytes(5);
        assert_eq!((t.settings().max_length_bytes, t.ready_body_bytes()), (Some(10), 5));
        t.set_ready_body_bytes(0);
        t.set_settings(QueueSettings::default(), None, None);
        assert!(!t.is_own());
    }
}
