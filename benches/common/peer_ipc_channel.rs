//! ipc-channel (Servo): Unix-socket channels with bincode 1, bootstrapped
//! across processes with `IpcOneShotServer`. Serde messages go through an
//! `IpcSender<Msg>`, bytes through an `IpcBytesSender`.
//!
//! Bootstrap: the side that receives makes a one-shot server per peer and
//! announces its name; the peer connects and sends a [`Hello`]: a sender on
//! which it wants the data sender, and (for ping-pong) its own data sender.

use ipc_channel::ipc::{
    self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcReceiver, IpcSender, TryRecvError,
};
use serde::{Deserialize, Serialize};

use super::{seq_of, spin, Inbox, Msg, Outbox, Path, Spec, Transport, Wait};

/// The ipc-channel peer.
pub struct IpcChannel;

/// A data sender of either path; it travels between processes.
#[derive(Clone, Serialize, Deserialize)]
pub enum IpcOut {
    /// Serde path.
    Msg(IpcSender<Msg>),
    /// Bytes path.
    Bytes(IpcBytesSender),
}

/// A data receiver of either path.
pub enum IpcIn {
    /// Serde path.
    Msg(IpcReceiver<Msg>, bool),
    /// Bytes path.
    Bytes(IpcBytesReceiver, bool),
}

/// What a connecting peer sends first: where to send it the data sender,
/// and its own data sender if it receives too.
type Hello = (IpcSender<IpcOut>, Option<IpcOut>);

fn data_channel(path: Path, wait: Wait) -> (IpcOut, IpcIn) {
    let spin = wait == Wait::Spin;
    match path {
        Path::Serde => {
            let (tx, rx) = ipc::channel::<Msg>().expect("ipc-channel: channel");
            (IpcOut::Msg(tx), IpcIn::Msg(rx, spin))
        }
        Path::Bytes => {
            let (tx, rx) = ipc::bytes_channel().expect("ipc-channel: bytes_channel");
            (IpcOut::Bytes(tx), IpcIn::Bytes(rx, spin))
        }
    }
}

fn server() -> (IpcOneShotServer<Hello>, String) {
    IpcOneShotServer::new().expect("ipc-channel: one-shot server")
}

/// Connects to a server and gets its data sender.
fn connect(token: &str, mine: Option<IpcOut>) -> IpcOut {
    let conn = IpcSender::<Hello>::connect(token.to_owned())
        .unwrap_or_else(|e| panic!("ipc-channel: connecting to {token}: {e}"));
    let (reply_tx, reply_rx) = ipc::channel::<IpcOut>().expect("ipc-channel: channel");
    conn.send((reply_tx, mine)).expect("ipc-channel: hello");
    reply_rx.recv().expect("ipc-channel: data sender")
}

fn fail(e: TryRecvError) -> ! {
    panic!("ipc-channel try_recv: {e}")
}

impl Inbox for IpcIn {
    #[inline]
    fn recv_msg(&mut self) -> (u64, usize) {
        let IpcIn::Msg(rx, spinning) = self else {
            panic!("ipc-channel: serde message on a bytes channel")
        };
        let m = if *spinning {
            spin(|| match rx.try_recv() {
                Ok(m) => Some(m),
                Err(TryRecvError::Empty) => None,
                Err(e) => fail(e),
            })
        } else {
            rx.recv()
                .unwrap_or_else(|e| panic!("ipc-channel recv: {e}"))
        };
        (m.seq, m.payload.len())
    }

    #[inline]
    fn recv_bytes(&mut self) -> (u64, usize) {
        let IpcIn::Bytes(rx, spinning) = self else {
            panic!("ipc-channel: bytes on a serde channel")
        };
        let b = if *spinning {
            spin(|| match rx.try_recv() {
                Ok(b) => Some(b),
                Err(TryRecvError::Empty) => None,
                Err(e) => fail(e),
            })
        } else {
            rx.recv()
                .unwrap_or_else(|e| panic!("ipc-channel recv: {e}"))
        };
        (seq_of(&b), b.len())
    }
}

impl Outbox for IpcOut {
    #[inline]
    fn send_msg(&mut self, m: &Msg) {
        let IpcOut::Msg(tx) = self else {
            panic!("ipc-channel: serde message on a bytes channel")
        };
        tx.send(m.clone())
            .unwrap_or_else(|e| panic!("ipc-channel send: {e}"));
    }

    #[inline]
    fn send_bytes(&mut self, b: &[u8]) {
        let IpcOut::Bytes(tx) = self else {
            panic!("ipc-channel: bytes on a serde channel")
        };
        tx.send(b)
            .unwrap_or_else(|e| panic!("ipc-channel send: {e}"));
    }
}

impl Transport for IpcChannel {
    type In = IpcIn;
    type Out = IpcOut;

    fn receiver(spec: &Spec, announce: &mut dyn FnMut(&str)) -> IpcIn {
        let (tx, rx) = data_channel(spec.path, Wait::Block);
        let servers: Vec<_> = (0..spec.senders).map(|_| server()).collect();
        let names: Vec<&str> = servers.iter().map(|(_, n)| n.as_str()).collect();
        announce(&names.join(" "));
        for (server, _) in servers {
            let (_, (reply, _)) = server.accept().expect("ipc-channel: accept");
            reply
                .send(tx.clone())
                .expect("ipc-channel: hand out sender");
        }
        rx
    }

    fn sender(_spec: &Spec, token: &str) -> IpcOut {
        connect(token, None)
    }

    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (IpcIn, IpcOut) {
        let (ping_tx, ping_rx) = data_channel(spec.path, spec.wait);
        let (server, name) = server();
        announce(&name);
        let (_, (reply, pong_tx)) = server.accept().expect("ipc-channel: accept");
        reply.send(ping_tx).expect("ipc-channel: hand out sender");
        (ping_rx, pong_tx.expect("ipc-channel: the pinger's sender"))
    }

    fn pinger(spec: &Spec, token: &str) -> (IpcIn, IpcOut) {
        let (pong_tx, pong_rx) = data_channel(spec.path, spec.wait);
        let ping_tx = connect(token, Some(pong_tx));
        (pong_rx, ping_tx)
    }
}
