//! The rewrite itself: a `:authority` value as h2 accepts it.

/// `value` as an `:authority` h2 accepts: `scheme://host:port[/...]` becomes `host:port`; any
/// other value stays. `None`: `scheme://` with no host, so the field is better left out.
pub(super) fn authority_value(value: &[u8]) -> Option<&[u8]> {
    let Some(sep) = value.windows(3).position(|w| w == b"://") else {
        return Some(value);
    };
    let scheme = &value[..sep];
    let valid_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    if !valid_scheme {
        return Some(value);
    }
    let rest = &value[sep + 3..];
    let end = rest
        .iter()
        .position(|&c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    (end > 0).then_some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::h2shim::hpack::Decoder;
    use crate::server::h2shim::test_support::*;

    #[test]
    fn authority_values() {
        let cases: [(&str, Option<&str>); 10] = [
            ("http://127.0.0.1:2379", Some("127.0.0.1:2379")),
            ("https://localhost:2379/", Some("localhost:2379")),
            ("http://h:1/path?q#f", Some("h:1")),
            ("http://h:1?q", Some("h:1")),
            ("http://[::1]:2379", Some("[::1]:2379")),
            ("127.0.0.1:2379", Some("127.0.0.1:2379")),
            ("", Some("")),
            ("1http://x:1", Some("1http://x:1")),
            ("unix:///tmp/sock", None),
            ("http://", None),
        ];
        for (value, want) in cases {
            assert_eq!(
                authority_value(value.as_bytes()),
                want.map(str::as_bytes),
                "{value}"
            );
        }
        // A `:authority` with no host is left out of the block.
        let mut dec = Decoder::new(4096);
        let mut b = Vec::new();
        enc_indexed(&mut b, 3);
        enc_literal(
            &mut b,
            Lit::Incremental,
            Name::Literal(":authority"),
            "unix:///tmp/sock",
            true,
        );
        enc_indexed(&mut b, 62);
        assert_eq!(decode(&mut dec, &b), fields(&[(":method", "POST")]));
    }
}
