//! The one place that turns a `(section, key, value)` into a typed setting.
//!
//! Both the INI file and the command-line flags go through [`set`], so a value is
//! parsed and range-checked the same way wherever it comes from; only the error
//! context (file and line, or flag) differs. Key names are LavinMQ's
//! (`src/lavinmq/config.cr`, `parse_main`/`parse_amqp`/`parse_mgmt`/
//! `parse_clustering`); keys marked "ringmq" in the docs of [`super::Config`] are ours.

use std::num::NonZeroU32;
use std::path::PathBuf;

use super::{
    Config, DefaultPassword, IoBackend, LogFormat, LogLevel, Section, CHANNEL_MAX_LIMIT, FRAME_MAX_BYTES_LIMIT,
    FRAME_MIN_BYTES, MAX_MESSAGE_BYTES_LIMIT, SEGMENT_BYTES_MIN, SHARDS_LIMIT,
};

/// Whether [`set`] knew the key. Unknown keys are a warning, as in LavinMQ, so a
/// LavinMQ config with keys ringmq does not implement still starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Applied,
    UnknownKey,
}

/// Applies one setting. `Err` holds why the value is bad, without context.
///
/// Only keys with a row in the settings table (`flags::FLAGS`, as the key or an
/// alias) exist: a key added below without its row, default and meaning would be
/// missing from `--help` and the example file, so it is unknown until it has one.
pub(crate) fn set(cfg: &mut Config, section: Section, key: &str, value: &str) -> Result<Outcome, String> {
    if super::flags::documenting(section, key).is_none() {
        return Ok(Outcome::UnknownKey);
    }
    match section {
        Section::Main => set_main(cfg, key, value),
        Section::Amqp => set_amqp(cfg, key, value),
        Section::Mgmt => set_mgmt(cfg, key, value),
        Section::Clustering => set_clustering(cfg, key, value),
        Section::Mqtt => super::mqtt::set_mqtt(cfg, key, value),
    }
}

fn set_main(cfg: &mut Config, key: &str, v: &str) -> Result<Outcome, String> {
    let m = &mut cfg.main;
    match key {
        "data_dir" => m.data_dir = path(v)?,
        // LavinMQ reads the metrics listener from [main]; [mgmt] works too.
        "metrics_http_bind" | "metrics_http_port" => return set_mgmt(cfg, key, v),
        "control_unix_path" => cfg.mgmt.control_unix_path = optional_path(v),
        "log_level" => m.log_level = v.parse::<LogLevel>()?,
        "log_format" => m.log_format = v.parse::<LogFormat>()?,
        "segment_size" => {
            m.segment_bytes = in_range(bytes(v)?, SEGMENT_BYTES_MIN.into(), u32::MAX.into())? as u32;
        }
        "free_disk_min" => m.free_disk_min_bytes = bytes(v)?,
        "memory_high_watermark" => m.mem_high_watermark = watermark(v)?,
        "sync" => m.sync = boolean(v)?,
        "io" => m.io = v.parse::<IoBackend>()?,
        "consumer_timeout" => {
            let ms = integer(v)?;
            m.consumer_timeout_ms = (ms > 0).then_some(ms);
        }
        "default_stream_offset" => {
            use crate::core::config::DefaultStreamOffset;
            m.default_stream_offset = match v {
                "next" => DefaultStreamOffset::Next,
                "first" => DefaultStreamOffset::First,
                "last" => DefaultStreamOffset::Last,
                _ => return Err(format!("{v:?}: first, last or next")),
            }
        }
        "load_definitions" => m.load_definitions = Some(path(v)?),
        "shards" => m.shards = in_range(integer(v)?, 1, SHARDS_LIMIT.into())? as u16,
        "default_user" => m.default_user = non_empty(v)?.to_owned(),
        "default_password" => m.default_password = DefaultPassword::Plain(v.to_owned()),
        "default_password_hash" => m.default_password = DefaultPassword::Hash(non_empty(v)?.to_owned()),
        // LavinMQ deprecated `guest_only_loopback` for this name in 2.2; both still work there.
        "default_user_only_loopback" | "guest_only_loopback" => m.default_user_only_loopback = boolean(v)?,
        "tls_cert" => m.tls_cert_path = Some(path(v)?),
        "tls_key" => m.tls_key_path = Some(path(v)?),
        "tls_min_version" => m.tls_min_version = v.parse::<super::TlsVersion>()?,
        "tls_ciphers" => m.tls_ciphers = super::tls::cipher_list(v)?,
        "tls_verify_peer" => m.tls_verify_peer = boolean(v)?,
        "tls_ca_cert" => m.tls_ca_cert_path = Some(path(v)?),
        "tls_fail_if_no_peer_cert" => m.tls_fail_if_no_peer_cert = boolean(v)?,
        "tls_cert_login_from" => {
            crate::tls::CertLogin::parse(v, Default::default(), 0)?;
            m.tls_cert_login_from = v.to_owned();
        }
        "tls_cert_login_san_type" => m.tls_cert_login_san_type = v.parse()?,
        "tls_cert_login_san_index" => {
            m.tls_cert_login_san_index = in_range(integer(v)?, 0, crate::tls::login::SAN_INDEX_MAX as u64)? as usize;
        }
        // LavinMQ keeps tcp_nodelay under [main] although only AMQP sockets use it.
        "tcp_nodelay" => cfg.amqp.tcp_nodelay = boolean(v)?,
        _ => return Ok(Outcome::UnknownKey),
    }
    Ok(Outcome::Applied)
}

fn set_amqp(cfg: &mut Config, key: &str, v: &str) -> Result<Outcome, String> {
    let a = &mut cfg.amqp;
    match key {
        "bind" => a.bind = addresses(v)?,
        "port" => a.port = in_range(integer(v)?, 0, u16::MAX.into())? as u16,
        "tls_port" => a.tls_port = optional_port(v)?,
        "heartbeat" => a.heartbeat_secs = in_range(integer(v)?, 0, u16::MAX.into())? as u16,
        // RabbitMQ's key and unit; at least 100 ms, or no client could finish.
        "handshake_timeout" => a.handshake_timeout_ms = in_range(integer(v)?, 100, 3_600_000)?,
        "frame_max" => {
            a.frame_max_bytes = in_range(bytes(v)?, FRAME_MIN_BYTES.into(), FRAME_MAX_BYTES_LIMIT.into())? as u32;
        }
        "channel_max" => a.channel_max = in_range(integer(v)?, 1, CHANNEL_MAX_LIMIT.into())? as u16,
        "max_message_size" => a.max_message_bytes = in_range(bytes(v)?, 1, MAX_MESSAGE_BYTES_LIMIT)?,
        "max_connections" => a.max_connections = in_range(integer(v)?, 1, u32::MAX.into())? as u32,
        "max_consumers_per_channel" => {
            a.max_consumers_per_channel = NonZeroU32::new(in_range(integer(v)?, 0, u32::MAX.into())? as u32);
        }
        "tcp_nodelay" => a.tcp_nodelay = boolean(v)?,
        "unix_path" => a.unix_path = optional_path(v),
        "tcp_proxy_protocol" => a.tcp_proxy_protocol = proxy_protocol(v)?,
        "tls_proxy_protocol" => a.tls_proxy_protocol = proxy_protocol(v)?,
        "unix_proxy_protocol" => a.unix_proxy_protocol = proxy_protocol(v)?,
        // LavinMQ accepts the TLS files here too, "for backward compatibility".
        "tls_cert" => cfg.main.tls_cert_path = Some(path(v)?),
        "tls_key" => cfg.main.tls_key_path = Some(path(v)?),
        // Client certificates are an AMQPS matter: [amqp] reads them too.
        "tls_verify_peer"
        | "tls_ca_cert"
        | "tls_fail_if_no_peer_cert"
        | "tls_cert_login_from"
        | "tls_cert_login_san_type"
        | "tls_cert_login_san_index" => return set_main(cfg, key, v),
        _ => return Ok(Outcome::UnknownKey),
    }
    Ok(Outcome::Applied)
}

fn set_mgmt(cfg: &mut Config, key: &str, v: &str) -> Result<Outcome, String> {
    let h = &mut cfg.mgmt;
    match key {
        "bind" => h.bind = addresses(v)?,
        "port" => h.port = optional_port(v)?,
        "tls_port" => h.tls_port = optional_port(v)?,
        "metrics_http_bind" => h.metrics_bind = addresses(v)?,
        "metrics_http_port" => h.metrics_port = optional_port(v)?,
        "unix_path" => h.unix_path = optional_path(v),
        "tls_cert" => cfg.main.tls_cert_path = Some(path(v)?),
        "tls_key" => cfg.main.tls_key_path = Some(path(v)?),
        _ => return Ok(Outcome::UnknownKey),
    }
    Ok(Outcome::Applied)
}

fn set_clustering(cfg: &mut Config, key: &str, v: &str) -> Result<Outcome, String> {
    let c = &mut cfg.clustering;
    match key {
        "enabled" => c.enabled = boolean(v)?,
        "bind" => c.bind = non_empty(v)?.to_owned(),
        "port" => c.port = in_range(integer(v)?, 0, u16::MAX.into())? as u16,
        "etcd_endpoints" => {
            let endpoints: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
            if endpoints.is_empty() {
                return Err("expected comma-separated host:port pairs".into());
            }
            c.etcd_endpoints = endpoints;
        }
        "etcd_prefix" => c.etcd_prefix = non_empty(v)?.to_owned(),
        "advertised_uri" => c.advertised_uri = Some(non_empty(v)?.to_owned()),
        "min_isr" => c.min_isr = in_range(integer(v)?, 1, 255)? as u8,
        _ => return Ok(Outcome::UnknownKey),
    }
    Ok(Outcome::Applied)
}

/// A listener's addresses: at least one; written back separated by ", ".
pub(super) fn addresses(v: &str) -> Result<String, String> {
    let list: Vec<&str> = crate::config::bind_addresses(v).collect();
    if list.is_empty() {
        return Err("expected one or more addresses".into());
    }
    Ok(list.join(", "))
}

pub(super) fn non_empty(v: &str) -> Result<&str, String> {
    if v.is_empty() {
        Err("expected a non-empty value".into())
    } else {
        Ok(v)
    }
}

pub(crate) fn path(v: &str) -> Result<PathBuf, String> {
    non_empty(v).map(PathBuf::from)
}

/// LavinMQ's `unix_path`: empty (its default) is no Unix socket.
fn optional_path(v: &str) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// LavinMQ's `tcp_proxy_protocol` and `unix_proxy_protocol`: 0 off, 1 or 2 a
/// PROXY header version; `true` is 1 there. Either number turns it on here and
/// takes either version, as LavinMQ's listener does (the header says which).
fn proxy_protocol(v: &str) -> Result<bool, String> {
    match v {
        "0" => Ok(false),
        "1" | "2" => Ok(true),
        _ => boolean(v).map_err(|_| "expected 0 (off), 1 or 2 (a PROXY header is required), or true/false".into()),
    }
}

/// LavinMQ's `true?` accepts true/yes/y/1 and reads anything else as false; we also
/// accept the usual false spellings but reject the rest, so a typo is not a silent "off".
pub(crate) fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "on" => Ok(true),
        "false" | "no" | "n" | "0" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

pub(super) fn integer(v: &str) -> Result<u64, String> {
    v.parse::<u64>().map_err(|_| "expected a non-negative integer".into())
}

/// A byte count: a plain integer as LavinMQ writes it, or with a binary suffix
/// (`64KiB`, `8MiB`, `1GiB`; `K`/`M`/`G` alone mean the same) for readability.
pub(super) fn bytes(v: &str) -> Result<u64, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, suffix) = v.split_at(split);
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err("expected a byte count such as 8388608 or 8MiB".into()),
    };
    let n = integer(digits)?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| "byte count overflows 64 bits".into())
}

/// A fraction of RAM ("0.4", above 0 and at most 1) or a byte count ("512MiB").
fn watermark(v: &str) -> Result<super::MemWatermark, String> {
    let v = v.trim();
    if let Some(frac) = v.strip_prefix("0.").or_else(|| (v == "1.0").then_some("")) {
        if v == "1.0" {
            return Ok(super::MemWatermark::PerMille(1000));
        }
        if frac.is_empty() || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(
                "expected a fraction of RAM such as 0.4 (at most 3 decimals) or a byte count such as 512MiB".into(),
            );
        }
        let per_mille = format!("{frac:0<3}").parse::<u32>().map_err(|e| e.to_string())?;
        if per_mille == 0 {
            return Err("a fraction of RAM must be above 0".into());
        }
        return Ok(super::MemWatermark::PerMille(per_mille));
    }
    Ok(super::MemWatermark::Bytes(bytes(v)?))
}

pub(super) fn in_range(n: u64, min: u64, max: u64) -> Result<u64, String> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between {min} and {max}"))
    }
}

/// LavinMQ's convention for optional listeners: `-1` (or any negative port in
/// LavinMQ; we accept only -1) disables it.
pub(super) fn optional_port(v: &str) -> Result<Option<u16>, String> {
    if v == "-1" {
        return Ok(None);
    }
    match v.parse::<u16>() {
        Ok(p) => Ok(Some(p)),
        Err(_) => Err("expected a port 0..=65535, or -1 to disable".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(bytes("4096"), Ok(4096));
        assert_eq!(bytes("8MiB"), Ok(8 << 20));
        assert_eq!(bytes("64 KiB"), Ok(64 << 10));
        assert_eq!(bytes("1g"), Ok(1 << 30));
        assert!(bytes("8MB").is_err());
        assert!(bytes("-1").is_err());
        assert!(bytes("").is_err());
        assert!(bytes("99999999999999999999G").is_err());
    }

    #[test]
    fn booleans_reject_typos() {
        assert_eq!(boolean("Yes"), Ok(true));
        assert_eq!(boolean("off"), Ok(false));
        assert!(boolean("ture").is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(optional_port("-1"), Ok(None));
        assert_eq!(optional_port("0"), Ok(Some(0)));
        assert!(optional_port("65536").is_err());
        assert!(optional_port("-2").is_err());
    }
}
