//! Plain HTTP/1.1 GET over std, enough for Prometheus' query API and the
//! daemon's /metrics and /readyz (no HTTP client crate in the xtask).

use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs as _},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

const TIMEOUT: Duration = Duration::from_secs(5);

/// `GET path` on `addr` (`host:port`): the status and the body.
pub fn get(addr: &str, path: &str) -> Result<(u16, String)> {
    let what = format!("GET http://{addr}{path}");
    let socket = addr
        .to_socket_addrs()
        .with_context(|| format!("{what}: resolving {addr}"))?
        .next()
        .with_context(|| format!("{what}: {addr} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&socket, TIMEOUT).with_context(|| format!("{what}: connecting"))?;
    stream.set_read_timeout(Some(TIMEOUT)).with_context(|| format!("{what}: setting a read timeout"))?;
    stream.set_write_timeout(Some(TIMEOUT)).with_context(|| format!("{what}: setting a write timeout"))?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: oomtrace-xtask\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).with_context(|| format!("{what}: sending"))?;
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
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked")
        })
    });
    let rest = &raw[head_end + 4..];
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
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
            return Ok(out);
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
    fn encodes_promql() {
        assert_eq!(urlencode(r#"up{job="x"}"#), "up%7Bjob%3D%22x%22%7D");
    }
}
