//! A client of etcd's v3 API through its JSON gateway (`POST /v3/...` over
//! HTTP/1.1, keys and values in base64, 64-bit numbers as strings): the few
//! calls clustering needs, without gRPC's generated code and its build-time
//! `protoc` (LavinMQ talks to etcd the same way). Each call tries the
//! endpoints in order and takes the first answer; every call is bounded by
//! the client's timeout.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

/// Why a call to etcd failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd at {endpoint}: {source}")]
    Io {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("etcd at {endpoint}: HTTP {status}: {body}")]
    Status {
        endpoint: String,
        status: u16,
        body: String,
    },
    #[error("etcd at {endpoint}: unexpected reply to {path}: {reply}")]
    Reply {
        endpoint: String,
        path: &'static str,
        reply: String,
    },
    #[error("no etcd endpoint answered within {0:?}")]
    Timeout(Duration),
    #[error("no etcd endpoints are configured")]
    NoEndpoints,
}

/// A key's current value, as etcd keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The revision that created it (a new one after each delete and create).
    pub create_revision: i64,
    pub mod_revision: i64,
    /// The lease it is attached to (0: none).
    pub lease: i64,
}

/// What a watch saw change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Kv),
    Delete { key: Vec<u8>, mod_revision: i64 },
}

/// etcd's JSON gateway at one or more `host:port` endpoints.
#[derive(Debug, Clone)]
pub struct Etcd {
    endpoints: Vec<String>,
    timeout: Duration,
}

/// A 64-bit number of the gateway's JSON: a string, or absent for zero.
fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    v.as_str().and_then(|s| B64.decode(s).ok()).unwrap_or_default()
}

fn kv_of(v: &Value) -> Kv {
    Kv {
        key: unb64(&v["key"]),
        value: unb64(&v["value"]),
        create_revision: num(&v["create_revision"]),
        mod_revision: num(&v["mod_revision"]),
        lease: num(&v["lease"]),
    }
}

impl Etcd {
    /// `endpoints`: `host:port` (an `http://` prefix is allowed).
    pub fn new(endpoints: &[String], timeout: Duration) -> Etcd {
        let endpoints = (endpoints.iter())
            .map(|e| e.trim().trim_start_matches("http://").trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        Etcd { endpoints, timeout }
    }

    /// Posts `body` to `path` on the first endpoint that answers.
    async fn call(&self, path: &'static str, body: Value) -> Result<Value, EtcdError> {
        let body = Bytes::from(body.to_string());
        let mut last = EtcdError::NoEndpoints;
        for endpoint in &self.endpoints {
            match tokio::time::timeout(self.timeout, post(endpoint, path, body.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => last = e,
                Err(_) => last = EtcdError::Timeout(self.timeout),
            }
        }
        Err(last)
    }

    fn unexpected(&self, path: &'static str, reply: &Value) -> EtcdError {
        EtcdError::Reply {
            endpoint: self.endpoints.first().cloned().unwrap_or_default(),
            path,
            reply: reply.to_string(),
        }
    }

    /// A lease of `ttl_secs`: returns its id and the TTL etcd granted.
    pub async fn grant(&self, ttl_secs: i64) -> Result<(i64, i64), EtcdError> {
        const PATH: &str = "/v3/lease/grant";
        let r = self.call(PATH, json!({ "TTL": ttl_secs })).await?;
        match (num(&r["ID"]), num(&r["TTL"])) {
            (0, _) | (_, 0) => Err(self.unexpected(PATH, &r)),
            (id, ttl) => Ok((id, ttl)),
        }
    }

    /// Renews lease `id`: the TTL it has again, or None if it is gone
    /// (expired or revoked: whatever was attached to it is deleted).
    pub async fn keep_alive(&self, id: i64) -> Result<Option<i64>, EtcdError> {
        let r = self
            .call("/v3/lease/keepalive", json!({ "ID": id.to_string() }))
            .await?;
        Ok(Some(num(&r["result"]["TTL"])).filter(|&ttl| ttl > 0))
    }

    /// Ends lease `id` now, deleting the keys attached to it.
    pub async fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({ "ID": id.to_string() })).await?;
        Ok(())
    }

    /// The value of `key`, if it has one.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Kv>, EtcdError> {
        let r = self.call("/v3/kv/range", json!({ "key": b64(key) })).await?;
        Ok(r["kvs"].as_array().and_then(|kvs| kvs.first()).map(kv_of))
    }

    /// Sets `key` to `value` (attached to `lease` unless 0); returns the
    /// revision of the change.
    pub async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, EtcdError> {
        let mut put = json!({ "key": b64(key), "value": b64(value) });
        if lease != 0 {
            put["lease"] = json!(lease.to_string());
        }
        let r = self.call("/v3/kv/put", put).await?;
        Ok(num(&r["header"]["revision"]))
    }

    /// Sets `key` to `value` only if it has no value (one transaction):
    /// `Ok(revision)` if this call created it, `Err(current)` if it exists.
    pub async fn create(&self, key: &[u8], value: &[u8], lease: i64) -> Result<Result<i64, Kv>, EtcdError> {
        const PATH: &str = "/v3/kv/txn";
        let k = b64(key);
        let mut put = json!({ "key": k, "value": b64(value) });
        if lease != 0 {
            put["lease"] = json!(lease.to_string());
        }
        let txn = json!({
            "compare": [{ "key": k, "target": "CREATE", "create_revision": "0", "result": "EQUAL" }],
            "success": [{ "request_put": put }],
            "failure": [{ "request_range": { "key": k } }],
        });
        let r = self.call(PATH, txn).await?;
        if r["succeeded"].as_bool() == Some(true) {
            return Ok(Ok(num(&r["header"]["revision"])));
        }
        let kvs = &r["responses"][0]["response_range"]["kvs"];
        match kvs.as_array().and_then(|kvs| kvs.first()) {
            Some(kv) => Ok(Err(kv_of(kv))),
            // Deleted between the compare and the range: not created either.
            None => Err(self.unexpected(PATH, &r)),
        }
    }

    /// Sets `key` to `value` only while `guard` holds `guard_value` and was
    /// created in revision `guard_created` (one transaction): true if set. The
    /// leader writes the in-sync replica set so: a deposed leader's write fails.
    pub async fn put_if(
        &self,
        key: &[u8],
        value: &[u8],
        guard: &[u8],
        guard_value: &[u8],
        guard_created: i64,
    ) -> Result<bool, EtcdError> {
        let g = b64(guard);
        let txn = json!({
            "compare": [
                { "key": g, "target": "VALUE", "value": b64(guard_value), "result": "EQUAL" },
                { "key": g, "target": "CREATE", "create_revision": guard_created.to_string(), "result": "EQUAL" },
            ],
            "success": [{ "request_put": { "key": b64(key), "value": b64(value) } }],
        });
        let r = self.call("/v3/kv/txn", txn).await?;
        Ok(r["succeeded"].as_bool() == Some(true))
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &[u8]) -> Result<(), EtcdError> {
        self.call("/v3/kv/deleterange", json!({ "key": b64(key) })).await?;
        Ok(())
    }

    /// Watches `key` from revision `from` (0: from now): the events come as
    /// [`Watch::next`] is awaited. The first endpoint that answers serves it.
    pub async fn watch(&self, key: &[u8], from: i64) -> Result<Watch, EtcdError> {
        let mut create = json!({ "key": b64(key) });
        if from > 0 {
            create["start_revision"] = json!(from.to_string());
        }
        let body = Bytes::from(json!({ "create_request": create }).to_string());
        let mut last = EtcdError::NoEndpoints;
        for endpoint in &self.endpoints {
            match tokio::time::timeout(self.timeout, open(endpoint, "/v3/watch", body.clone())).await {
                Ok(Ok(body)) => {
                    return Ok(Watch {
                        endpoint: endpoint.clone(),
                        body,
                        buf: Vec::new(),
                    })
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = EtcdError::Timeout(self.timeout),
            }
        }
        Err(last)
    }
}

/// A watch's stream of results (one JSON object per line).
pub struct Watch {
    endpoint: String,
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl Watch {
    /// The next batch of events (empty for the gateway's own messages, such
    /// as the watch's creation); None when etcd ended the stream.
    pub async fn next(&mut self) -> Result<Option<Vec<Event>>, EtcdError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                    continue; // not a whole result: the gateway writes one per line
                };
                let events = v["result"]["events"].as_array().map_or(Vec::new(), |evs| {
                    evs.iter()
                        .map(|e| match e["type"].as_str() {
                            Some("DELETE") => Event::Delete {
                                key: unb64(&e["kv"]["key"]),
                                mod_revision: num(&e["kv"]["mod_revision"]),
                            },
                            _ => Event::Put(kv_of(&e["kv"])),
                        })
                        .collect()
                });
                return Ok(Some(events));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(EtcdError::Io {
                        endpoint: self.endpoint.clone(),
                        source: std::io::Error::other(e),
                    })
                }
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// One request on a connection of its own: the reply's body, still coming.
async fn open(endpoint: &str, path: &str, body: Bytes) -> Result<hyper::body::Incoming, EtcdError> {
    let io = |source| EtcdError::Io {
        endpoint: endpoint.to_string(),
        source,
    };
    let stream = tokio::net::TcpStream::connect(endpoint).await.map_err(io)?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
    // The connection is driven beside the caller, and ends with the body.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, endpoint)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| io(std::io::Error::other(e)))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
    let status = res.status().as_u16();
    if status != 200 {
        let body = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(EtcdError::Status {
            endpoint: endpoint.to_string(),
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    Ok(res.into_body())
}

/// One request, its whole JSON reply.
async fn post(endpoint: &str, path: &'static str, body: Bytes) -> Result<Value, EtcdError> {
    let body = open(endpoint, path, body).await?;
    let bytes = body.collect().await.map_err(|e| EtcdError::Io {
        endpoint: endpoint.to_string(),
        source: std::io::Error::other(e),
    })?;
    let bytes = bytes.to_bytes();
    serde_json::from_slice(&bytes).map_err(|_| EtcdError::Reply {
        endpoint: endpoint.to_string(),
        path,
        reply: String::from_utf8_lossy(&bytes).into_owned(),
    })
}
