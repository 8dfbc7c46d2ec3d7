//! A TCP relay that delays every byte by half a round trip in each direction, for measuring the
//! cluster as if its signers were far from the coordinator (`quorate bench --link-rtt`). It
//! adds latency only: bytes keep their order and nothing limits throughput.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};

/// Listens on a free loopback port and relays every connection to `upstream`, each direction
/// delayed by `rtt / 2`; returns the address to dial instead. Runs until the process ends.
pub async fn relay(upstream: String, rtt: Duration) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let one_way = rtt / 2;
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(outbound) = TcpStream::connect(&upstream).await {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ir, iw) = inbound.into_split();
                    let (or, ow) = outbound.into_split();
                    tokio::join!(pump(ir, ow, one_way), pump(or, iw, one_way));
                }
            });
        }
    });
    Ok(addr)
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_in_order_after_a_round_trip() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let rtt = Duration::from_millis(80);
        let addr = relay(upstream, rtt).await.unwrap();
        let mut c = TcpStream::connect(&addr).await.unwrap();
        let started = std::time::Instant::now();
        c.write_all(b"hello, ").await.unwrap();
        c.write_all(b"world").await.unwrap();
        let mut got = vec![0u8; 12];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello, world");
        // A lower bound only: the relay adds at least the round trip it was asked for.
        assert!(started.elapsed() >= rtt, "{:?}", started.elapsed());
    }
}
