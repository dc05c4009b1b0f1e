//! Opening the voice websocket, over TLS when the URL says `wss://`.

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// The websocket type used by the driver.
pub(crate) type VoiceSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// DAVE proposals and welcomes grow with call size; stay well above what Discord sends.
const MAX_MESSAGE_SIZE: usize = 16 << 20;
/// Voice gateway messages are small: a read buffer of a few KiB instead of tungstenite's
/// 128 KiB default, which it keeps per connection and zeroes on every read (larger messages
/// still arrive whole, read in several steps).
const READ_BUFFER_SIZE: usize = 4 << 10;

/// Opens the websocket at `url` (`ws://` or `wss://`).
pub(crate) async fn open(
    url: String,
    connector: Connector,
) -> Result<VoiceSocket, tokio_tungstenite::tungstenite::Error> {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    let (socket, _response) =
        tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, Some(connector))
            .await?;
    Ok(socket)
}
