//! A deliberately tiny HTTP/1.1 client for Janus' JSON API and Cascade's
//! `/metrics` on loopback:
//! one connection per request (`Connection: close`), `Content-Length` or
//! chunked bodies, a size cap and a timeout on every call. Enough for the
//! handful of requests a bot makes; not a general client.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response body accepted.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad URL {0:?}: expected http://HOST:PORT/PATH")]
    Url(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("status {status}: {body}")]
    Status { status: u16, body: String },
}

/// `http://host:port/base` split into what a request needs.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    pub addr: SocketAddr,
    pub host: String,
    /// Path prefix without a trailing slash, e.g. `/janus`.
    pub path: String,
}

impl BaseUrl {
    /// Parses and resolves a base URL (plain HTTP only).
    pub async fn parse(url: &str) -> Result<Self, HttpError> {
        let bad = || HttpError::Url(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let addr = tokio::net::lookup_host(host)
            .await
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        Ok(BaseUrl {
            addr,
            host: host.to_string(),
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// POSTs `body` to `base + suffix` and parses the JSON answer.
    pub async fn post(
        &self,
        suffix: &str,
        body: &Value,
        limit: Duration,
    ) -> Result<Value, HttpError> {
        let body = body.to_string();
        let head = format!(
            "POST {}{suffix} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            body.len()
        );
        let body = self.exchange(head + &body, limit).await?;
        serde_json::from_slice(&body).map_err(|e| HttpError::Malformed(e.to_string()))
    }

    /// GETs `base + suffix` and parses the JSON answer.
    pub async fn get(&self, suffix: &str, limit: Duration) -> Result<Value, HttpError> {
        let body = self.get_raw(suffix, limit).await?;
        serde_json::from_slice(&body).map_err(|e| HttpError::Malformed(e.to_string()))
    }

    /// GETs `base + suffix` as text.
    pub async fn get_text(&self, suffix: &str, limit: Duration) -> Result<String, HttpError> {
        let body = self.get_raw(suffix, limit).await?;
        String::from_utf8(body).map_err(|_| HttpError::Malformed("body not UTF-8".into()))
    }

    async fn get_raw(&self, suffix: &str, limit: Duration) -> Result<Vec<u8>, HttpError> {
        let head = format!(
            "GET {}{suffix} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.path, self.host
        );
        self.exchange(head, limit).await
    }

    /// Sends one request; the body of a 200 answer.
    async fn exchange(&self, request: String, limit: Duration) -> Result<Vec<u8>, HttpError> {
        let raw = tokio::time::timeout(limit, async {
            let mut stream = TcpStream::connect(self.addr).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut raw = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            loop {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok::<_, HttpError>(raw);
                }
                raw.extend_from_slice(&chunk[..n]);
                if raw.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::Malformed("response too large".into()));
                }
            }
        })
        .await
        .map_err(|_| HttpError::Timeout(limit))??;
        let (status, body) = parse_response(&raw)?;
        if status != 200 {
            return Err(HttpError::Status {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }
}

/// Splits a complete `Connection: close` response into status and body.
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), HttpError> {
    let bad = |what: &str| HttpError::Malformed(what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers not UTF-8"))?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("broken chunked body"))?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), (200, b"{}".to_vec()));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            (200, br#"{"a":1}"#.to_vec())
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        let missing = b"HTTP/1.1 404 Not Found\r\n\r\nnope";
        assert_eq!(parse_response(missing).unwrap().0, 404);
    }

    #[tokio::test]
    async fn base_url_needs_plain_http_and_a_port() {
        let url = BaseUrl::parse("http://127.0.0.1:8088/janus/")
            .await
            .unwrap();
        assert_eq!(url.path, "/janus");
        assert_eq!(url.addr.port(), 8088);
        assert!(BaseUrl::parse("https://127.0.0.1:8089/janus")
            .await
            .is_err());
        assert!(BaseUrl::parse("http://127.0.0.1/janus").await.is_err());
    }
}
