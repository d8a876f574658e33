//! One configuration story for every Rust service, in layers, each overriding the one before:
//! embedded defaults (the clap `default_value`s) → an optional YAML file (`--config` /
//! `TASKLOOM_CONFIG`), of which each service reads its own top-level section (`cache:`,
//! `metrics:`, `vector:`) → `TASKLOOM_*` environment → flags. `--check-config` validates the
//! result, prints it (secrets masked) and exits.
//!
//! clap parses the environment and flags (and documents both in `--help`); figment merges the
//! layers and names the file and key of a bad value in its error.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Args, CommandFactory, FromArgMatches};
use figment::providers::{Format, Serialized, Yaml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::otel::TracingArgs;
use crate::profiling::{check_address, ProfilingAccess};
use crate::secrets::mask_url;

/// The variable naming the YAML file, as `--config` does.
pub const CONFIG_ENV: &str = "TASKLOOM_CONFIG";

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct CommonArgs {
    /// Address the gRPC server listens on.
    #[arg(long, env = "TASKLOOM_GRPC_ADDR")]
    pub grpc_addr: SocketAddr,

    /// Address the HTTP server (/healthz, /readyz, /metrics) listens on.
    #[arg(long, env = "TASKLOOM_HTTP_ADDR")]
    pub http_addr: SocketAddr,

    /// Log filter: a level (`info`) or an `EnvFilter` directive (`info,h2=warn`).
    #[arg(long, env = "TASKLOOM_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Serve CPU and heap profiles on the HTTP port (/debug/pprof/profile, /debug/pprof/heap).
    #[arg(long, env = "TASKLOOM_PROFILING")]
    pub profiling: bool,

    /// Serve profiles to non-loopback clients and on a non-loopback HTTP address too.
    #[arg(long, env = "TASKLOOM_PROFILING_ALLOW_REMOTE")]
    pub profiling_allow_remote: bool,

    #[command(flatten)]
    #[serde(flatten)]
    pub tracing: TracingArgs,
}

impl CommonArgs {
    /// Who may fetch profiles, `None` with profiling off.
    pub fn profiling_access(&self) -> Option<ProfilingAccess> {
        self.profiling.then_some(ProfilingAccess {
            allow_remote: self.profiling_allow_remote,
        })
    }

    fn validate(&self) -> Result<(), String> {
        if self.profiling {
            check_address(self.http_addr, self.profiling_allow_remote)?;
        }
        self.tracing.validate()
    }
}

/// What a service's settings type tells the loader.
pub trait ServiceSettings:
    CommandFactory + FromArgMatches + Serialize + DeserializeOwned + Sized
{
    /// Its top-level section in the YAML file, e.g. `cache`.
    const SECTION: &'static str;
    const DEFAULT_GRPC_ADDR: &'static str;
    const DEFAULT_HTTP_ADDR: &'static str;
    /// Settings holding URLs that may carry a password: printed masked.
    const SECRET_URLS: &'static [&'static str] = &[];

    fn common(&self) -> &CommonArgs;

    /// Checks what types alone cannot (runs on the merged result, whatever layer set it).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The merged settings and whether `--check-config` was asked for.
#[derive(Debug)]
pub struct Loaded<S> {
    pub settings: S,
    pub check_only: bool,
    /// The YAML file read, if any.
    pub file: Option<PathBuf>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Args(#[from] clap::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Loads the service's settings from the process's arguments and environment; prints the
/// error and exits 2 when they are not valid, and with `--check-config` prints the effective
/// settings (secrets masked) and exits 0. Returns the settings to run with otherwise.
pub fn load_or_exit<S: ServiceSettings>() -> S {
    match load::<S, _, _>(std::env::args_os()) {
        Ok(loaded) if loaded.check_only => {
            let file = loaded
                .file
                .as_deref()
                .map_or("no file".into(), |f| format!("file {}", f.display()));
            println!("{}", masked(&loaded.settings));
            eprintln!("configuration is valid ({file}, section {:?})", S::SECTION);
            std::process::exit(0)
        }
        Ok(loaded) => loaded.settings,
        Err(ConfigError::Args(e)) => e.exit(),
        Err(ConfigError::Invalid(message)) => {
            eprintln!("invalid configuration: {message}");
            std::process::exit(2)
        }
    }
}

/// Loads the service's settings from `args` (the first is the program name) and the process
/// environment.
pub fn load<S, I, T>(args: I) -> Result<Loaded<S>, ConfigError>
where
    S: ServiceSettings,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let command = S::command()
        .mut_arg("grpc_addr", |a| {
            a.default_value(S::DEFAULT_GRPC_ADDR).required(false)
        })
        .mut_arg("http_addr", |a| {
            a.default_value(S::DEFAULT_HTTP_ADDR).required(false)
        })
        .arg(
            Arg::new("config")
                .long("config")
                .env(CONFIG_ENV)
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("YAML file with a section per service; this one reads its own"),
        )
        .arg(
            Arg::new("check_config")
                .long("check-config")
                .action(ArgAction::SetTrue)
                .help("Validate the configuration, print it (secrets masked) and exit"),
        );
    let mut matches = command.try_get_matches_from(args)?;
    let file = matches.remove_one::<PathBuf>("config");
    let check_only = matches.remove_one::<bool>("check_config").unwrap_or(false);
    let parsed = S::from_arg_matches_mut(&mut matches.clone())?;

    // Split what clap produced into its defaults and what the environment or flags set.
    let Value::Object(all) = to_json(&parsed)? else {
        return Err(ConfigError::Invalid("settings are not a map".into()));
    };
    let (mut defaults, mut overrides) = (Map::new(), Map::new());
    for (key, value) in all {
        let explicit = matches!(
            matches.value_source(&key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if explicit {
            overrides.insert(key, value);
        } else {
            defaults.insert(key, value);
        }
    }
    let known: BTreeSet<String> = defaults.keys().chain(overrides.keys()).cloned().collect();

    let mut figment = Figment::from(Serialized::defaults(Value::Object(defaults)));
    if let Some(file) = &file {
        figment = figment.merge(file_section(file, S::SECTION, &known)?);
    }
    let settings: S = figment
        .merge(Serialized::defaults(Value::Object(overrides)))
        .extract()
        .map_err(|e| ConfigError::Invalid(describe(e, file.as_deref(), S::SECTION)))?;
    settings.common().validate().map_err(ConfigError::Invalid)?;
    settings.validate().map_err(ConfigError::Invalid)?;
    Ok(Loaded {
        settings,
        check_only,
        file,
    })
}

/// The `section` of the YAML file at `path`: missing is empty, anything but a mapping or a
/// key the service does not know is an error (a typo must not pass silently).
fn file_section(
    path: &Path,
    section: &str,
    known: &BTreeSet<String>,
) -> Result<Figment, ConfigError> {
    let invalid = |m: String| ConfigError::Invalid(format!("{}: {m}", path.display()));
    if !path.is_file() {
        return Err(invalid("no such file".into()));
    }
    let file = Figment::from(Yaml::file_exact(path));
    let root: figment::value::Dict = file.extract().map_err(|e| invalid(e.to_string()))?;
    if let Some(value) = root.get(section) {
        let dict = value
            .as_dict()
            .ok_or_else(|| invalid(format!("`{section}` must be a mapping of settings")))?;
        let unknown: Vec<&String> = dict.keys().filter(|k| !known.contains(*k)).collect();
        if !unknown.is_empty() {
            return Err(invalid(format!(
                "unknown setting(s) {unknown:?} in `{section}`; known: {known:?}"
            )));
        }
    }
    Ok(file.focus(section))
}

/// A figment error as one line naming the section and file of the bad value.
fn describe(error: figment::Error, file: Option<&Path>, section: &str) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let origin = match (&e.metadata, file) {
                (Some(m), Some(f)) if m.name.contains("YAML") => {
                    format!(" in {} (`{section}.{key}`)", f.display())
                }
                _ => format!(" (`{key}` from the environment or flags)"),
            };
            format!("{}{origin}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn to_json<S: Serialize>(settings: &S) -> Result<Value, ConfigError> {
    serde_json::to_value(settings).map_err(|e| ConfigError::Invalid(e.to_string()))
}

/// The settings as JSON with every [`ServiceSettings::SECRET_URLS`] value masked, for logs.
pub fn masked<S: ServiceSettings>(settings: &S) -> Value {
    let mut value = to_json(settings).unwrap_or_else(|e| Value::String(e.to_string()));
    if let Value::Object(map) = &mut value {
        for name in S::SECRET_URLS {
            if let Some(Value::String(url)) = map.get_mut(*name) {
                *url = mask_url(url);
            }
        }
    }
    value
}

/// Settings from `args` (the first is the program name) and the environment alone, with
/// the given default addresses: for tests that run a service in-process on `127.0.0.1:0`.
pub fn parse_config_from<C, I, T>(
    args: I,
    default_grpc_addr: &'static str,
    default_http_addr: &'static str,
) -> Result<C, clap::Error>
where
    C: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut matches = C::command()
        .mut_arg("grpc_addr", |a| {
            a.default_value(default_grpc_addr).required(false)
        })
        .mut_arg("http_addr", |a| {
            a.default_value(default_http_addr).required(false)
        })
        .try_get_matches_from(args)?;
    C::from_arg_matches_mut(&mut matches)
}

/// Parses `1h`, `30s`, `250ms` etc. for clap.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;

    #[derive(Parser, Debug, Serialize, Deserialize)]
    struct TestSettings {
        #[command(flatten)]
        #[serde(flatten)]
        common: CommonArgs,

        /// A duration.
        #[arg(long, env = "TASKLOOM_TEST_CONFIG_TTL", default_value = "1h", value_parser = parse_duration)]
        #[serde(with = "humantime_serde")]
        ttl: Duration,

        #[arg(long, env = "TASKLOOM_TEST_CONFIG_URL", default_value = "")]
        url: String,

        #[arg(long, default_value_t = 3)]
        count: u32,
    }

    impl ServiceSettings for TestSettings {
        const SECTION: &'static str = "test";
        const DEFAULT_GRPC_ADDR: &'static str = "127.0.0.1:1";
        const DEFAULT_HTTP_ADDR: &'static str = "127.0.0.1:2";
        const SECRET_URLS: &'static [&'static str] = &["url"];

        fn common(&self) -> &CommonArgs {
            &self.common
        }

        fn validate(&self) -> Result<(), String> {
            if self.count == 0 {
                return Err("count: must be at least 1".into());
            }
            Ok(())
        }
    }

    fn yaml(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        file
    }

    fn load_args(args: &[&str]) -> Result<TestSettings, ConfigError> {
        load::<TestSettings, _, _>(std::iter::once("x").chain(args.iter().copied()))
            .map(|l| l.settings)
    }

    fn invalid(result: Result<TestSettings, ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid(message)) => message,
            other => panic!("expected an invalid configuration, got {other:?}"),
        }
    }

    #[test]
    fn embedded_defaults_per_service() {
        let s = load_args(&[]).expect("defaults");
        assert_eq!(s.common.grpc_addr.port(), 1);
        assert_eq!(s.common.http_addr.port(), 2);
        assert_eq!(s.common.log_level, "info");
        assert_eq!((s.ttl, s.count), (Duration::from_secs(3600), 3));
    }

    #[test]
    fn file_section_overrides_defaults_and_flags_override_the_file() {
        let file = yaml(
            "test:\n  ttl: 5m\n  count: 7\n  grpc_addr: 0.0.0.0:9\n\
             other_service:\n  anything: goes\n",
        );
        let path = file.path().to_str().expect("utf-8");
        let s = load_args(&["--config", path]).expect("file");
        assert_eq!((s.ttl, s.count), (Duration::from_secs(300), 7));
        assert_eq!(s.common.grpc_addr.port(), 9);
        assert_eq!(s.common.http_addr.port(), 2, "unset in the file: default");
        let s = load_args(&[
            "--config",
            path,
            "--count",
            "8",
            "--grpc-addr",
            "127.0.0.1:5",
        ])
        .expect("flags");
        assert_eq!(
            (s.ttl, s.count, s.common.grpc_addr.port()),
            (Duration::from_secs(300), 8, 5)
        );
    }

    #[test]
    fn a_file_without_the_section_gives_the_defaults() {
        let file = yaml("cache:\n  max_bytes: 1\n");
        let s = load_args(&["--config", file.path().to_str().expect("utf-8")]).expect("load");
        assert_eq!(s.count, 3);
    }

    #[test]
    fn bad_files_are_named_with_the_key() {
        let file = yaml("test:\n  count: many\n");
        let message = invalid(load_args(&[
            "--config",
            file.path().to_str().expect("utf-8"),
        ]));
        assert!(message.contains("test.count"), "{message}");
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );

        let file = yaml("test:\n  cuont: 2\n");
        let message = invalid(load_args(&[
            "--config",
            file.path().to_str().expect("utf-8"),
        ]));
        assert!(message.contains("cuont"), "{message}");

        let file = yaml("test: 5\n");
        let message = invalid(load_args(&[
            "--config",
            file.path().to_str().expect("utf-8"),
        ]));
        assert!(message.contains("must be a mapping"), "{message}");

        let message = invalid(load_args(&["--config", "/nonexistent/taskloom.yaml"]));
        assert!(message.contains("no such file"), "{message}");

        let file = yaml("test:\n  count: 0\n");
        let message = invalid(load_args(&[
            "--config",
            file.path().to_str().expect("utf-8"),
        ]));
        assert!(message.contains("count: must be at least 1"), "{message}");
    }

    #[test]
    fn profiling_is_off_by_default_and_refused_on_a_public_address() {
        assert!(load_args(&[])
            .expect("defaults")
            .common
            .profiling_access()
            .is_none());
        let s = load_args(&["--profiling"]).expect("loopback");
        assert!(!s.common.profiling_access().expect("on").allow_remote);
        let message = invalid(load_args(&["--profiling", "--http-addr", "0.0.0.0:9102"]));
        assert!(message.contains("not loopback"), "{message}");
        let s = load_args(&[
            "--profiling",
            "--profiling-allow-remote",
            "--http-addr",
            "0.0.0.0:9102",
        ])
        .expect("allowed");
        assert!(s.common.profiling_access().expect("on").allow_remote);
    }

    #[test]
    fn check_config_is_reported_and_secrets_are_masked() {
        let loaded = load::<TestSettings, _, _>([
            "x",
            "--check-config",
            "--url",
            "redis://user:s3cret@host:6379/0",
        ])
        .expect("load");
        assert!(loaded.check_only);
        let printed = masked(&loaded.settings).to_string();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains(r#""url":"redis://user:****@host:6379/0""#),
            "{printed}"
        );
        assert!(printed.contains(r#""ttl":"1h""#), "{printed}");
    }
}
