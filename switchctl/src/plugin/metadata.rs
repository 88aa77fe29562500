//! What switchctl tells the cf CLI about itself: `plugin.PluginMetadata` of the cf CLI's
//! `plugin/plugin.go`, with the help and usage taken from switchctl's own clap definition so they
//! never drift from what the command accepts.

use clap::CommandFactory as _;

use super::gob::{Type, Value};
use crate::cli::Cli;

/// The plugin's name (`cf plugins`, `cf uninstall-plugin maintenance`).
pub const PLUGIN_NAME: &str = "maintenance";
/// The one command it adds: `cf maintenance on|off|run|status|… APP`.
pub const COMMAND: &str = "maintenance";

/// The oldest cf CLI the plugin asks for. The RPC methods it calls (`AccessToken`, `ApiEndpoint`,
/// `GetCurrentOrg`, `GetCurrentSpace`, `IsSSLDisabled`, `IsMinCliVersion`) are in the cf CLI since
/// 2015 (commits "5 new Plugin APIs" and "minimum cli version check for plugins"; the first
/// release carrying them is UNCONFIRMED, somewhere in the v6 line). v7 is asked because it is the
/// oldest line still supported and the v6 line is retired, so nothing older was ever tried.
pub const MIN_CLI_VERSION: (i64, i64, i64) = (7, 0, 0);

/// Subcommands not offered through cf: `completions` writes a completion script for the
/// `switchctl` binary, which means nothing inside `cf`.
const NOT_IN_CF: &[&str] = &["completions"];

/// A typed `PluginMetadata`, as the Go side sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// `Name`.
    pub name: String,
    /// `Version` (major, minor, build).
    pub version: (i64, i64, i64),
    /// `MinCliVersion`.
    pub min_cli_version: (i64, i64, i64),
    /// `Commands`.
    pub commands: Vec<CommandMeta>,
}

/// One `plugin.Command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMeta {
    /// `Name`.
    pub name: String,
    /// `Alias`.
    pub alias: String,
    /// `HelpText`: the line `cf help -a` shows.
    pub help_text: String,
    /// `UsageDetails.Usage`.
    pub usage: String,
    /// `UsageDetails.Options`: flag name (without dashes) → description, as `cf help CMD` lists them.
    pub options: Vec<(String, String)>,
}

/// switchctl's metadata, from Cargo's version and clap's definition.
pub fn metadata() -> Metadata {
    let cmd = Cli::command();
    let help_text = cmd.get_about().map(ToString::to_string).unwrap_or_default();
    let mut usage = Vec::new();
    let mut options: Vec<(String, String)> = Vec::new();
    let mut add_options = |c: &clap::Command| {
        for arg in c.get_arguments().filter(|a| !a.is_positional() && !a.is_hide_set()) {
            let name = arg
                .get_long()
                .map(str::to_owned)
                .or_else(|| arg.get_short().map(String::from))
                .unwrap_or_else(|| arg.get_id().to_string());
            if options.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            options.push((name, help));
        }
    };
    add_options(&cmd);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && !NOT_IN_CF.contains(&s.get_name())) {
        let mut sub = sub.clone().bin_name(format!("cf {COMMAND} {}", sub.get_name()));
        let line = sub.render_usage().to_string();
        let line = line.trim().trim_start_matches("Usage:").trim();
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        usage.push(format!("{line}\n      {about}"));
        add_options(&sub);
    }
    let version = |v: &str| v.parse::<i64>().unwrap_or(0);
    Metadata {
        name: PLUGIN_NAME.to_owned(),
        version: (
            version(env!("CARGO_PKG_VERSION_MAJOR")),
            version(env!("CARGO_PKG_VERSION_MINOR")),
            version(env!("CARGO_PKG_VERSION_PATCH")),
        ),
        min_cli_version: MIN_CLI_VERSION,
        commands: vec![CommandMeta {
            name: COMMAND.to_owned(),
            alias: String::new(),
            help_text,
            // cf answers `-h`/`--help` anywhere after a plugin command with this page itself
            // (util/command_parser/command_parser.go: `containsHelpFlag` on an unknown command), so
            // the details are behind clap's `help` subcommand, which cf passes on.
            usage: format!(
                "{}\n\n   `cf {COMMAND} help SUBCOMMAND` shows each one's flags and details.",
                usage.join("\n   ")
            ),
            options,
        }],
    }
}

/// `plugin.VersionType`.
pub fn version_type() -> Type {
    Type::structure("VersionType", &[("Major", Type::Int), ("Minor", Type::Int), ("Build", Type::Int)])
}

/// `plugin.PluginMetadata`, the argument of `CliRpcCmd.SetPluginMetadata`. The names of the
/// unnamed types are what Go's `reflect` prints for them in package `plugin`.
pub fn metadata_type() -> Type {
    let usage = Type::structure(
        "Usage",
        &[("Usage", Type::String), ("Options", Type::map("map[string]string", Type::String, Type::String))],
    );
    let command = Type::structure(
        "Command",
        &[("Name", Type::String), ("Alias", Type::String), ("HelpText", Type::String), ("UsageDetails", usage)],
    );
    Type::structure(
        "PluginMetadata",
        &[
            ("Name", Type::String),
            ("Version", version_type()),
            ("LibraryVersion", version_type()),
            ("MinCliVersion", version_type()),
            ("Commands", Type::slice("[]plugin.Command", command)),
        ],
    )
}

fn version_value((major, minor, build): (i64, i64, i64)) -> Value {
    Value::structure(vec![("Major", Value::Int(major)), ("Minor", Value::Int(minor)), ("Build", Value::Int(build))])
}

impl Metadata {
    /// As a gob value of [`metadata_type`]. `LibraryVersion` stays zero, as the Go plugin library
    /// leaves it (nothing in `plugin_shim.go` sets it).
    pub fn to_value(&self) -> Value {
        let commands = self
            .commands
            .iter()
            .map(|c| {
                let options = c.options.iter().map(|(k, v)| (Value::str(k), Value::str(v))).collect::<Vec<_>>();
                Value::structure(vec![
                    ("Name", Value::str(&c.name)),
                    ("Alias", Value::str(&c.alias)),
                    ("HelpText", Value::str(&c.help_text)),
                    (
                        "UsageDetails",
                        Value::structure(vec![("Usage", Value::str(&c.usage)), ("Options", Value::Map(options))]),
                    ),
                ])
            })
            .collect();
        Value::structure(vec![
            ("Name", Value::str(&self.name)),
            ("Version", version_value(self.version)),
            ("MinCliVersion", version_value(self.min_cli_version)),
            ("Commands", Value::Slice(commands)),
        ])
    }

    /// `MinCliVersion` as `IsMinCliVersion` takes it (`plugin_shim.go`'s `MinCliVersionStr`):
    /// `None` when zero, which skips the check.
    pub fn min_cli_version_str(&self) -> Option<String> {
        let (major, minor, build) = self.min_cli_version;
        (self.min_cli_version != (0, 0, 0)).then(|| format!("{major}.{minor}.{build}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::gob::{Decoder, Encoder};

    #[test]
    fn every_subcommand_but_completions_is_in_the_usage_with_its_flags() {
        let meta = metadata();
        assert_eq!(meta.commands.len(), 1);
        let command = &meta.commands[0];
        assert_eq!(command.name, "maintenance");
        for sub in Cli::command().get_subcommands().filter(|s| !s.is_hide_set()) {
            let line = format!("cf maintenance {}", sub.get_name());
            assert_eq!(command.usage.contains(&line), sub.get_name() != "completions", "{line} in {}", command.usage);
        }
        for flag in ["org", "space", "json", "probe-via", "verbose"] {
            assert!(command.options.iter().any(|(n, _)| n == flag), "--{flag} listed: {:?}", command.options);
        }
        assert!(!command.help_text.is_empty());
        assert_eq!(meta.min_cli_version_str().as_deref(), Some("7.0.0"));
    }

    #[test]
    fn the_metadata_round_trips_through_gob() {
        let meta = metadata();
        let bytes = Encoder::new().encode(&metadata_type(), &meta.to_value()).expect("encodes");
        let back = Decoder::new(&bytes[..]).read().expect("decodes");
        let command = match back.field("Commands") {
            Some(Value::Slice(c)) => c[0].clone(),
            other => panic!("commands: {other:?}"),
        };
        assert_eq!(back.str_field("Name"), "maintenance");
        assert_eq!(command.str_field("Name"), "maintenance");
        assert_eq!(command.field("UsageDetails").map(|u| u.str_field("Usage")), Some(meta.commands[0].usage.as_str()));
    }
}
