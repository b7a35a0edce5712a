//! Deadlines on every byte a stranger sends: a chunked body that stalls is cut off with 408
//! at the request deadline (its reading happens before the router's timeout layer, so it has
//! a deadline of its own), one address cannot hold more than its share of connections, and
//! legitimate traffic keeps flowing while 1,000 stalled connections try to starve it.

use gatehouse_tests::spawn_app_with;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A stalled request from `from`: a chunked token request whose body never ends.
async fn stall(from: &str, to: SocketAddr) -> anyhow::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse()?)?;
    let mut stream = socket.connect(to).await?;
    stream
        .write_all(
            b"POST /oauth/token HTTP/1.1\r\nHost: gatehouse\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\ngrant",
        )
        .await?;
    Ok(stream)
}

/// The time 200 JWKS requests take over 4 keep-alive connections from 127.0.0.1.
async fn legit_round(http: &reqwest::Client, url: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (http, url) = (http.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let r = http.get(&url).send().await?;
                anyhow::ensure!(r.status().is_success(), "{}", r.status());
                r.bytes().await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_bodies_time_out_and_do_not_starve_others() -> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| {
        cfg.request_timeout = Duration::from_secs(2);
    })
    .await?;
    let public: SocketAddr = app.public.trim_start_matches("http://").parse()?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()?;
    let url = app.public_url("/oauth/jwks");
    let quiet = legit_round(&http, &url).await?;

    // 1,000 stalled connections from another loopback address.
    let mut stalled = Vec::new();
    for _ in 0..1000 {
        stalled.push(stall("127.0.0.2", public).await?);
    }
    let busy = legit_round(&http, &url).await?;
    eprintln!("200 requests: {quiet:?} quiet, {busy:?} beside 1,000 stalled connections");
    assert!(
        busy < quiet * 4 + Duration::from_secs(1),
        "legitimate traffic slowed from {quiet:?} to {busy:?}"
    );

    // Past the per-address cap (256) the connections were closed at once; the held ones get
    // 408 at the deadline. Every socket ends within the deadline plus slack.
    let started = Instant::now();
    let (mut timed_out, mut closed) = (0, 0);
    for mut s in stalled {
        let mut buf = vec![0u8; 512];
        let left = Duration::from_secs(8).saturating_sub(started.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            Ok(Ok(n)) => {
                let head = String::from_utf8_lossy(&buf[..n]);
                anyhow::ensure!(head.starts_with("HTTP/1.1 408"), "{head}");
                timed_out += 1;
            }
            Err(_) => anyhow::bail!("a stalled connection was still open after 8 s"),
        }
    }
    eprintln!("{timed_out} answered 408, {closed} closed at the cap");
    assert_eq!(
        timed_out, 256,
        "the per-address cap held {timed_out} connections"
    );
    assert_eq!(closed, 744);
    Ok(())
}
