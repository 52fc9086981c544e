//! Topic names and filters (spec 4.7), shared subscriptions (MQTT 5,
//! `$share/{group}/{filter}`), and the translation to and from AMQP routing
//! keys that RabbitMQ's and LavinMQ's MQTT support use, so that MQTT and AMQP
//! clients meet on a topic exchange: `/` and `.` swap places, `+` is `*`.

use crate::error::{protocol, Result};

/// A PUBLISH's (or will's) topic: at least one character, no wildcard.
pub fn check_name(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return protocol("an empty topic name");
    }
    if topic.contains(['+', '#']) {
        return protocol("a wildcard in a topic name");
    }
    Ok(())
}

/// A subscription's filter: at least one character; `#` only as the whole
/// last level, `+` only as a whole level; a shared one names its group.
pub fn check_filter(filter: &str) -> Result<()> {
    let filter = match shared(filter) {
        Some((group, f)) => {
            if group.is_empty() || group.contains(['+', '#']) {
                return protocol("a shared subscription's group name is empty or has a wildcard");
            }
            f
        }
        None if filter.starts_with("$share/") => return protocol("a shared subscription without a filter"),
        None => filter,
    };
    if filter.is_empty() {
        return protocol("an empty topic filter");
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return protocol("'#' not alone in the last level of a topic filter");
        }
        if level.contains('+') && level != "+" {
            return protocol("'+' not alone in a level of a topic filter");
        }
    }
    Ok(())
}

/// `$share/{group}/{filter}` split into its group and filter.
pub fn shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix("$share/")?.split_once('/')
}

/// The AMQP routing key (or binding key, for a filter) of an MQTT topic, as
/// RabbitMQ's MQTT plugin makes it: `/` and `.` swapped, `+` made `*`.
pub fn to_amqp(topic: &str) -> String {
    topic
        .chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            '+' => '*',
            c => c,
        })
        .collect()
}

/// The MQTT topic of an AMQP routing key (the reverse of [`to_amqp`]).
pub fn from_amqp(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            '*' => '+',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_filters_as_the_spec_allows_them() {
        for ok in ["a", "/", "a/b", "a//b", "$SYS/x", "sport/tennis/player1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/+", "#", "a/b#"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+",
            "/+",
            "a/+/c",
            "+/tennis/#",
            "$share/g/a/#",
            "$share/g/#",
        ] {
            assert!(check_filter(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a#",
            "a/#/b",
            "a/b+",
            "++",
            "#/",
            "$share/g",
            "$share//a",
            "$share/g+/a",
            "$share/g/",
        ] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
        assert_eq!(shared("$share/g/a/b"), Some(("g", "a/b")));
        assert_eq!(shared("a/b"), None);
    }

    #[test]
    fn topics_translate_as_rabbitmq_does_both_ways() {
        assert_eq!(to_amqp("sensors/room.1/temp"), "sensors.room/1.temp");
        assert_eq!(to_amqp("a/+/#"), "a.*.#");
        assert_eq!(from_amqp("sensors.room/1.temp"), "sensors/room.1/temp");
        assert_eq!(from_amqp("a.*.#"), "a/+/#");
        for t in ["a/b", "x.y/z", "+/#", ""] {
            assert_eq!(from_amqp(&to_amqp(t)), t);
        }
    }
}
