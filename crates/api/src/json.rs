//! JSON helpers for the Mesos mapper rules: compact ASCII-only output (mesoshttp slices
//! records by characters), lenient integers (numbers or numeric strings), lenient
//! optional enums (unknown names are dropped), and decoding that names the failing field.

use crate::error::ApiError;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Serializes compactly and escapes every non-ASCII character as `\uXXXX`, so that a
/// record's byte length equals its character length.
pub fn to_ascii_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let raw = serde_json::to_vec(value).expect("serializing wire types cannot fail");
    if raw.is_ascii() {
        return raw;
    }
    let text = String::from_utf8(raw).expect("serde_json writes UTF-8");
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.into_bytes()
}

/// Decodes a request body, naming the failing field in the error.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Valid bodies are decoded without tracking the path of the current field; only an
    // invalid one is decoded again with it, to name the failing field.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("failed to parse JSON: {inner}"))
        } else if path == "." {
            ApiError::bad_request(format!("invalid request: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid field '{path}': {inner}"))
        }
    })?;
    de.end()
        .map_err(|err| ApiError::bad_request(format!("failed to parse JSON: {err}")))?;
    Ok(value)
}

// The lenient readers below are visitors rather than untagged enums: an untagged enum
// first buffers each value into an intermediate form, and every resource amount an
// agent reports goes through one.

/// Accepts an unsigned integer given as a JSON number or a numeric string.
pub fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Lenient;
    impl Visitor<'_> for Lenient {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an unsigned integer or a numeric string")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_f64<E: de::Error>(self, f: f64) -> Result<u64, E> {
            if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 {
                return Ok(f as u64);
            }
            Err(E::custom(format!("expected an unsigned integer, got {f}")))
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
            s.trim()
                .parse()
                .map_err(|_| E::custom(format!("expected an unsigned integer, got {s:?}")))
        }
    }
    d.deserialize_any(Lenient)
}

/// Accepts a signed integer given as a JSON number or a numeric string (int64 fields
/// such as `nanoseconds`).
pub fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Lenient;
    impl Visitor<'_> for Lenient {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer or a numeric string")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            match i64::try_from(v) {
                Ok(v) => Ok(v),
                Err(_) => self.visit_f64(v as f64),
            }
        }
        fn visit_f64<E: de::Error>(self, f: f64) -> Result<i64, E> {
            if f.fract() == 0.0 && f >= i64::MIN as f64 && f <= i64::MAX as f64 {
                return Ok(f as i64);
            }
            Err(E::custom(format!("expected an integer, got {f}")))
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<i64, E> {
            s.trim()
                .parse()
                .map_err(|_| E::custom(format!("expected an integer, got {s:?}")))
        }
    }
    d.deserialize_any(Lenient)
}

/// Accepts a double given as a number, a numeric string, or `"Infinity"`.
pub fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct Lenient;
    impl Visitor<'_> for Lenient {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number or a numeric string")
        }
        fn visit_f64<E: de::Error>(self, f: f64) -> Result<f64, E> {
            Ok(f)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<f64, E> {
            match s.trim() {
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => other
                    .parse()
                    .map_err(|_| E::custom(format!("expected a number, got {s:?}"))),
            }
        }
    }
    d.deserialize_any(Lenient)
}

/// Like [`lenient_f64`] for optional fields (`null` means unset).
pub fn lenient_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "lenient_f64")] f64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// An optional enum given by name: an unknown name is dropped silently, as Mesos does
/// for optional fields.
pub fn lenient_enum<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let raw = Option::<serde_json::Value>::deserialize(d)?;
    Ok(raw.and_then(|v| serde_json::from_value(v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_non_ascii() {
        let out = to_ascii_json(&serde_json::json!({"name": "é😀"}));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"name":"\u00e9\ud83d\ude00"}"#
        );
    }

    #[test]
    fn escaped_output_round_trips() {
        let value = serde_json::json!({"a": "ünïcödé\n", "b": [1, 2]});
        let back: serde_json::Value = serde_json::from_slice(&to_ascii_json(&value)).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn lenient_numbers() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Nums {
            #[serde(deserialize_with = "lenient_u64")]
            u: u64,
            #[serde(deserialize_with = "lenient_i64")]
            i: i64,
            #[serde(deserialize_with = "lenient_f64")]
            f: f64,
        }
        let check = |json: &str, want: Option<(u64, i64, f64)>| {
            let got = serde_json::from_str::<Nums>(json)
                .ok()
                .map(|n| (n.u, n.i, n.f));
            assert_eq!(got, want, "{json}");
        };
        check(r#"{"u":1,"i":-2,"f":0.5}"#, Some((1, -2, 0.5)));
        check(r#"{"u":"7","i":" -3 ","f":"2.5"}"#, Some((7, -3, 2.5)));
        check(r#"{"u":3.0,"i":4.0,"f":1}"#, Some((3, 4, 1.0)));
        check(
            r#"{"u":1,"i":1,"f":"Infinity"}"#,
            Some((1, 1, f64::INFINITY)),
        );
        check(r#"{"u":-1,"i":1,"f":1}"#, None);
        check(r#"{"u":1.5,"i":1,"f":1}"#, None);
        check(r#"{"u":1,"i":1.5,"f":1}"#, None);
        check(r#"{"u":1,"i":1,"f":"x"}"#, None);
        check(r#"{"u":true,"i":1,"f":1}"#, None);
        check(r#"{"u":1,"i":1,"f":null}"#, None);
    }

    #[test]
    fn decode_names_the_field() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            count: u32,
        }
        let err = decode::<Outer>(br#"{"inner":{"count":"x"}}"#).unwrap_err();
        assert!(err.message.contains("inner.count"), "{}", err.message);
        let err = decode::<Outer>(br#"{"inner":{}}"#).unwrap_err();
        assert!(err.message.contains("count"), "{}", err.message);
        let err = decode::<Outer>(b"{not json").unwrap_err();
        assert!(err.message.contains("parse"), "{}", err.message);
    }
}
