//! The codec against bytes real Go wrote (`switchctl/tests/fixtures/gob/`, made by
//! `tests/cfplugin/make-fixtures`): each value encodes to exactly Go's bytes, type definitions
//! and ids included, and Go's bytes decode to the value.

use super::{
    gob::{Decoder, Encoder, Type, Value},
    metadata::metadata_type,
    rpc::{organization_type, request_type, response_type, space_type},
};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gob/", $name, ".gob")).as_slice()
    };
}

fn metadata_value() -> Value {
    let version =
        |a, b, c| Value::structure(vec![("Major", Value::Int(a)), ("Minor", Value::Int(b)), ("Build", Value::Int(c))]);
    let usage = Value::structure(vec![
        ("Usage", Value::str("cf maintenance on APP")),
        ("Options", Value::Map(vec![(Value::str("json"), Value::str("JSON lines"))])),
    ]);
    let command = Value::structure(vec![
        ("Name", Value::str("maintenance")),
        ("HelpText", Value::str("Switch routes")),
        ("UsageDetails", usage),
    ]);
    Value::structure(vec![
        ("Name", Value::str("maintenance")),
        ("Version", version(1, 2, 300)),
        ("LibraryVersion", Value::structure(vec![])),
        ("MinCliVersion", version(7, 0, 0)),
        ("Commands", Value::Slice(vec![command])),
    ])
}

/// The value as the decoder gives it back: zero fields absent (Go leaves them out).
fn without_zeros(value: &Value) -> Value {
    match value {
        Value::Struct(fields) => Value::Struct(
            fields
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Int(0)))
                .map(|(n, v)| (n.clone(), without_zeros(v)))
                .collect(),
        ),
        Value::Slice(items) => Value::Slice(items.iter().map(without_zeros).collect()),
        other => other.clone(),
    }
}

fn organization_value() -> Value {
    let quota = Value::structure(vec![
        ("MemoryLimit", Value::Int(10240)),
        ("RoutesLimit", Value::Int(-1)),
        ("NonBasicServicesAllowed", Value::Bool(true)),
    ]);
    Value::structure(vec![(
        "OrganizationFields",
        Value::structure(vec![
            ("Guid", Value::str("5a1e0000-aaaa-4bbb-8ccc-000000000001")),
            ("Name", Value::str("org")),
            ("QuotaDefinition", quota),
        ]),
    )])
}

fn space_value() -> Value {
    Value::structure(vec![(
        "SpaceFields",
        Value::structure(vec![
            ("Guid", Value::str("5a1e0000-aaaa-4bbb-8ccc-000000000002")),
            ("Name", Value::str("dev")),
        ]),
    )])
}

fn cases() -> Vec<(&'static str, &'static [u8], Type, Value)> {
    vec![
        ("string_empty", fixture!("string_empty"), Type::String, Value::str("")),
        ("string", fixture!("string"), Type::String, Value::str("bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln")),
        ("bool_true", fixture!("bool_true"), Type::Bool, Value::Bool(true)),
        ("bool_false", fixture!("bool_false"), Type::Bool, Value::Bool(false)),
        ("int", fixture!("int"), Type::Int, Value::Int(-129)),
        ("uint", fixture!("uint"), Type::Uint, Value::Uint(256)),
        (
            "request",
            fixture!("request"),
            request_type(),
            Value::structure(vec![("ServiceMethod", Value::str("CliRpcCmd.AccessToken")), ("Seq", Value::Uint(300))]),
        ),
        (
            "response_error",
            fixture!("response_error"),
            response_type(),
            Value::structure(vec![
                ("ServiceMethod", Value::str("CliRpcCmd.AccessToken")),
                ("Error", Value::str("refresh failed")),
            ]),
        ),
        ("metadata", fixture!("metadata"), metadata_type(), metadata_value()),
        ("organization", fixture!("organization"), organization_type(), organization_value()),
        ("space", fixture!("space"), space_type(), space_value()),
        (
            "strings",
            fixture!("strings"),
            // Unnamed types sent at the top level have no name in their definition.
            Type::slice("", Type::String),
            Value::Slice(vec![Value::str("a"), Value::str(""), Value::str("b")]),
        ),
        (
            "map",
            fixture!("map"),
            Type::map("", Type::String, Type::String),
            Value::Map(vec![(Value::str("k"), Value::str("v"))]),
        ),
        ("empty_struct", fixture!("empty_struct"), Type::structure("", &[]), Value::structure(vec![])),
    ]
}

#[test]
fn each_value_encodes_to_gos_bytes() {
    for (name, go, ty, value) in cases() {
        let ours = Encoder::new().encode(&ty, &value).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ours, go, "{name}: our bytes differ from Go's");
    }
}

#[test]
fn gos_bytes_decode_to_each_value() {
    for (name, go, _, value) in cases() {
        let got = Decoder::new(go).read().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, without_zeros(&value), "{name}");
    }
}

#[test]
fn a_call_sends_each_definition_once_on_its_stream() {
    let header =
        Value::structure(vec![("ServiceMethod", Value::str("CliRpcCmd.SetPluginMetadata")), ("Seq", Value::Uint(0))]);
    let mut enc = Encoder::new();
    let mut ours = enc.encode(&request_type(), &header).expect("header");
    ours.extend(enc.encode(&metadata_type(), &metadata_value()).expect("metadata"));
    assert_eq!(ours, fixture!("call"));
    let mut dec = Decoder::new(fixture!("call"));
    assert_eq!(dec.read().expect("header").str_field("ServiceMethod"), "CliRpcCmd.SetPluginMetadata");
    assert_eq!(dec.read().expect("metadata"), without_zeros(&metadata_value()));
}
