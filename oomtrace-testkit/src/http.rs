//! Plain HTTP/1.1 over std, enough for Prometheus' query API, the OTLP
//! receiver's health check and the daemon's /metrics, /healthz and /readyz
//! (no HTTP client crate needed).

use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs as _},
    path::Path,
    process::Child,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

const TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` on `addr` (`host:port`, an optional `http://` is ignored): the
/// status and the body (chunked transfer encoding decoded).
pub fn get(addr: &str, path: &str) -> Result<(u16, String)> {
    request(addr, "GET", path, None)
}

/// `POST path` on `addr` with `body` (`(content type, bytes)`), or an empty
/// body: the status and the response body.
pub fn post(addr: &str, path: &str, body: Option<(&str, &[u8])>) -> Result<(u16, String)> {
    request(addr, "POST", path, Some(body.unwrap_or(("text/plain", b""))))
}

/// The first address `addr` resolves to that accepts a TCP connection.
pub fn connect(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let addrs: Vec<_> = addr.to_socket_addrs().with_context(|| format!("resolving {addr}"))?.collect();
    let mut last = anyhow::anyhow!("{addr} resolves to no address");
    for socket in addrs {
        match TcpStream::connect_timeout(&socket, timeout) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = anyhow::Error::new(error).context(format!("connecting to {socket}")),
        }
    }
    Err(last)
}

/// Hands back `child`, just started, once every one of `addrs` accepts a
/// connection. Fails (and kills it) once it has exited, or when `timeout`
/// has passed, naming `what` and quoting its `log`.
pub fn listening(mut child: Child, addrs: &[&str], timeout: Duration, what: &str, log: &Path) -> Result<Child> {
    let deadline = Instant::now() + timeout;
    while addrs.iter().any(|addr| connect(addr, Duration::from_millis(200)).is_err()) {
        let log_text = || std::fs::read_to_string(log).unwrap_or_default();
        let failure = match child.try_wait() {
            Ok(Some(status)) => Some(format!("{what} exited ({status}) at start: {}", log_text())),
            _ if Instant::now() >= deadline => Some(format!(
                "{what} does not listen on {} after {} s: {}",
                addrs.join(" and "),
                timeout.as_secs(),
                log_text()
            )),
            _ => None,
        };
        if let Some(failure) = failure {
            let _ = child.kill();
            let _ = child.wait();
            bail!(failure);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(child)
}

fn request(addr: &str, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Result<(u16, String)> {
    let addr = addr.strip_prefix("http://").unwrap_or(addr).trim_end_matches('/');
    let what = format!("{method} http://{addr}{path}");
    let mut stream = connect(addr, TIMEOUT).with_context(|| what.clone())?;
    stream.set_read_timeout(Some(TIMEOUT)).with_context(|| format!("{what}: setting a read timeout"))?;
    stream.set_write_timeout(Some(TIMEOUT)).with_context(|| format!("{what}: setting a write timeout"))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: oomtrace-testkit\r\nAccept: */*\r\nConnection: close\r\n"
    )
    .into_bytes();
    if let Some((content_type, data)) = body {
        request.extend_from_slice(
            format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", data.len()).as_bytes(),
        );
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(data);
    } else {
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request).with_context(|| format!("{what}: sending"))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("{what}: reading the response"))?;
    parse_response(&raw).with_context(|| format!("{what}: bad response"))
}

fn parse_response(raw: &[u8]) -> Result<(u16, String)> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("no complete response head in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let rest = &raw[head_end + 4..];
    let body = match (chunked, length) {
        (true, _) => dechunk(rest)?,
        (false, Some(n)) if rest.len() < n => bail!("body truncated: {} of {n} bytes", rest.len()),
        (false, Some(n)) => rest[..n].to_vec(),
        (false, None) => rest.to_vec(),
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").context("chunked body: no chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("chunked body: size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out); // trailers, if any, are ignored
        }
        if data.len() < size {
            bail!("chunked body truncated: {} of {size} bytes", data.len());
        }
        out.extend_from_slice(&data[..size]);
        data = data[size..].strip_prefix(b"\r\n").context("chunked body: no CRLF after a chunk")?;
    }
}

/// Percent-encodes a query parameter.
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nready";
        assert_eq!(parse_response(plain).ok(), Some((200, "ready".to_owned())));
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\natt\r\n6\r\naching\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).ok(), Some((503, "attaching".to_owned())));
        assert!(parse_response(b"HTTP/1.1 200").is_err());
    }

    #[test]
    fn http_bodies_are_dechunked() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).ok(), Some((200, "Wikipedia".to_owned())));
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(parse_response(raw).ok(), Some((404, "abc".to_owned())));
    }

    #[test]
    fn encodes_promql() {
        assert_eq!(urlencode(r#"up{job="x"}"#), "up%7Bjob%3D%22x%22%7D");
        assert_eq!(urlencode("up{a=\"b c\"}"), "up%7Ba%3D%22b%20c%22%7D");
    }
}
