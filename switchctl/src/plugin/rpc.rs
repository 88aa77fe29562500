//! The plugin's side of the cf CLI's RPC: Go's `net/rpc` over gob, to the server the cf CLI starts
//! on `127.0.0.1:PORT` for the plugin's lifetime (`plugin/rpc/cli_rpc_server.go`, `Start`).
//!
//! As the Go plugin library does (`plugin/cli_connection.go`, `withClientDo`), every call dials a
//! new connection: the CLI serves each connection with `rpc.Server.ServeConn`, so nothing is
//! shared between calls. On a connection, `net/rpc`'s gob codec (`net/rpc/client.go`,
//! `gobClientCodec.WriteRequest`) writes a `Request{ServiceMethod, Seq}` then the argument, and the
//! server (`net/rpc/server.go`, `sendResponse`) answers a `Response{ServiceMethod, Seq, Error}`
//! then the reply, or an empty struct (`invalidRequest`) when `Error` is set.

use std::{
    io::{BufReader, BufWriter, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    time::Duration,
};

use super::gob::{Decoder, Encoder, GobError, Type, Value};

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No connection to the CLI's server, or it broke.
    #[error("cannot reach the cf CLI on 127.0.0.1:{port}: {source}")]
    Connect {
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// The request or answer could not be encoded or decoded.
    #[error("{method}: {source}")]
    Codec {
        /// The method called.
        method: String,
        /// Why.
        source: GobError,
    },
    /// The CLI answered with an error (e.g. `AccessToken` when the refresh token is no longer valid).
    #[error("{method}: the cf CLI answered: {message}")]
    Remote {
        /// The method called.
        method: String,
        /// The CLI's error text.
        message: String,
    },
}

/// Longest wait for one call. `AccessToken` may make the CLI ask UAA for a token: UAA's own
/// timeouts are shorter than this.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The cf CLI's RPC server at `127.0.0.1:port`.
#[derive(Debug, Clone, Copy)]
pub struct CliRpc {
    port: u16,
}

/// `net/rpc.Request`; its unexported `next` field is not sent.
pub fn request_type() -> Type {
    Type::structure("Request", &[("ServiceMethod", Type::String), ("Seq", Type::Uint)])
}

/// `net/rpc.Response`. Only decoded here (the decoder learns it from the stream); the type is for
/// tests that encode what the CLI sends.
pub fn response_type() -> Type {
    Type::structure("Response", &[("ServiceMethod", Type::String), ("Seq", Type::Uint), ("Error", Type::String)])
}

/// `plugin_models.Organization` (`plugin/models/get_current_org.go`), the reply of `GetCurrentOrg`.
pub fn organization_type() -> Type {
    let quota = Type::structure(
        "QuotaFields",
        &[
            ("Guid", Type::String),
            ("Name", Type::String),
            ("MemoryLimit", Type::Int),
            ("InstanceMemoryLimit", Type::Int),
            ("RoutesLimit", Type::Int),
            ("ServicesLimit", Type::Int),
            ("NonBasicServicesAllowed", Type::Bool),
        ],
    );
    let fields = Type::structure(
        "OrganizationFields",
        &[("Guid", Type::String), ("Name", Type::String), ("QuotaDefinition", quota)],
    );
    Type::structure("Organization", &[("OrganizationFields", fields)])
}

/// `plugin_models.Space` (`plugin/models/get_current_space.go`), the reply of `GetCurrentSpace`.
pub fn space_type() -> Type {
    let fields = Type::structure("SpaceFields", &[("Guid", Type::String), ("Name", Type::String)]);
    Type::structure("Space", &[("SpaceFields", fields)])
}

impl CliRpc {
    /// The server on `port`.
    pub fn new(port: u16) -> CliRpc {
        CliRpc { port }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn connect(&self) -> Result<TcpStream, RpcError> {
        let err = |source| RpcError::Connect { port: self.port, source };
        let stream = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(5)).map_err(err)?;
        stream.set_read_timeout(Some(CALL_TIMEOUT)).map_err(err)?;
        stream.set_write_timeout(Some(CALL_TIMEOUT)).map_err(err)?;
        Ok(stream)
    }

    /// `pingCLI` of the plugin shim: up to five connection attempts 200 ms apart, for a CLI that
    /// is still starting its server.
    pub fn ping(&self) -> Result<(), RpcError> {
        let mut last = None;
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            match TcpStream::connect_timeout(&self.addr(), Duration::from_secs(5)) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(RpcError::Connect {
            port: self.port,
            source: last.unwrap_or_else(|| std::io::Error::other("no attempt made")),
        })
    }

    /// Calls `method` (e.g. `CliRpcCmd.AccessToken`) with `arg` sent as `arg_type`: the reply.
    pub fn call(&self, method: &str, arg_type: &Type, arg: &Value) -> Result<Value, RpcError> {
        let stream = self.connect()?;
        let codec = |source| RpcError::Codec { method: method.to_owned(), source };
        let connect = |source| RpcError::Connect { port: self.port, source };
        let mut writer = BufWriter::new(stream.try_clone().map_err(connect)?);
        let mut enc = Encoder::new();
        // One call per connection: Seq 0, as the first call of a Go rpc.Client.
        let header = Value::structure(vec![("ServiceMethod", Value::str(method)), ("Seq", Value::Uint(0))]);
        enc.write(&mut writer, &request_type(), &header).map_err(codec)?;
        enc.write(&mut writer, arg_type, arg).map_err(codec)?;
        writer.flush().map_err(connect)?;
        let mut dec = Decoder::new(BufReader::new(stream));
        let response = dec.read().map_err(codec)?;
        let body = dec.read().map_err(codec)?;
        let error = response.str_field("Error");
        if !error.is_empty() {
            return Err(RpcError::Remote { method: method.to_owned(), message: error.to_owned() });
        }
        Ok(body)
    }

    /// Calls a method whose argument is the empty string, as `cli_connection.go` sends for
    /// `AccessToken`, `ApiEndpoint`, `GetCurrentOrg`, `GetCurrentSpace`, `IsSSLDisabled`….
    pub fn call_no_arg(&self, method: &str) -> Result<Value, RpcError> {
        self.call(method, &Type::String, &Value::str(""))
    }
}
