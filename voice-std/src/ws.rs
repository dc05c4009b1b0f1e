//! The websocket thread: connect (TCP, TLS through rustls, HTTP upgrade), then read frames and
//! write the driver's frames, one thread per websocket.

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Connector, Message, WebSocket};

use crate::driver::DriverInput;

/// How often the thread stops reading to look for frames to write.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// DAVE proposals and welcomes grow with call size; stay well above what Discord sends.
const MAX_MESSAGE_SIZE: usize = 16 << 20;

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// What the driver asks of the websocket thread.
#[derive(Debug)]
pub(crate) enum WsCommand {
    Text(String),
    Binary(Vec<u8>),
    Close(u16),
}

/// What the websocket thread reports to the driver.
#[derive(Debug)]
pub(crate) enum WsEvent {
    Opened,
    Text(String),
    Binary(Vec<u8>),
    Closed(Option<u16>),
}

/// The driver's end of one websocket thread. Dropping it closes the socket (1000).
pub(crate) struct WsHandle {
    pub(crate) generation: u64,
    commands: Sender<WsCommand>,
}

impl WsHandle {
    pub(crate) fn send(&self, command: WsCommand) -> bool {
        self.commands.send(command).is_ok()
    }
}

/// Starts the websocket thread for `url`; its events go to `inbox` tagged with `generation`.
pub(crate) fn spawn(
    generation: u64,
    url: String,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    inbox: Sender<DriverInput>,
) -> std::io::Result<(WsHandle, JoinHandle<()>)> {
    let (commands, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("voice-ws".to_owned())
        .spawn(move || run(generation, &url, tls, connect_timeout, &inbox, &rx))?;
    Ok((
        WsHandle {
            generation,
            commands,
        },
        thread,
    ))
}

fn run(
    generation: u64,
    url: &str,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    inbox: &Sender<DriverInput>,
    commands: &mpsc::Receiver<WsCommand>,
) {
    let report = |event| inbox.send(DriverInput::Ws(generation, event)).is_ok();
    let mut socket = match connect(url, tls, connect_timeout) {
        Ok(socket) => socket,
        Err(error) => {
            tracing::debug!(%error, "voice websocket did not open");
            report(WsEvent::Closed(None));
            return;
        }
    };
    if !report(WsEvent::Opened) {
        close(&mut socket, 1000);
        return;
    }
    loop {
        loop {
            let result = match commands.try_recv() {
                Ok(WsCommand::Text(text)) => socket.send(Message::text(text)),
                Ok(WsCommand::Binary(bytes)) => socket.send(Message::binary(bytes)),
                Ok(WsCommand::Close(code)) => return close(&mut socket, code),
                Err(TryRecvError::Empty) => break,
                // The driver dropped us: leave politely.
                Err(TryRecvError::Disconnected) => return close(&mut socket, 1000),
            };
            if let Err(error) = result {
                if !is_timeout(&error) {
                    report(WsEvent::Closed(None));
                    return;
                }
            }
        }
        let event = match socket.read() {
            Ok(Message::Text(text)) => WsEvent::Text(text.as_str().to_owned()),
            Ok(Message::Binary(bytes)) => WsEvent::Binary(bytes.to_vec()),
            Ok(Message::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code));
                report(WsEvent::Closed(code));
                // Let tungstenite send its close reply.
                let _ = socket.flush();
                return;
            }
            Ok(_) => continue,
            Err(error) if is_timeout(&error) => continue,
            Err(_) => WsEvent::Closed(None),
        };
        let closed = matches!(event, WsEvent::Closed(_));
        if !report(event) || closed {
            return;
        }
    }
}

fn is_timeout(error: &tungstenite::Error) -> bool {
    matches!(error, tungstenite::Error::Io(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}

fn close(socket: &mut Socket, code: u16) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: "".into(),
    };
    let _ = socket.close(Some(frame));
    // Finish the close handshake, bounded by the read timeouts.
    for _ in 0..200 {
        match socket.read() {
            Ok(_) => {}
            Err(error) if is_timeout(&error) => {}
            Err(_) => return,
        }
    }
}

fn connect(url: &str, tls: Arc<rustls::ClientConfig>, timeout: Duration) -> Result<Socket, String> {
    let request = url.into_client_request().map_err(|e| e.to_string())?;
    let uri = request.uri();
    let secure = uri.scheme_str() == Some("wss");
    let host = uri
        .host()
        .ok_or_else(|| format!("no host in {url}"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let address = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolved to no address"))?;
    let tcp = TcpStream::connect_timeout(&address, timeout).map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let handle = tcp.try_clone().map_err(|e| e.to_string())?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    let connector = if secure {
        Connector::Rustls(tls)
    } else {
        Connector::Plain
    };
    let (socket, _response) =
        tungstenite::client_tls_with_config(request, tcp, Some(config), Some(connector))
            .map_err(|e| e.to_string())?;
    // From now on reads return every few milliseconds so writes are never held up.
    handle
        .set_read_timeout(Some(POLL_INTERVAL))
        .map_err(|e| e.to_string())?;
    Ok(socket)
}
