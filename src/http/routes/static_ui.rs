//! The web UI's static files (`src/http/ui/`), embedded in the binary so the
//! UI works without internet.

use bytes::Bytes;

use crate::http::{ApiError, Reply, Req};

/// (file name, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/style.css"),
    ),
];

fn serve(name: &str) -> Option<Reply> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ct, body)| Reply::Raw {
            status: 200,
            content_type: ct,
            body: Bytes::from_static(body),
        })
}

pub(crate) fn index(_req: &Req<'_>) -> Result<Reply, ApiError> {
    serve("index.html").ok_or_else(ApiError::not_found)
}

pub(crate) fn file(req: &Req<'_>) -> Result<Reply, ApiError> {
    let name = req.param("file");
    if name == "api" || name == "metrics" {
        return Err(ApiError::not_found());
    }
    serve(name).ok_or_else(ApiError::not_found)
}
