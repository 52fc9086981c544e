//! API requests from fuzz bytes: any route of the table (or a path next to
//! one), mostly its own method, path parameters from the name pool (percent-
//! encoded, or raw), mostly guest's login, and a body shaped like what the
//! route reads (each field sometimes of another type, missing, or any JSON),
//! any JSON, or any bytes.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Result, Unstructured};
use base64::Engine as _;
use bytes::Bytes;
use ringmq::http::InProcess;
use serde_json::{json, Map, Value};

use crate::sim::Sim;
use crate::values::{Args, Json, Name, POLICY_KEYS};

/// One request, as the bytes a client would send (printable when an input is
/// replayed with `-runs=1`, for writing its regression test).
#[derive(Debug, Clone)]
pub struct HttpOp {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

fn routes() -> &'static [(&'static str, &'static str)] {
    static ROUTES: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    ROUTES.get_or_init(|| InProcess::routes().collect())
}

impl HttpOp {
    pub fn run(&self, sim: &mut Sim) {
        let Ok(method) = hyper::Method::from_bytes(self.method.as_bytes()) else {
            return; // hyper answers a bad request line itself
        };
        let mut req = hyper::Request::builder().method(method).uri(self.uri.as_str());
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_slice());
        }
        let Ok(req) = req.body(Bytes::from(self.body.clone())) else {
            return; // a URI or header hyper would not have parsed
        };
        let resp = sim.request(req);
        let json = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes() == b"application/json");
        if json && !resp.body().is_empty() {
            assert!(
                serde_json::from_slice::<Value>(resp.body()).is_ok(),
                "{} {}: a JSON reply that does not parse",
                self.method,
                self.uri
            );
        }
    }
}

/// Every byte but the unreserved ones as `%XX` (how clients encode names).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Field values shaped like what a route reads, or not.
struct Gen<'u, 'a> {
    u: &'u mut Unstructured<'a>,
}

impl Gen<'_, '_> {
    fn name(&mut self) -> Result<String> {
        Ok(Name::arbitrary(self.u)?.resolve(&[]))
    }

    fn number(&mut self) -> Result<Value> {
        Ok(match self.u.int_in_range(0u8..=5)? {
            0 => json!(0),
            1 => json!(1),
            2 => json!(-1),
            3 => json!(i64::arbitrary(self.u)?),
            4 => json!(u16::arbitrary(self.u)?),
            _ => json!(f64::arbitrary(self.u)?),
        })
    }

    /// Puts `key` in `obj`: usually `value`, sometimes any JSON, sometimes left out.
    fn field(&mut self, obj: &mut Map<String, Value>, key: &str, value: Value) -> Result<()> {
        match self.u.int_in_range(0u8..=9)? {
            0 => {}
            1 => {
                obj.insert(key.into(), Json::arbitrary(self.u)?.0);
            }
            _ => {
                obj.insert(key.into(), value);
            }
        }
        Ok(())
    }

    fn obj(&mut self, fields: Vec<(&str, Value)>) -> Result<Value> {
        let mut m = Map::new();
        for (k, v) in fields {
            self.field(&mut m, k, v)?;
        }
        if self.u.ratio(1u8, 8u8)? {
            m.insert(self.name()?, Json::arbitrary(self.u)?.0);
        }
        Ok(Value::Object(m))
    }

    fn bool(&mut self) -> Result<Value> {
        Ok(json!(bool::arbitrary(self.u)?))
    }

    fn string(&mut self) -> Result<Value> {
        Ok(json!(self.name()?))
    }

    fn args(&mut self) -> Result<Value> {
        Ok(Args::arbitrary(self.u)?.to_json(&[]))
    }

    fn list(&mut self, f: fn(&mut Self) -> Result<Value>) -> Result<Value> {
        let n = self.u.int_in_range(0..=2)?;
        Ok(Value::Array((0..n).map(|_| f(self)).collect::<Result<_>>()?))
    }

    fn queue(&mut self) -> Result<Value> {
        let fields = vec![
            ("name", self.string()?),
            ("vhost", self.vhost()?),
            ("durable", self.bool()?),
            ("auto_delete", self.bool()?),
            ("arguments", self.args()?),
        ];
        self.obj(fields)
    }

    fn exchange(&mut self) -> Result<Value> {
        let fields = vec![
            ("name", self.string()?),
            ("vhost", self.vhost()?),
            ("type", self.string()?),
            ("durable", self.bool()?),
            ("auto_delete", self.bool()?),
            ("internal", self.bool()?),
            ("arguments", self.args()?),
        ];
        self.obj(fields)
    }

    fn binding(&mut self) -> Result<Value> {
        let dtype = if bool::arbitrary(self.u)? { "queue" } else { "exchange" };
        let fields = vec![
            ("source", self.string()?),
            ("vhost", self.vhost()?),
            ("destination", self.string()?),
            ("destination_type", json!(dtype)),
            ("routing_key", self.string()?),
            ("arguments", self.args()?),
        ];
        self.obj(fields)
    }

    fn vhost(&mut self) -> Result<Value> {
        Ok(json!(if self.u.ratio(3u8, 4u8)? {
            "/".into()
        } else {
            self.name()?
        }))
    }

    fn policy(&mut self) -> Result<Value> {
        let mut def = Map::new();
        for _ in 0..self.u.int_in_range(0..=3)? {
            let k = POLICY_KEYS[self.u.choose_index(POLICY_KEYS.len())?];
            let v = match self.u.int_in_range(0u8..=2)? {
                0 => self.number()?,
                1 => self.string()?,
                _ => Json::arbitrary(self.u)?.0,
            };
            def.insert(k.into(), v);
        }
        let fields = vec![
            ("name", self.string()?),
            ("vhost", self.vhost()?),
            ("pattern", self.string()?),
            ("definition", Value::Object(def)),
            ("priority", self.number()?),
            ("apply-to", self.string()?),
        ];
        self.obj(fields)
    }

    fn user(&mut self) -> Result<Value> {
        let fields = vec![
            ("name", self.string()?),
            ("password", self.string()?),
            ("password_hash", self.string()?),
            ("hashing_algorithm", self.string()?),
            ("tags", self.string()?),
            ("limits", Json::arbitrary(self.u)?.0),
        ];
        self.obj(fields)
    }

    fn permission(&mut self) -> Result<Value> {
        let fields = vec![
            ("user", self.string()?),
            ("vhost", self.vhost()?),
            ("configure", self.string()?),
            ("write", self.string()?),
            ("read", self.string()?),
        ];
        self.obj(fields)
    }

    fn parameter(&mut self) -> Result<Value> {
        let value = if bool::arbitrary(self.u)? {
            self.policy()?
        } else {
            Json::arbitrary(self.u)?.0
        };
        let fields = vec![
            ("name", self.string()?),
            ("vhost", self.vhost()?),
            ("component", self.string()?),
            ("value", value),
        ];
        self.obj(fields)
    }

    fn vhost_def(&mut self) -> Result<Value> {
        let fields = vec![("name", self.string()?)];
        self.obj(fields)
    }

    fn global_parameter(&mut self) -> Result<Value> {
        let fields = vec![("name", self.string()?), ("value", Json::arbitrary(self.u)?.0)];
        self.obj(fields)
    }

    fn definitions(&mut self) -> Result<Value> {
        let fields = vec![
            ("users", self.list(Self::user)?),
            ("vhosts", self.list(Self::vhost_def)?),
            ("permissions", self.list(Self::permission)?),
            ("queues", self.list(Self::queue)?),
            ("exchanges", self.list(Self::exchange)?),
            ("bindings", self.list(Self::binding)?),
            ("policies", self.list(Self::policy)?),
            ("parameters", self.list(Self::parameter)?),
            ("global_parameters", self.list(Self::global_parameter)?),
        ];
        self.obj(fields)
    }

    fn properties(&mut self) -> Result<Value> {
        let fields = vec![
            ("delivery_mode", self.number()?),
            ("priority", self.number()?),
            ("expiration", self.string()?),
            ("headers", self.args()?),
            ("reply_to", self.string()?),
            ("user_id", self.string()?),
            ("content_type", self.string()?),
            ("message_id", self.string()?),
            ("timestamp", self.number()?),
        ];
        self.obj(fields)
    }

    /// The body a route reads, by its pattern.
    fn body_for(&mut self, pattern: &str) -> Result<Value> {
        let tail = pattern.rsplit('/').next().unwrap_or("");
        Ok(match pattern {
            p if p.starts_with("/api/queues/") && tail == "{name}" => {
                let f = vec![
                    ("durable", self.bool()?),
                    ("auto_delete", self.bool()?),
                    ("arguments", self.args()?),
                ];
                self.obj(f)?
            }
            p if p.starts_with("/api/exchanges/") && tail == "{name}" => {
                let f = vec![
                    ("type", self.string()?),
                    ("durable", self.bool()?),
                    ("auto_delete", self.bool()?),
                    ("internal", self.bool()?),
                    ("arguments", self.args()?),
                ];
                self.obj(f)?
            }
            _ if tail == "publish" => {
                let payload = self.name()?;
                let (payload, encoding) = if bool::arbitrary(self.u)? {
                    (
                        base64::engine::general_purpose::STANDARD.encode(&payload),
                        "base64".into(),
                    )
                } else {
                    (payload, self.name()?)
                };
                let f = vec![
                    ("properties", self.properties()?),
                    ("routing_key", self.string()?),
                    ("payload", json!(payload)),
                    ("payload_encoding", json!(encoding)),
                ];
                self.obj(f)?
            }
            _ if tail == "get" => {
                let ackmode = [
                    "ack_requeue_true",
                    "ack_requeue_false",
                    "reject_requeue_true",
                    "reject_requeue_false",
                ][self.u.choose_index(4)?];
                let f = vec![
                    ("count", self.number()?),
                    ("ackmode", json!(ackmode)),
                    (
                        "encoding",
                        json!(if bool::arbitrary(self.u)? { "auto" } else { "base64" }),
                    ),
                    ("truncate", self.number()?),
                ];
                self.obj(f)?
            }
            p if p.starts_with("/api/bindings/") => {
                let f = vec![("routing_key", self.string()?), ("arguments", self.args()?)];
                self.obj(f)?
            }
            "/api/users/bulk-delete" => {
                let f = vec![("users", self.list(Self::string)?)];
                self.obj(f)?
            }
            p if p.starts_with("/api/users/") => self.user()?,
            p if p.starts_with("/api/permissions/") => self.permission()?,
            p if p.starts_with("/api/vhosts/") => {
                let f = vec![
                    ("description", self.string()?),
                    ("tags", self.string()?),
                    ("default_queue_type", self.string()?),
                ];
                self.obj(f)?
            }
            p if p.contains("-limits/") => {
                let f = vec![("value", self.number()?)];
                self.obj(f)?
            }
            p if p.contains("policies/") => self.policy()?,
            p if p.starts_with("/api/parameters/") || p.starts_with("/api/global-parameters/") => self.parameter()?,
            p if p.starts_with("/api/definitions") => self.definitions()?,
            _ => json!({}),
        })
    }

    /// A path parameter: a likely value for its name, any name, or raw text.
    fn param(&mut self, which: &str) -> Result<String> {
        Ok(match self.u.int_in_range(0u8..=9)? {
            0..=4 => encode(match which {
                "vhost" => "/",
                "user" => "guest",
                "source" => "amq.direct",
                "component" => {
                    ["vhost-limits", "operator_policy", "federation-upstream", "shovel"][self.u.choose_index(4)?]
                }
                "name" if bool::arbitrary(self.u)? => "127.0.0.1:40000 -> 127.0.0.1:5672",
                "node" => "ringmq@localhost",
                "props" => "~",
                "file" => "index.html",
                _ => "q0",
            }),
            5..=8 => encode(&self.name()?),
            _ => self.name()?,
        })
    }
}

impl<'a> Arbitrary<'a> for HttpOp {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let all = routes();
        let (own_method, pattern) = all[u.choose_index(all.len())?];
        let mut g = Gen { u };
        let method = match g.u.int_in_range(0u8..=15)? {
            0 => "GET".into(),
            1 => "PUT".into(),
            2 => "POST".into(),
            3 => "DELETE".into(),
            4 => "HEAD".into(),
            5 => String::arbitrary(g.u)?,
            _ => own_method.into(),
        };
        let mut uri = String::new();
        for seg in pattern.split('/').skip(1) {
            uri.push('/');
            match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(which) => uri.push_str(&g.param(which)?),
                None => uri.push_str(seg),
            }
        }
        if g.u.ratio(1u8, 16u8)? {
            uri.push('/');
            uri.push_str(&encode(&g.name()?));
        }
        if g.u.ratio(1u8, 6u8)? {
            let q = [
                "page=1&page_size=2",
                "page=0",
                "page_size=100000",
                "name=q&use_regex=true",
                "name=(&use_regex=true",
                "sort=name&sort_reverse=true",
                "sort=nothing",
                "columns=name,messages",
                "msg_rates_age=60&msg_rates_incr=0",
                "lengths_age=-1&lengths_incr=5",
            ][g.u.choose_index(10)?];
            uri.push('?');
            uri.push_str(q);
            if g.u.ratio(1u8, 4u8)? {
                uri.push('&');
                uri.push_str(&encode(&g.name()?));
                uri.push('=');
                uri.push_str(&encode(&g.name()?));
            }
        }
        let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
        let auth = match g.u.int_in_range(0u8..=15)? {
            0..=11 => Some(("guest".to_string(), "guest".to_string())),
            12 => None,
            13 => Some(("guest".into(), "wrong".into())),
            14 => Some((g.name()?, g.name()?)),
            _ => {
                headers.push(("authorization".into(), Vec::<u8>::arbitrary(g.u)?));
                None
            }
        };
        if let Some((user, pass)) = auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            headers.push(("authorization".into(), format!("Basic {token}").into_bytes()));
        }
        if g.u.ratio(1u8, 8u8)? {
            headers.push(("x-reason".into(), Vec::<u8>::arbitrary(g.u)?));
        }
        let body = match g.u.int_in_range(0u8..=15)? {
            0..=11 => g.body_for(pattern)?.to_string().into_bytes(),
            12 => Json::arbitrary(g.u)?.0.to_string().into_bytes(),
            13 => Vec::<u8>::arbitrary(g.u)?,
            _ => Vec::new(),
        };
        Ok(HttpOp {
            method,
            uri,
            headers,
            body,
        })
    }
}
