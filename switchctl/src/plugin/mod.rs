//! switchctl as a cf CLI plugin: `cf install-plugin switchctl`, then `cf maintenance on APP`.
//!
//! The cf CLI runs a plugin binary with the port of an RPC server it started on 127.0.0.1 and what
//! it wants (`plugin/rpc/run_plugin.go`, `command/plugin/shared/rpc.go`,
//! `cf/commands/plugin/uninstall_plugin.go` in cloudfoundry/cli):
//!
//! * `switchctl PORT SendMetadata` at `cf install-plugin`: the plugin calls
//!   `CliRpcCmd.SetPluginMetadata` and exits;
//! * `switchctl PORT maintenance ARGS…` for `cf maintenance ARGS…`;
//! * `switchctl PORT CLI-MESSAGE-UNINSTALL` at `cf uninstall-plugin`: nothing to clean up here.
//!
//! As the Go plugin library does (`plugin/plugin_shim.go`, `Start`): first a ping of the server,
//! then, for a command, `IsMinCliVersion` when a minimum is set. The command line after the
//! command name is parsed by switchctl's own clap definition and run by [`crate::run_with`], with
//! the login lent by the CLI ([`crate::session::LentLogin`]). The plugin writes to stdout and
//! stderr itself: the CLI hands its terminal to the plugin (`cmd.Stdout = os.Stdout`). Exit codes
//! are switchctl's; note that the cf CLI turns any failure of a plugin into its own exit code 1
//! (`RunMethodIfExists`: `if err != nil { os.Exit(1) }`).

pub mod gob;
pub mod metadata;
pub mod rpc;

#[cfg(test)]
mod fixtures;

use std::{ffi::OsString, process::ExitCode, sync::Arc};

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::{
    cfconfig::Targeted,
    cli::Cli,
    error::{EXIT_FAILURE, EXIT_USAGE},
    output,
    session::{LentLogin, LoginEnv},
    uaa::TokenLender,
};
use gob::{Type, Value};
use rpc::CliRpc;

/// The argument the cf CLI passes to fetch the metadata (`plugin_shim.go`'s `isMetadataRequest`).
pub const SEND_METADATA: &str = "SendMetadata";
/// The argument of `cf uninstall-plugin` (`actor/pluginaction/uninstall.go`).
pub const UNINSTALL: &str = "CLI-MESSAGE-UNINSTALL";

/// What the cf CLI asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `SendMetadata`.
    Metadata,
    /// `CLI-MESSAGE-UNINSTALL`.
    Uninstall,
    /// `maintenance ARGS…`: the arguments after the command name.
    Command(Vec<OsString>),
}

/// A plugin invocation: the CLI's RPC port and the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The port of the CLI's RPC server on 127.0.0.1.
    pub port: u16,
    /// What to do.
    pub request: Request,
}

/// The invocation, when `args` (the whole argv) is one the cf CLI makes: a port, then
/// `SendMetadata`, `CLI-MESSAGE-UNINSTALL` or the command name. No switchctl command line starts
/// with a number, so anything else is switchctl's own.
pub fn detect(args: &[OsString]) -> Option<Invocation> {
    let port: u16 = args.get(1)?.to_str()?.parse().ok().filter(|p| *p != 0)?;
    let what = args.get(2)?.to_str()?;
    let request = match what {
        SEND_METADATA if args.len() == 3 => Request::Metadata,
        UNINSTALL => Request::Uninstall,
        metadata::COMMAND => Request::Command(args[3..].to_vec()),
        _ => return None,
    };
    Some(Invocation { port, request })
}

/// Runs an invocation to its exit code.
pub fn main(invocation: Invocation) -> ExitCode {
    let rpc = CliRpc::new(invocation.port);
    // As plugin_shim.go: exit 1 when the CLI cannot be reached (it prints to stdout; our errors
    // all go to stderr).
    if let Err(err) = rpc.ping() {
        output::early_error(&err.to_string());
        return ExitCode::from(EXIT_FAILURE);
    }
    match invocation.request {
        Request::Metadata => send_metadata(&rpc),
        Request::Uninstall => ExitCode::SUCCESS,
        Request::Command(args) => run_command(rpc, args),
    }
}

fn send_metadata(rpc: &CliRpc) -> ExitCode {
    let meta = metadata::metadata();
    match rpc.call("CliRpcCmd.SetPluginMetadata", &metadata::metadata_type(), &meta.to_value()) {
        Ok(Value::Bool(true)) => ExitCode::SUCCESS,
        Ok(other) => {
            output::early_error(&format!("the cf CLI did not accept the plugin's metadata ({other:?})"));
            ExitCode::from(EXIT_FAILURE)
        }
        Err(err) => {
            output::early_error(&err.to_string());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn run_command(rpc: CliRpc, args: Vec<OsString>) -> ExitCode {
    let meta = metadata::metadata();
    if let Some(version) = meta.min_cli_version_str() {
        match rpc.call("CliRpcCmd.IsMinCliVersion", &Type::String, &Value::str(&version)) {
            Ok(Value::Bool(true)) => {}
            // plugin_shim.go's words; it exits 0, but a CLI too old is a configuration error,
            // switchctl's exit 2, and nothing was done.
            Ok(_) => {
                output::early_error(&format!(
                    "Minimum CLI version {version} is required to run this plugin command; upgrade the cf CLI"
                ));
                return ExitCode::from(EXIT_USAGE);
            }
            Err(err) => {
                output::early_error(&err.to_string());
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    let bin_name = format!("cf {}", metadata::COMMAND);
    let argv = std::iter::once(OsString::from(&bin_name)).chain(args);
    let parsed = Cli::command().bin_name(&bin_name).try_get_matches_from(argv).and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) => crate::exit_usage_error(err),
    };
    crate::logging::init(cli.verbose);
    let mut env = LoginEnv::from_process();
    env.lent = Some(lent_login(rpc));
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(crate::run_with(cli, env)),
        Err(err) => {
            output::early_error(&format!("cannot start the async runtime: {err}"));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The session as the CLI reports it; a call that fails leaves its part to `config.json`.
fn lent_login(rpc: CliRpc) -> LentLogin {
    let ask = |method: &str| match rpc.call_no_arg(method) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::debug!(method, error = %err, "the cf CLI did not answer; using config.json for it");
            None
        }
    };
    let api = ask("CliRpcCmd.ApiEndpoint").map(|v| v.as_str().to_owned()).filter(|a| !a.is_empty());
    // plugin_models.Organization / Space embed OrganizationFields / SpaceFields {Guid, Name, …}.
    let targeted = |v: Value, embedded: &str| {
        let fields = v.field(embedded).cloned().unwrap_or(Value::Struct(Vec::new()));
        let guid = fields.str_field("Guid");
        (!guid.is_empty()).then(|| Targeted { guid: guid.to_owned(), name: fields.str_field("Name").to_owned() })
    };
    let org = ask("CliRpcCmd.GetCurrentOrg").map(|v| targeted(v, "OrganizationFields"));
    let space = ask("CliRpcCmd.GetCurrentSpace").map(|v| targeted(v, "SpaceFields"));
    let ssl_disabled = ask("CliRpcCmd.IsSSLDisabled").map(|v| v.as_bool());
    // A CLI that cannot give a token now (not logged in) leaves the tokens to config.json, which
    // then says what to do; one that gives a token is asked again each time a new one is needed.
    let access_token = ask("CliRpcCmd.AccessToken").map(|t| t.as_str().to_owned()).filter(|t| !t.is_empty());
    let tokens = access_token.is_some().then(|| Arc::new(CliTokens(rpc)) as Arc<dyn TokenLender>);
    LentLogin { api, org, space, ssl_disabled, tokens, access_token }
}

/// Tokens from the CLI's `AccessToken`, which refreshes the token at UAA when it has to.
struct CliTokens(CliRpc);

impl TokenLender for CliTokens {
    fn access_token(&self) -> Result<String, String> {
        match self.0.call_no_arg("CliRpcCmd.AccessToken") {
            Ok(Value::String(token)) if !token.is_empty() => Ok(token),
            Ok(_) => Err("no token: not logged in".to_owned()),
            Err(err) => Err(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_the_cf_clis_invocations_are_plugin_mode() {
        let meta = Invocation { port: 4321, request: Request::Metadata };
        assert_eq!(detect(&args(&["switchctl", "4321", "SendMetadata"])), Some(meta));
        assert_eq!(
            detect(&args(&["x", "4321", "maintenance", "on", "hello"])),
            Some(Invocation { port: 4321, request: Request::Command(args(&["on", "hello"])) })
        );
        assert_eq!(
            detect(&args(&["x", "1", "CLI-MESSAGE-UNINSTALL"])),
            Some(Invocation { port: 1, request: Request::Uninstall })
        );
        for argv in [
            &["switchctl", "on", "hello"][..],
            &["switchctl", "4321"],
            &["switchctl", "0", "SendMetadata"],
            &["switchctl", "70000", "SendMetadata"],
            &["switchctl", "4321", "SendMetadata", "extra"],
            &["switchctl", "4321", "on", "hello"],
            &["switchctl", "--org", "o", "status"],
        ] {
            assert_eq!(detect(&args(argv)), None, "{argv:?}");
        }
    }
}
