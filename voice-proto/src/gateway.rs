//! The main-gateway side of a voice connection (docs/protocol.md 1.1, 1.2).
//!
//! The main gateway is the application's: this module only builds the op 4 "Update Voice State"
//! command, parses the two dispatches it answers with (`VOICE_STATE_UPDATE`, `VOICE_SERVER_UPDATE`)
//! and turns the endpoint into the voice websocket URL.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::id::{ChannelId, GuildId, UserId};
use crate::secret::Token;

/// The voice gateway version this crate speaks (buffered resume, `seq_ack`).
pub const VOICE_GATEWAY_VERSION: u8 = 8;

/// Main-gateway op 4 "Update Voice State" (C4). Its `Serialize` output is the `d` object; use
/// [`VoiceStateUpdate::to_gateway_json`] for the whole command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VoiceStateUpdate {
    /// The guild.
    pub guild_id: GuildId,
    /// The voice channel to join, `None` (sent as `null`) to leave.
    pub channel_id: Option<ChannelId>,
    /// Whether the bot mutes itself.
    pub self_mute: bool,
    /// Whether the bot deafens itself.
    pub self_deaf: bool,
}

impl VoiceStateUpdate {
    /// Join (or move to) `channel` in `guild`.
    pub const fn join(
        guild: GuildId,
        channel: ChannelId,
        self_mute: bool,
        self_deaf: bool,
    ) -> Self {
        Self {
            guild_id: guild,
            channel_id: Some(channel),
            self_mute,
            self_deaf,
        }
    }

    /// Leave voice in `guild` (`channel_id: null`).
    pub const fn leave(guild: GuildId) -> Self {
        Self {
            guild_id: guild,
            channel_id: None,
            self_mute: false,
            self_deaf: false,
        }
    }

    /// The complete main-gateway command, e.g.
    /// `{"op":4,"d":{"guild_id":"1","channel_id":"2","self_mute":false,"self_deaf":true}}`.
    pub fn to_gateway_json(&self) -> String {
        // Written by hand: every part is a decimal number, `null` or a boolean, so nothing needs
        // escaping and nothing can fail.
        let channel = match self.channel_id {
            Some(channel) => format!("\"{channel}\""),
            None => "null".to_owned(),
        };
        format!(
            "{{\"op\":4,\"d\":{{\"guild_id\":\"{}\",\"channel_id\":{channel},\"self_mute\":{},\"self_deaf\":{}}}}}",
            self.guild_id, self.self_mute, self.self_deaf
        )
    }
}

/// The fields of a `VOICE_STATE_UPDATE` dispatch a voice connection needs; all others (`member`,
/// `deaf`, `mute`, `request_to_speak_timestamp`, ...) are ignored.
///
/// Keep the one whose `user_id` is the bot and whose `guild_id` matches (C3); `channel_id: None`
/// means the bot is no longer in voice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VoiceStateDispatch {
    /// The guild, absent for DM calls.
    #[serde(default)]
    pub guild_id: Option<GuildId>,
    /// The channel now joined; also the DAVE MLS group id. `None`: left voice.
    #[serde(default)]
    pub channel_id: Option<ChannelId>,
    /// Whose voice state this is.
    pub user_id: UserId,
    /// The session id for Identify / Resume.
    pub session_id: String,
}

impl VoiceStateDispatch {
    /// The dispatch name on the main gateway.
    pub const EVENT: &'static str = "VOICE_STATE_UPDATE";

    /// Parses the dispatch's `d` object (a whole `{"op":0,"t":"VOICE_STATE_UPDATE","d":{...}}`
    /// dispatch is accepted too).
    pub fn from_dispatch_json(d: &str) -> Result<Self, GatewayError> {
        parse_dispatch(d, Self::EVENT, false)
    }
}

/// A `VOICE_SERVER_UPDATE` dispatch. `Debug` redacts the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceServerDispatch {
    /// The voice token for Identify.
    pub token: Token,
    /// The guild.
    pub guild_id: GuildId,
    /// `host:port` of the voice server, or `None` while a new one is being allocated: then
    /// disconnect and wait for a later dispatch with an endpoint (C2).
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl VoiceServerDispatch {
    /// The dispatch name on the main gateway.
    pub const EVENT: &'static str = "VOICE_SERVER_UPDATE";

    /// Parses the dispatch's `d` object (a whole `{"op":0,"t":"VOICE_SERVER_UPDATE","d":{...}}`
    /// dispatch is accepted too).
    pub fn from_dispatch_json(d: &str) -> Result<Self, GatewayError> {
        parse_dispatch(d, Self::EVENT, true)
    }

    /// The voice websocket URL for this dispatch's endpoint, or `None` when the endpoint is null.
    /// Always `wss://`: a `ws://` endpoint is refused ([`secure_voice_gateway_url`]).
    pub fn gateway_url(&self) -> Option<Result<String, GatewayError>> {
        self.endpoint.as_deref().map(secure_voice_gateway_url)
    }
}

/// Why a main-gateway payload or a voice endpoint was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The dispatch JSON does not have the expected shape.
    #[error("invalid {event} dispatch: {detail}")]
    InvalidDispatch {
        /// `VOICE_STATE_UPDATE` or `VOICE_SERVER_UPDATE`.
        event: &'static str,
        /// What was expected and what arrived (never the token).
        detail: String,
    },
    /// A whole dispatch for another event was passed.
    #[error("expected a {expected} dispatch, found a {found:?} dispatch")]
    WrongEvent {
        /// The event that was expected.
        expected: &'static str,
        /// The `t` that arrived.
        found: String,
    },
    /// The endpoint is empty or only whitespace.
    #[error("expected a voice server endpoint like \"host:port\", found an empty string")]
    EmptyEndpoint,
    /// A `VOICE_SERVER_UPDATE` endpoint asked for plain-text `ws://`: Identify would carry the
    /// token in clear. Only an explicit URL override may point at `ws://` (a loopback server).
    #[error(
        "expected a voice server endpoint like \"host:port\" (always reached over wss://), found \
         {endpoint:?}: a ws:// endpoint would send the token in clear"
    )]
    InsecureEndpoint {
        /// The endpoint as received.
        endpoint: String,
    },
    /// The endpoint cannot be turned into a websocket URL.
    #[error("expected a voice server endpoint like \"host:port\", found {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as received (shown escaped).
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn parse_dispatch<T>(json: &str, event: &'static str, has_token: bool) -> Result<T, GatewayError>
where
    T: for<'de> Deserialize<'de>,
{
    let invalid = |detail: String| GatewayError::InvalidDispatch { event, detail };
    // serde_json's syntax errors name a position, never the input.
    let mut value: Value = serde_json::from_str(json)
        .map_err(|error| invalid(format!("expected JSON, but it is not valid JSON: {error}")))?;
    // A whole dispatch has `t` and an object `d`; a voice state / server object has neither.
    if let Value::Object(map) = &mut value {
        if let (Some(t), Some(Value::Object(_))) = (map.get("t"), map.get("d")) {
            if t.as_str() != Some(event) {
                return Err(GatewayError::WrongEvent {
                    expected: event,
                    found: t.as_str().map_or_else(|| t.to_string(), str::to_owned),
                });
            }
            if let Some(d) = map.remove("d") {
                value = d;
            }
        }
    }
    let Value::Object(map) = &value else {
        return Err(invalid(format!(
            "expected a JSON object, found {}",
            describe(&value)
        )));
    };
    // serde would quote a non-string token in its error message.
    if has_token {
        if let Some(token) = map.get("token").filter(|token| !token.is_string()) {
            return Err(invalid(format!(
                "field `token`: expected a string, found {}",
                describe(token)
            )));
        }
    }
    T::deserialize(&value).map_err(|error| invalid(error.to_string()))
}

/// A JSON value's type and size, never its content.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The main-gateway shard that carries `guild_id`'s events and must carry its op 4, out of
/// `shard_count` shards: `(guild_id >> 22) % shard_count`, Discord's sharding formula. A
/// `shard_count` of 0 is taken as 1.
///
/// ```
/// use voice_proto::gateway::shard_for_guild;
/// use voice_proto::id::GuildId;
/// assert_eq!(shard_for_guild(GuildId(41771983423143937), 1), 0);
/// assert_eq!(shard_for_guild(GuildId(41771983423143937), 16), 6);
/// ```
pub fn shard_for_guild(guild_id: GuildId, shard_count: u32) -> u32 {
    let count = u64::from(shard_count.max(1));
    // The remainder is below `shard_count`, a u32.
    u32::try_from((guild_id.0 >> 22) % count).unwrap_or(0)
}

/// The voice websocket URL for a `VOICE_SERVER_UPDATE` endpoint (C1).
///
/// - `host:port` (the usual form; the port is kept, Discord uses non-443 ports) becomes
///   `wss://host:port/?v=8`; a bare `host` becomes `wss://host/?v=8`.
/// - A leading `wss://` or `ws://` is kept as the scheme and the rest treated the same, so
///   `wss://host:port` also becomes `wss://host:port/?v=8` and a loopback `ws://127.0.0.1:9000`
///   becomes `ws://127.0.0.1:9000/?v=8`.
/// - A URL that already has a path or query is used as given, with `v=8` appended (`?v=8` or
///   `&v=8`) unless it already has a `v=` parameter (an explicit version, e.g. in tests, wins).
///
/// Rejected: empty input, whitespace or control characters anywhere, a scheme other than `ws`/`wss`,
/// user info, a fragment, an empty or non-ASCII host, a port that is not a number in 1..=65535, and
/// characters a URL path or query cannot hold.
pub fn voice_gateway_url(endpoint: &str) -> Result<String, GatewayError> {
    let invalid = |reason| GatewayError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    if endpoint.trim().is_empty() {
        return Err(GatewayError::EmptyEndpoint);
    }
    if endpoint
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid("it contains whitespace or control characters"));
    }
    if endpoint.contains('#') {
        return Err(invalid("it contains a fragment ('#')"));
    }
    let (scheme, rest) = match endpoint.split_once("://") {
        None => ("wss", endpoint),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("wss") => ("wss", rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => ("ws", rest),
        Some(_) => {
            return Err(invalid(
                "only ws:// and wss:// URLs can reach a voice server",
            ))
        }
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    check_authority(authority).map_err(invalid)?;
    // RFC 3986 path/query characters (percent-encoding included); anything else is not a URL.
    if !tail.chars().all(|c| {
        c.is_ascii_graphic() && !matches!(c, '\\' | '"' | '<' | '>' | '^' | '`' | '{' | '|' | '}')
    }) {
        return Err(invalid(
            "the path or query contains characters not allowed in a URL",
        ));
    }

    let version = format!("v={VOICE_GATEWAY_VERSION}");
    let url = match tail.split_once('?') {
        // No path, or a path without a query: add the query (and the `/` before it if missing).
        None => {
            let path = if tail.is_empty() { "/" } else { tail };
            format!("{scheme}://{authority}{path}?{version}")
        }
        Some((_, query)) => {
            let has_version = query.split('&').any(|param| param.starts_with("v="));
            let separator = if has_version || query.is_empty() || query.ends_with('&') {
                ""
            } else {
                "&"
            };
            let added = if has_version { "" } else { version.as_str() };
            format!("{scheme}://{authority}{tail}{separator}{added}")
        }
    };
    Ok(url)
}

/// The voice websocket URL for an endpoint that came from Discord (`VOICE_SERVER_UPDATE`):
/// [`voice_gateway_url`], but always `wss://`. An endpoint that names `ws://` is refused with
/// [`GatewayError::InsecureEndpoint`]: the Identify sent on it carries the token, which must
/// never travel in clear. (An explicit URL override, e.g. a loopback test server, goes through
/// [`voice_gateway_url`] and may say `ws://`.)
pub fn secure_voice_gateway_url(endpoint: &str) -> Result<String, GatewayError> {
    let url = voice_gateway_url(endpoint)?;
    if url.starts_with("wss://") {
        Ok(url)
    } else {
        Err(GatewayError::InsecureEndpoint {
            endpoint: endpoint.to_owned(),
        })
    }
}

/// Checks `host[:port]` or `[ipv6][:port]`.
fn check_authority(authority: &str) -> Result<(), &'static str> {
    if authority.is_empty() {
        return Err("the host is empty");
    }
    if authority.contains('@') {
        return Err("user info ('@') is not allowed");
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return Err("an IPv6 address is missing its closing ']'");
        };
        if address.is_empty()
            || !address
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("the bracketed IPv6 address is malformed");
        }
        match after {
            "" => (address, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (address, Some(port)),
                None => return Err("unexpected characters after the IPv6 address"),
            },
        }
    } else {
        match authority.split_once(':') {
            None => (authority, None),
            Some((host, port)) => (host, Some(port)),
        }
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    if !authority.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err("the host may only contain ASCII letters, digits, '-', '.' and '_'");
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(port.parse::<u16>(), Ok(1..));
        if !valid {
            return Err("the port must be a number in 1..=65535");
        }
    }
    Ok(())
}
