//! Rust → Go → Rust: every type the plugin encodes (`Request`, `string`, `PluginMetadata`) or
//! decodes (`Response`, `string`, `bool`, `Organization`, `Space`) is written by our encoder,
//! decoded into the cf CLI's own Go types and encoded again by Go's `encoding/gob`
//! (`tests/cfplugin` `echo`), then decoded by our decoder: the values come back unchanged.
//!
//! Needs Go (`apt-get install golang-go`; `.ci/run` installs it): without it this test fails.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use switchctl::plugin::{
    gob::{Decoder, Encoder, Type, Value},
    metadata::{metadata, metadata_type},
    rpc::{organization_type, request_type, response_type, space_type},
};

fn echo(input: &[u8]) -> Vec<u8> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/cfplugin");
    let child = Command::new("go")
        .args(["run", ".", "echo"])
        .current_dir(&source)
        .env("GOFLAGS", "-buildvcs=false")
        .env("GOCACHE", std::env::temp_dir().join("cfplugin-gocache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("cannot run `go` ({e}): this test needs Go; install it with `apt-get install golang-go`")
    });
    child.stdin.take().expect("stdin").write_all(input).expect("write to go");
    let out = child.wait_with_output().expect("go ends");
    assert!(out.status.success(), "go run . echo failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn org() -> Value {
    let quota = Value::structure(vec![
        ("Guid", Value::str("q")),
        ("MemoryLimit", Value::Int(1 << 40)),
        ("RoutesLimit", Value::Int(-1)),
        ("NonBasicServicesAllowed", Value::Bool(true)),
    ]);
    let fields = Value::structure(vec![
        ("Guid", Value::str("5a1e0000-aaaa-4bbb-8ccc-000000000001")),
        ("Name", Value::str("örg")),
        ("QuotaDefinition", quota),
    ]);
    Value::structure(vec![("OrganizationFields", fields)])
}

fn space() -> Value {
    let fields = Value::structure(vec![("Guid", Value::str("5a1e-2")), ("Name", Value::str("dev"))]);
    Value::structure(vec![("SpaceFields", fields)])
}

#[test]
fn every_rpc_type_survives_a_trip_through_go() {
    let meta = metadata().to_value();
    let values: Vec<(Type, Value)> = vec![
        (
            request_type(),
            Value::structure(vec![
                ("ServiceMethod", Value::str("CliRpcCmd.GetCurrentOrg")),
                ("Seq", Value::Uint(70_000)),
            ]),
        ),
        (Type::String, Value::str("bearer eyJ.e30.c2ln")),
        (metadata_type(), meta.clone()),
        (
            response_type(),
            Value::structure(vec![
                ("ServiceMethod", Value::str("CliRpcCmd.AccessToken")),
                ("Seq", Value::Uint(1)),
                ("Error", Value::str("token refresh failed")),
            ]),
        ),
        (Type::String, Value::str("")),
        (Type::Bool, Value::Bool(true)),
        (Type::Bool, Value::Bool(false)),
        (organization_type(), org()),
        (space_type(), space()),
    ];
    let mut enc = Encoder::new();
    let mut input = Vec::new();
    for (ty, value) in &values {
        input.extend(enc.encode(ty, value).expect("encodes"));
    }
    let output = echo(&input);
    let mut dec = Decoder::new(&output[..]);
    for (i, (_, want)) in values.iter().enumerate() {
        let got = dec.read().unwrap_or_else(|e| panic!("value {i}: {e}"));
        assert_eq!(normal(got), normal(want.clone()), "value {i}");
    }
}

/// A value as Go sees it: map entries sorted (Go writes them in random order), and struct fields
/// that are zero left out (Go's decoder cannot tell them from absent ones, and its encoder omits
/// them).
fn normal(value: Value) -> Value {
    let zero = |v: &Value| match v {
        Value::Int(0) | Value::Uint(0) | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Slice(items) => items.is_empty(),
        Value::Struct(fields) => fields.is_empty(),
        _ => false,
    };
    match value {
        Value::Map(mut pairs) => {
            pairs.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
            Value::Map(pairs.into_iter().map(|(k, v)| (normal(k), normal(v))).collect())
        }
        Value::Struct(fields) => {
            Value::Struct(fields.into_iter().map(|(n, v)| (n, normal(v))).filter(|(_, v)| !zero(v)).collect())
        }
        Value::Slice(items) => Value::Slice(items.into_iter().map(normal).collect()),
        other => other,
    }
}
