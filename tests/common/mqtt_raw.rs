//! A raw MQTT 3.1.1 client for the tests (`tests/mqtt*.rs`): blocking, over a
//! plain socket, packets encoded and decoded with `ringmq-mqtt-codec`, so a
//! test can send what a real client never would (a malformed packet, a
//! silence past the keepalive) and see exactly what comes back.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mq::{Packet, QoS, Version};
use ringmq_mqtt_codec as mq;

/// What the broker sent, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    ConnAck(u8),
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        dup: bool,
        packet_id: Option<u16>,
    },
    PubAck(u16),
    SubAck(u16, Vec<u8>),
    UnsubAck(u16),
    PingResp,
    Other(&'static str),
}

pub struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    /// CONNACK's session present flag.
    pub session_present: bool,
}

/// A CONNECT's fields.
pub struct Login<'a> {
    pub client_id: &'a str,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub keepalive_secs: u16,
    pub will: Option<(&'a str, &'a [u8])>,
    /// A clean session (false: a persistent one).
    pub clean: bool,
}

impl<'a> Login<'a> {
    pub fn guest(client_id: &'a str) -> Login<'a> {
        Login {
            client_id,
            user: Some("guest"),
            password: Some("guest"),
            keepalive_secs: 60,
            will: None,
            clean: true,
        }
    }
}

/// How long a test waits for an expected packet.
pub const WAIT: Duration = Duration::from_secs(5);

impl Client {
    pub fn open(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the MQTT listener");
        s.set_nodelay(true).unwrap();
        Client {
            s,
            buf: Vec::new(),
            session_present: false,
        }
    }

    /// Connects and sends CONNECT; returns the CONNACK code.
    pub fn connect(port: u16, login: &Login<'_>) -> (Client, u8) {
        let mut c = Client::open(port);
        let will = login.will.map(|(topic, payload)| mq::Will {
            topic,
            payload,
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        });
        let p = Packet::Connect(mq::Connect {
            version: Version::V3_1_1,
            clean_start: login.clean,
            keep_alive_secs: login.keepalive_secs,
            properties: Default::default(),
            client_id: login.client_id,
            will,
            username: login.user,
            password: login.password.map(str::as_bytes),
        });
        c.send(&p);
        c.s.set_read_timeout(Some(WAIT)).unwrap();
        let mut head = [0u8; 4];
        if c.s.read_exact(&mut head).is_err() {
            panic!("no CONNACK");
        }
        c.session_present = head[0] == 0x20 && head[2] & 1 == 1;
        c.buf.extend_from_slice(&head);
        match c.recv(WAIT) {
            Some(Got::ConnAck(code)) => (c, code),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connected as guest (CONNACK 0 checked).
    pub fn guest(port: u16, client_id: &str) -> Client {
        let (c, code) = Client::connect(port, &Login::guest(client_id));
        assert_eq!(code, 0, "CONNACK");
        c
    }

    pub fn send(&mut self, p: &Packet<'_>) {
        let mut out = Vec::new();
        mq::encode(p, Version::V3_1_1, &mut out);
        self.send_raw(&out);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write");
    }

    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, packet_id: u16) {
        let p = mq::Publish {
            dup: false,
            qos: QoS::from_bits(qos).expect("qos"),
            retain: false,
            topic,
            packet_id: (qos > 0).then_some(packet_id),
            properties: Default::default(),
            payload,
        };
        self.send(&Packet::Publish(p));
    }

    /// SUBSCRIBE and its SUBACK's codes.
    pub fn subscribe(&mut self, packet_id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
        let f: Vec<(&str, mq::SubOptions)> = filters
            .iter()
            .map(|(t, q)| (*t, mq::SubOptions::qos(QoS::from_bits(*q).expect("qos"))))
            .collect();
        let mut out = Vec::new();
        mq::Subscribe::encode(&mut out, Version::V3_1_1, packet_id, &Default::default(), &f);
        self.send_raw(&out);
        match self.recv(WAIT) {
            Some(Got::SubAck(id, codes)) if id == packet_id => codes,
            other => panic!("expected SUBACK {packet_id}, got {other:?}"),
        }
    }

    pub fn unsubscribe(&mut self, packet_id: u16, filters: &[&str]) {
        let mut out = Vec::new();
        mq::Unsubscribe::encode(&mut out, Version::V3_1_1, packet_id, &Default::default(), filters);
        self.send_raw(&out);
        assert_eq!(self.recv(WAIT), Some(Got::UnsubAck(packet_id)));
    }

    pub fn puback(&mut self, packet_id: u16) {
        self.send(&Packet::PubAck(mq::Ack::new(packet_id)));
    }

    pub fn disconnect(mut self) {
        self.send(&Packet::Disconnect(mq::Disconnect::normal()));
        let _ = self.s.shutdown(std::net::Shutdown::Write);
        assert!(self.closed_within(WAIT), "the broker closes after DISCONNECT");
    }

    /// The next packet within `wait`; None on timeout or once the socket closed.
    pub fn recv(&mut self, wait: Duration) -> Option<Got> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(got) = self.decoded() {
                return Some(got);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return None
                }
                Err(_) => return None,
            }
        }
    }

    /// Whether the broker closes the socket within `wait` (packets before
    /// the end are skipped).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// Drops the socket without DISCONNECT (an abrupt end).
    pub fn drop_abruptly(self) {
        let _ = self.s.shutdown(std::net::Shutdown::Both);
    }

    fn decoded(&mut self) -> Option<Got> {
        let (got, used) = match mq::decode(&self.buf, Version::V3_1_1, usize::MAX) {
            Ok((p, used)) => (own(&p), used),
            Err(mq::DecodeError::Incomplete(_)) => return None,
            Err(e) => panic!("the broker sent a malformed packet: {e:?}"),
        };
        self.buf.drain(..used);
        Some(got)
    }
}

fn own(p: &Packet<'_>) -> Got {
    match p {
        Packet::ConnAck(c) => Got::ConnAck(c.code),
        Packet::Publish(p) => Got::Publish {
            topic: p.topic.to_owned(),
            payload: p.payload.to_vec(),
            qos: p.qos as u8,
            dup: p.dup,
            packet_id: p.packet_id,
        },
        Packet::PubAck(a) => Got::PubAck(a.packet_id),
        Packet::SubAck(s) => Got::SubAck(s.packet_id, s.codes.to_vec()),
        Packet::UnsubAck(s) => Got::UnsubAck(s.packet_id),
        Packet::PingResp => Got::PingResp,
        other => Got::Other(other.name()),
    }
}
