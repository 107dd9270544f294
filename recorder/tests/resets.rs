//! Connections reset in mid-stream: the server aborts (SO_LINGER 0) while the client
//! is still sending. Both sides' views are checked against their own counters.

mod testbed;

use std::time::Duration;

use tcpfr_schema::flows::Flow;
use tcpfr_schema::resets::Reset;
use testbed::*;

#[test]
fn server_aborts_mid_stream() {
    let _serial = serial();
    let bed = Bed::new("rst", 7, false);
    let port = 5007;
    let rec = Recorder::start(&[]);
    let server = bed.serve(port, &["--abort-after", "100000"]);
    let (cb, sb) = (bed.client.counters(), bed.server.counters());
    let (client_pid, out) = bed.send(port, 50_000_000, 5, &[], Duration::from_secs(60));
    let (ca, sa) = (bed.client.counters(), bed.server.counters());
    let server_pid = server.pid();
    drop(server);
    let (recording, _d) = rec.stop();
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|l| l.starts_with("write-error")), "{out:?}");

    let (cns, sns) = (bed.client.inode(), bed.server.inode());
    assert_eq!(delta(&cb, &ca, "Tcp.EstabResets"), 5);

    let resets = recording.read_table::<Reset>().unwrap();
    // Sent in the server's namespace: the kernel's OutRsts, exactly. Five are the
    // aborts; data the client had already sent arrives at a closed socket and is
    // answered with more resets (NO_SOCKET), as many as the race produced.
    let sent: Vec<&Reset> = resets.iter().filter(|r| &*r.direction == "sent" && (r.netns == Some(sns) || (r.socket_id.is_none() && &*r.laddr == bed.server_ip))).collect();
    assert_eq!(sent.len() as i64, delta(&sb, &sa, "Tcp.OutRsts"), "{resets:#?}");
    // The kernel gives a SO_LINGER-0 close one of two reasons: TCP_ABORT_ON_CLOSE when it
    // dropped unread data, TCP_STATE (tcp_disconnect) when the receive queue happened to
    // be empty — a race with the client's data (seen in about one run in five).
    let aborts: Vec<&&Reset> = sent
        .iter()
        .filter(|r| r.reason.as_deref().is_some_and(|x| x.starts_with("TCP_ABORT_ON_") || x == "TCP_STATE"))
        .collect();
    assert_eq!(aborts.len(), 5, "{sent:#?}");
    // close() with SO_LINGER 0 moves the socket to CLOSE, then sends the reset.
    assert!(aborts.iter().all(|r| r.state.as_deref() == Some("CLOSE") && r.pid == Some(server_pid as i32)), "owned by the server (listener's process)");
    assert!(sent.iter().filter(|r| r.socket_id.is_none()).all(|r| r.reason.as_deref() == Some("NO_SOCKET")));
    // Received: one per connection; later ones find no socket and are not "received".
    let received: Vec<&Reset> = resets.iter().filter(|r| r.netns == Some(cns) && &*r.direction == "received").collect();
    assert_eq!(received.len(), 5);
    assert!(received.iter().all(|r| r.state.as_deref() == Some("ESTABLISHED") && r.pid == Some(client_pid as i32)));
    // Who reset whom: the server's end of the client's connections.
    assert!(received.iter().all(|r| r.rport == port && &*r.raddr == bed.server_ip));

    let flows = recording.read_table::<Flow>().unwrap();
    let clients: Vec<&Flow> = flows.iter().filter(|f| f.netns == Some(cns)).collect();
    assert_eq!(clients.len(), 5);
    assert!(clients.iter().all(|f| f.error.as_deref() == Some("ECONNRESET") && &*f.last_state == "ESTABLISHED"));
    assert!(clients.iter().all(|f| f.handshake.as_deref() == Some("completed")));
    // The client's socket ids in `resets` are its flows' ids.
    for r in &received {
        assert!(clients.iter().any(|f| Some(f.socket_id) == r.socket_id));
    }
}
