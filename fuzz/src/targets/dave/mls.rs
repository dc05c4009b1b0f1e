//! Just enough of the MLS wire format (RFC 9420) to check the structure of what we send (op 26 is
//! one bare KeyPackage, op 28 one PublicMessage commit followed by an optional bare Welcome) and to
//! split op 28 the way the gateway does, without an MLS implementation in the harness.

/// A cursor over TLS-encoded bytes.
struct Tls<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Tls<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    /// A `<V>` vector: QUIC-style variable-length length, then the bytes.
    fn vector(&mut self) -> Option<&'a [u8]> {
        let first = self.u8()?;
        let len = match first >> 6 {
            0 => usize::from(first & 0x3F),
            1 => (usize::from(first & 0x3F) << 8) | usize::from(self.u8()?),
            2 => {
                let rest = self.take(3)?;
                (usize::from(first & 0x3F) << 24)
                    | (usize::from(rest[0]) << 16)
                    | (usize::from(rest[1]) << 8)
                    | usize::from(rest[2])
            }
            _ => return None,
        };
        self.take(len)
    }
    fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }
}

fn credential(t: &mut Tls<'_>) -> Option<()> {
    match t.u16()? {
        // basic: identity<V>; x509: certificates<V>
        1 | 2 => t.vector().map(|_| ()),
        _ => None,
    }
}

fn leaf_node(t: &mut Tls<'_>) -> Option<()> {
    t.vector()?; // encryption_key
    t.vector()?; // signature_key
    credential(t)?;
    for _ in 0..5 {
        t.vector()?; // capabilities: versions, cipher suites, extensions, proposals, credentials
    }
    match t.u8()? {
        1 => t.skip(16)?, // key_package: lifetime
        2 => {}           // update
        3 => {
            t.vector()?; // commit: parent_hash
        }
        _ => return None,
    }
    t.vector()?; // extensions
    t.vector()?; // signature
    Some(())
}

fn key_package_fields(t: &mut Tls<'_>) -> Option<()> {
    (t.u16()? == 1 && t.u16()? == 2).then_some(())?; // mls10, cipher suite 2
    t.vector()?; // init_key
    leaf_node(t)?;
    t.vector()?; // extensions
    t.vector()?; // signature
    Some(())
}

/// Whether `bytes` is exactly one KeyPackage of MLS 1.0 with cipher suite 2 (op 26).
pub fn key_package(bytes: &[u8]) -> bool {
    let mut t = Tls {
        data: bytes,
        pos: 0,
    };
    key_package_fields(&mut t).is_some() && t.at_end()
}

/// The length of the PublicMessage commit at the start of `bytes`.
fn public_commit(bytes: &[u8]) -> Option<usize> {
    let mut t = Tls {
        data: bytes,
        pos: 0,
    };
    (t.u16()? == 1 && t.u16()? == 1).then_some(())?; // mls10, public message
    t.vector()?; // group_id
    t.skip(8)?; // epoch
    let sender = t.u8()?;
    match sender {
        1 | 2 => t.skip(4)?, // member leaf index, external sender index
        3 | 4 => {}
        _ => return None,
    }
    t.vector()?; // authenticated_data
    (t.u8()? == 3).then_some(())?; // commit
    t.vector()?; // proposals
    match t.u8()? {
        0 => {}
        1 => {
            leaf_node(&mut t)?;
            t.vector()?; // nodes
        }
        _ => return None,
    }
    t.vector()?; // signature
    t.vector()?; // confirmation_tag
    if sender == 1 {
        t.vector()?; // membership_tag
    }
    Some(t.pos)
}

fn welcome_fields(t: &mut Tls<'_>) -> Option<()> {
    (t.u16()? == 2).then_some(())?; // cipher suite
    t.vector()?; // secrets
    t.vector()?; // encrypted_group_info
    Some(())
}

/// Whether `bytes` is exactly one bare Welcome with cipher suite 2.
pub fn welcome(bytes: &[u8]) -> bool {
    let mut t = Tls {
        data: bytes,
        pos: 0,
    };
    welcome_fields(&mut t).is_some() && t.at_end()
}

/// Splits an op 28 payload `MLSMessage commit ‖ [Welcome]`; `None` when it is not one.
pub fn split_commit_welcome(payload: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let at = public_commit(payload)?;
    let (commit, rest) = payload.split_at(at);
    if rest.is_empty() {
        return Some((commit, None));
    }
    welcome(rest).then_some((commit, Some(rest)))
}
