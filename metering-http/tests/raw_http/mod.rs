//! Requests written by hand over TCP, for tests that cut a connection where no HTTP client
//! would.

use anyhow::Result;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Opens a connection to `address` (`host:port`) and writes a `POST /v1/meter/events` of
/// `body` with `key`, but only the first `sent` bytes of the body; the caller reads from the
/// stream or drops it to hang up.
pub(crate) async fn post_events_partly(
    address: &str,
    key: &str,
    body: &str,
    sent: usize,
) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(address).await?;
    let head = format!(
        "POST /v1/meter/events HTTP/1.1\r\nHost: {address}\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body.as_bytes()[..sent]).await?;
    stream.flush().await?;
    Ok(stream)
}
