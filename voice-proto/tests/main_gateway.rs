//! The main-gateway side: op 4 (C4), the two dispatches (C2, C3) and the voice URL (C1).

use serde_json::Value;
use voice_proto::gateway::{
    secure_voice_gateway_url, voice_gateway_url, GatewayError, VoiceServerDispatch,
    VoiceStateDispatch, VoiceStateUpdate,
};
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::secret::Token;

// ---- op 4 ----

#[test]
fn join_is_exact() {
    let join = VoiceStateUpdate::join(
        GuildId(41771983423143937),
        ChannelId(127121515262115840),
        false,
        true,
    );
    assert_eq!(
        join.to_gateway_json(),
        r#"{"op":4,"d":{"guild_id":"41771983423143937","channel_id":"127121515262115840","self_mute":false,"self_deaf":true}}"#
    );
    // Serialize of the struct itself is the `d` object.
    assert_eq!(
        serde_json::to_string(&join).unwrap(),
        r#"{"guild_id":"41771983423143937","channel_id":"127121515262115840","self_mute":false,"self_deaf":true}"#
    );
}

#[test]
fn leave_sends_null_channel() {
    let leave = VoiceStateUpdate::leave(GuildId(41771983423143937));
    let text = leave.to_gateway_json();
    assert_eq!(
        text,
        r#"{"op":4,"d":{"guild_id":"41771983423143937","channel_id":null,"self_mute":false,"self_deaf":false}}"#
    );
    // All four fields are present, channel_id explicitly null.
    let value: Value = serde_json::from_str(&text).unwrap();
    let d = value["d"].as_object().unwrap();
    assert_eq!(d.len(), 4);
    assert_eq!(d["channel_id"], Value::Null);
}

#[test]
fn op4_json_matches_serde() {
    for update in [
        VoiceStateUpdate::join(GuildId(1), ChannelId(u64::MAX), true, false),
        VoiceStateUpdate::leave(GuildId(u64::MAX)),
    ] {
        let whole: Value = serde_json::from_str(&update.to_gateway_json()).unwrap();
        assert_eq!(whole["op"], 4);
        assert_eq!(whole["d"], serde_json::to_value(update).unwrap());
        let back: VoiceStateUpdate = serde_json::from_value(whole["d"].clone()).unwrap();
        assert_eq!(back, update);
    }
}

// ---- VOICE_STATE_UPDATE ----

#[test]
fn voice_state_with_string_ids_and_extra_fields() {
    let d = r#"{
        "member": {"user": {"id": "80351110224678912", "username": "bot"}, "roles": [], "deaf": false},
        "user_id": "80351110224678912",
        "suppress": false,
        "session_id": "90326bd25d71d39b9ef95b299e3872ff",
        "self_video": false,
        "self_mute": false,
        "self_deaf": false,
        "request_to_speak_timestamp": null,
        "mute": false,
        "guild_id": "41771983423143937",
        "deaf": false,
        "channel_id": "157733188964188161"
    }"#;
    let state = VoiceStateDispatch::from_dispatch_json(d).unwrap();
    assert_eq!(
        state,
        VoiceStateDispatch {
            guild_id: Some(GuildId(41771983423143937)),
            channel_id: Some(ChannelId(157733188964188161)),
            user_id: UserId(80351110224678912),
            session_id: "90326bd25d71d39b9ef95b299e3872ff".into(),
        }
    );
}

#[test]
fn voice_state_with_numeric_ids_null_channel_and_no_guild() {
    let left = VoiceStateDispatch::from_dispatch_json(
        r#"{"guild_id":41771983423143937,"channel_id":null,"user_id":80351110224678912,"session_id":"s"}"#,
    )
    .unwrap();
    assert_eq!(left.guild_id, Some(GuildId(41771983423143937)));
    assert_eq!(left.channel_id, None);
    assert_eq!(left.user_id, UserId(80351110224678912));

    let dm = VoiceStateDispatch::from_dispatch_json(
        r#"{"channel_id":"5","user_id":"6","session_id":"s"}"#,
    )
    .unwrap();
    assert_eq!(dm.guild_id, None);
    assert_eq!(dm.channel_id, Some(ChannelId(5)));
}

#[test]
fn voice_state_whole_dispatch_is_accepted() {
    let whole = r#"{"op":0,"s":42,"t":"VOICE_STATE_UPDATE","d":{"guild_id":"1","channel_id":"2","user_id":"3","session_id":"abc"}}"#;
    let state = VoiceStateDispatch::from_dispatch_json(whole).unwrap();
    assert_eq!(state.session_id, "abc");
    assert_eq!(
        VoiceServerDispatch::from_dispatch_json(whole),
        Err(GatewayError::WrongEvent {
            expected: "VOICE_SERVER_UPDATE",
            found: "VOICE_STATE_UPDATE".into()
        })
    );
}

#[test]
fn voice_state_errors() {
    let missing =
        VoiceStateDispatch::from_dispatch_json(r#"{"guild_id":"1","user_id":"3"}"#).unwrap_err();
    assert!(
        missing.to_string().contains("missing field `session_id`"),
        "{missing}"
    );
    let bad_id =
        VoiceStateDispatch::from_dispatch_json(r#"{"user_id":"not-a-number","session_id":"s"}"#)
            .unwrap_err();
    assert!(bad_id.to_string().contains("snowflake"), "{bad_id}");
    assert!(matches!(
        VoiceStateDispatch::from_dispatch_json("not json"),
        Err(GatewayError::InvalidDispatch {
            event: "VOICE_STATE_UPDATE",
            ..
        })
    ));
    let array = VoiceStateDispatch::from_dispatch_json("[]").unwrap_err();
    assert!(array
        .to_string()
        .contains("expected a JSON object, found an array"));
}

// ---- VOICE_SERVER_UPDATE ----

#[test]
fn voice_server_update() {
    let server = VoiceServerDispatch::from_dispatch_json(
        r#"{"token":"my_token","guild_id":"41771983423143937","endpoint":"sweetwater-12345.discord.media:2048"}"#,
    )
    .unwrap();
    assert_eq!(server.token, Token::new("my_token"));
    assert_eq!(server.guild_id, GuildId(41771983423143937));
    assert_eq!(
        server.endpoint.as_deref(),
        Some("sweetwater-12345.discord.media:2048")
    );
    assert_eq!(
        server.gateway_url(),
        Some(Ok("wss://sweetwater-12345.discord.media:2048/?v=8".into()))
    );
    assert!(!format!("{server:?}").contains("my_token"));
}

#[test]
fn voice_server_update_null_or_absent_endpoint() {
    // C2: a null endpoint means "disconnect and wait".
    for d in [
        r#"{"token":"t","guild_id":41771983423143937,"endpoint":null}"#,
        r#"{"token":"t","guild_id":"41771983423143937","extra":{"x":1}}"#,
    ] {
        let server = VoiceServerDispatch::from_dispatch_json(d).unwrap();
        assert_eq!(server.endpoint, None);
        assert_eq!(server.gateway_url(), None);
    }
}

#[test]
fn voice_server_update_never_echoes_the_token() {
    let error = VoiceServerDispatch::from_dispatch_json(
        r#"{"token":123456789123,"guild_id":"1","endpoint":null}"#,
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("field `token`: expected a string, found a number"));
    assert!(!message.contains("123456789123"));
    let missing = VoiceServerDispatch::from_dispatch_json(r#"{"guild_id":"1"}"#).unwrap_err();
    assert!(missing.to_string().contains("missing field `token`"));
}

// ---- URL (C1) ----

#[test]
fn url_from_host_and_port_keeps_the_port() {
    for (endpoint, url) in [
        (
            "sweetwater-12345.discord.media:2048",
            "wss://sweetwater-12345.discord.media:2048/?v=8",
        ),
        (
            "c-ewr12-283a171b.discord.media:2096",
            "wss://c-ewr12-283a171b.discord.media:2096/?v=8",
        ),
        (
            "finland14081.discord.media:443",
            "wss://finland14081.discord.media:443/?v=8",
        ),
        ("us-east1.discord.gg", "wss://us-east1.discord.gg/?v=8"),
        ("127.0.0.1:8443", "wss://127.0.0.1:8443/?v=8"),
        ("[::1]:2096", "wss://[::1]:2096/?v=8"),
        ("[2001:db8::1]", "wss://[2001:db8::1]/?v=8"),
    ] {
        assert_eq!(
            voice_gateway_url(endpoint).as_deref(),
            Ok(url),
            "{endpoint}"
        );
    }
}

#[test]
fn url_with_scheme() {
    for (endpoint, url) in [
        // A leading wss:// is stripped and the rest treated as host:port.
        (
            "wss://finland14081.discord.media:443",
            "wss://finland14081.discord.media:443/?v=8",
        ),
        ("WSS://host:2048", "wss://host:2048/?v=8"),
        ("wss://host:2048/", "wss://host:2048/?v=8"),
        // Loopback test servers.
        ("ws://127.0.0.1:9000", "ws://127.0.0.1:9000/?v=8"),
        // A full URL with a path or query is used as given, v=8 added when there is no v=.
        ("ws://127.0.0.1:9000/voice", "ws://127.0.0.1:9000/voice?v=8"),
        ("wss://host:1/?v=8", "wss://host:1/?v=8"),
        ("wss://host:1?v=8", "wss://host:1?v=8"),
        ("wss://host:1/?v=4", "wss://host:1/?v=4"),
        ("wss://host:1/?x=1&v=8", "wss://host:1/?x=1&v=8"),
        ("wss://host:1/?x=1", "wss://host:1/?x=1&v=8"),
        ("wss://host:1/?x=1&", "wss://host:1/?x=1&v=8"),
        ("wss://host:1/path?", "wss://host:1/path?v=8"),
        ("wss://host:1/?vv=3", "wss://host:1/?vv=3&v=8"),
        ("ws://[::1]:9000/a/b", "ws://[::1]:9000/a/b?v=8"),
    ] {
        assert_eq!(
            voice_gateway_url(endpoint).as_deref(),
            Ok(url),
            "{endpoint}"
        );
    }
}

#[test]
fn url_rejects_garbage() {
    assert_eq!(voice_gateway_url(""), Err(GatewayError::EmptyEndpoint));
    assert_eq!(voice_gateway_url("   "), Err(GatewayError::EmptyEndpoint));
    assert_eq!(voice_gateway_url("\t\n"), Err(GatewayError::EmptyEndpoint));
    for endpoint in [
        " host:443",
        "host:443 ",
        "ho st:443",
        "host:443\n",
        "host\u{0}:443",
        "host\u{7f}",
        "https://host:443",
        "http://host",
        "ftp://host",
        "://host",
        "wss://",
        "wss:///path",
        ":443",
        "host:",
        "host:0",
        "host:65536",
        "host:99999",
        "host:+443",
        "host:44a",
        "host:443:1",
        "user@host:443",
        "host:443#frag",
        "hôst:443",
        "host/..\\x",
        "[::1",
        "[]:443",
        "[::1]x",
        "[::1]:",
        "[fe80::1%eth0]:443",
    ] {
        let error = voice_gateway_url(endpoint).expect_err(endpoint);
        match &error {
            GatewayError::InvalidEndpoint {
                endpoint: shown, ..
            } => assert_eq!(shown, endpoint),
            other => panic!("{endpoint:?}: unexpected {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.starts_with("expected a voice server endpoint like"),
            "{message}"
        );
        // Control characters are shown escaped.
        assert!(
            !message.contains('\n') && !message.contains('\0'),
            "{message:?}"
        );
    }
}

/// Issue 14 row 8: an endpoint from Discord is reached over TLS only.
#[test]
fn endpoints_from_discord_are_wss_only() {
    for (endpoint, url) in [
        ("host:2048", "wss://host:2048/?v=8"),
        ("wss://host:2048", "wss://host:2048/?v=8"),
        ("WSS://host", "wss://host/?v=8"),
    ] {
        assert_eq!(secure_voice_gateway_url(endpoint).as_deref(), Ok(url));
    }
    for endpoint in [
        "ws://host:2048",
        "WS://127.0.0.1:9000",
        "ws://host/voice?v=8",
    ] {
        let error = secure_voice_gateway_url(endpoint).expect_err(endpoint);
        assert_eq!(
            error,
            GatewayError::InsecureEndpoint {
                endpoint: endpoint.to_owned()
            }
        );
        let message = error.to_string();
        assert!(
            message.starts_with("expected a voice server endpoint like")
                && message.contains("token in clear"),
            "{message}"
        );
    }
    // Malformed endpoints keep their own error.
    assert_eq!(
        secure_voice_gateway_url(""),
        Err(GatewayError::EmptyEndpoint)
    );
    let dispatch = VoiceServerDispatch {
        token: Token::new("t"),
        guild_id: GuildId(1),
        endpoint: Some("ws://plain:1".to_owned()),
    };
    assert!(matches!(
        dispatch.gateway_url(),
        Some(Err(GatewayError::InsecureEndpoint { .. }))
    ));
}
