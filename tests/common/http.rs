//! A small blocking client for the management API (ureq), for the HTTP tests.

use serde_json::Value;

/// One reply: status, parsed JSON body (Null when empty or not JSON), headers
/// we look at, and the raw text.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub json: Value,
    pub text: String,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
}

/// The API of one broker as one user.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub auth: Option<(String, String)>,
}

impl Api {
    pub fn new(base: &str, user: &str, pass: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            auth: Some((user.into(), pass.into())),
        }
    }

    pub fn anonymous(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            auth: None,
        }
    }

    pub fn as_user(&self, user: &str, pass: &str) -> Api {
        Api::new(&self.base, user, pass)
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Resp {
        let mut req = ureq::request(method, &format!("{}{path}", self.base));
        if let Some((u, p)) = &self.auth {
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.set("authorization", &format!("Basic {token}"));
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let r = match body {
            Some(b) => req.set("content-type", "application/json").send_string(&b.to_string()),
            None => req.call(),
        };
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let location = resp.header("location").map(str::to_owned);
        let content_type = resp.header("content-type").map(str::to_owned);
        let www_authenticate = resp.header("www-authenticate").map(str::to_owned);
        let text = resp.into_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            json,
            text,
            location,
            content_type,
            www_authenticate,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None, &[])
    }

    pub fn put(&self, path: &str, body: Value) -> Resp {
        self.call("PUT", path, Some(&body), &[])
    }

    pub fn post(&self, path: &str, body: Value) -> Resp {
        self.call("POST", path, Some(&body), &[])
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None, &[])
    }

    /// Creates a user (201), with full configure/write/read permissions on "/"
    /// when `all_on_root`.
    #[track_caller]
    pub fn add_user(&self, name: &str, password: &str, tags: &str, all_on_root: bool) {
        let r = self.put(
            &format!("/api/users/{}", enc(name)),
            serde_json::json!({"password": password, "tags": tags}),
        );
        assert_eq!(r.status, 201, "add user {name}: {}", r.text);
        if all_on_root {
            let r = self.put(
                &format!("/api/permissions/%2F/{}", enc(name)),
                serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}),
            );
            assert_eq!(r.status, 201, "permissions of {name}: {}", r.text);
        }
    }

    /// GET that must answer 200; gives the JSON.
    #[track_caller]
    pub fn ok(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.json
    }
}

/// Asserts an error reply: status, and the JSON `error` field.
#[track_caller]
pub fn assert_err(r: &Resp, status: u16, error: &str) {
    assert_eq!(r.status, status, "body: {}", r.text);
    assert_eq!(r.json["error"], error, "body: {}", r.text);
    assert!(r.json["reason"].is_string(), "error replies carry a reason: {}", r.text);
}

/// Percent-encodes a name for a URL path segment.
pub fn enc(s: &str) -> String {
    enc_bytes(s.as_bytes())
}

/// Percent-encodes any bytes for a URL path segment (the broker decodes
/// invalid UTF-8 lossily).
pub fn enc_bytes(b: &[u8]) -> String {
    b.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
