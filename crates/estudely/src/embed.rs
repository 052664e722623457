//! Running a command in-process with its flags given as named values, as the Python
//! package's keyword arguments give them: which flags a command takes ([`flags`]) and the
//! [`Command`] they stand for ([`parse`]), parsed by the command line's own parser, so that
//! every value is checked, defaulted and refused exactly as `estudely` does it. Clap stays
//! in here: callers see [`Flag`], [`Value`] and [`ArgError`].
//!
//! A flag's name is its long form with `_` for `-` (`--max-infohashes` → `max_infohashes`).
//! A switch takes a bool, a repeatable flag a list (or one value), any other flag one
//! number or string, written on the command line as the CLI user would type it.
//!
//! ```
//! use estudely::embed::{parse, Value};
//!
//! let named = [("max_infohashes".to_owned(), Value::Int(5))];
//! assert!(parse(&["collect"], &[], &named, &["--format", "jsonl"]).is_ok());
//! let bad = [("rate".to_owned(), Value::Str("fast".into()))];
//! let e = parse(&["collect"], &[], &bad, &[]).unwrap_err();
//! assert!(e.to_string().contains("`fast` is not a number of queries per second"));
//! ```

use std::fmt;

use clap::{ArgAction, CommandFactory as _, FromArgMatches as _};

use crate::cli::{Cli, Command};

/// A value given for a flag.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A switch's state (`true`: given).
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number.
    Float(f64),
    /// Text, written as is (an address, a size such as `64M`, a path).
    Str(String),
    /// The values of a repeatable flag, in order.
    List(Vec<Value>),
}

impl Value {
    /// What kind of value this is, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::List(_) => "list",
        }
    }

    /// As typed on the command line; `None` for a bool or a list.
    fn scalar(&self) -> Option<String> {
        match self {
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Bool(_) | Value::List(_) => None,
        }
    }
}

/// How a flag takes values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// Given or not (`--allow-private`): a bool.
    Switch,
    /// One value (`--rate 25`).
    One,
    /// Repeatable (`--bootstrap A --bootstrap B`): a list.
    Many,
}

/// One flag of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name as a keyword: `max_infohashes`.
    pub name: String,
    /// The long form: `--max-infohashes`.
    pub long: String,
    /// How it takes values.
    pub kind: FlagKind,
    /// The placeholder of its value in the help (`N`, `HOST:PORT`), if it takes one.
    pub value_name: Option<String>,
    /// Its help text (the first paragraph of `--help`'s).
    pub help: String,
    /// Its default values, as typed on the command line (none when it has none).
    pub default: Vec<String>,
    /// The values it accepts, when they are a fixed set (`--transport tcp|utp|both`).
    pub choices: Vec<String>,
}

/// Why named values do not make a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// No such subcommand (a bug of the caller).
    NoCommand(String),
    /// A name the command has no flag for (or one the caller fixes itself).
    Unknown(String),
    /// A value of the wrong kind for its flag: `name` wants `want`, got `got`.
    Type {
        /// The keyword.
        name: String,
        /// What it takes.
        want: &'static str,
        /// What it was given.
        got: &'static str,
    },
    /// The command line's parser refused it: its one-line message, as `estudely` prints it
    /// after `error: `.
    Value(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::NoCommand(c) => write!(f, "no command `{c}`"),
            ArgError::Unknown(name) => write!(f, "got an unexpected keyword argument '{name}'"),
            ArgError::Type { name, want, got } => {
                write!(f, "argument '{name}' must be {want}, not {got}")
            }
            ArgError::Value(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ArgError {}

/// The clap command at `path` (`["collect"]`, `["query", "ping"]`), with the arguments it
/// inherits from its parents (`query`'s global `--bind`, `--timeout`, ...).
fn command_at(path: &[&str]) -> Result<(clap::Command, Vec<clap::Arg>), ArgError> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut inherited = Vec::new();
    for (i, name) in path.iter().enumerate() {
        let sub = cmd
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| ArgError::NoCommand(path[..=i].join(" ")))?;
        inherited.extend(cmd.get_arguments().filter(|a| a.is_global_set()).cloned());
        cmd = sub;
    }
    Ok((cmd, inherited))
}

/// The flags of the command at `path` that a caller may give (not `--help`, `--version`).
pub fn flags(path: &[&str]) -> Result<Vec<Flag>, ArgError> {
    let (cmd, inherited) = command_at(path)?;
    let mut out: Vec<Flag> = Vec::new();
    for arg in cmd.get_arguments().chain(inherited.iter()) {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") || out.iter().any(|f| f.long[2..] == *long) {
            continue;
        }
        let kind = match arg.get_action() {
            ArgAction::SetTrue => FlagKind::Switch,
            ArgAction::Append => FlagKind::Many,
            _ => FlagKind::One,
        };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let help = help.split("\n\n").next().unwrap_or("").replace('\n', " ");
        let value_name = (kind != FlagKind::Switch)
            .then(|| arg.get_value_names()?.first().map(|v| v.to_string()))
            .flatten();
        out.push(Flag {
            name: long.replace('-', "_"),
            long: format!("--{long}"),
            kind,
            value_name,
            help,
            default: (kind != FlagKind::Switch)
                .then(|| arg.get_default_values().iter())
                .into_iter()
                .flatten()
                .map(|v| v.to_string_lossy().into_owned())
                .collect(),
            choices: arg
                .get_possible_values()
                .iter()
                .filter(|_| kind != FlagKind::Switch)
                .map(|v| v.get_name().to_owned())
                .collect(),
        });
    }
    Ok(out)
}

/// The command at `path` with `named` flags (`None`-like values are the caller's to leave
/// out), then `fixed` arguments the caller sets itself (`--format jsonl`; their flags
/// cannot be named), then `positional` values: parsed and checked as `estudely` does.
pub fn parse(
    path: &[&str],
    positional: &[String],
    named: &[(String, Value)],
    fixed: &[&str],
) -> Result<Command, ArgError> {
    let known = flags(path)?;
    let mut argv: Vec<String> = std::iter::once("estudely")
        .chain(path.iter().copied())
        .map(String::from)
        .collect();
    for (name, value) in named {
        let flag = known
            .iter()
            .find(|f| f.name == *name)
            .filter(|f| !fixed.contains(&f.long.as_str()))
            .ok_or_else(|| ArgError::Unknown(name.clone()))?;
        let wrong = |want| ArgError::Type {
            name: name.clone(),
            want,
            got: value.kind(),
        };
        match (flag.kind, value) {
            (FlagKind::Switch, Value::Bool(true)) => argv.push(flag.long.clone()),
            (FlagKind::Switch, Value::Bool(false)) => {}
            (FlagKind::Switch, _) => return Err(wrong("bool")),
            (FlagKind::Many, Value::List(items)) => {
                for item in items {
                    let v = item
                        .scalar()
                        .ok_or_else(|| wrong("a list of str or numbers"))?;
                    argv.push(format!("{}={v}", flag.long));
                }
            }
            (kind, v) => {
                let want = if kind == FlagKind::Many {
                    "a list of str or numbers"
                } else {
                    "a str or a number"
                };
                let v = v.scalar().ok_or_else(|| wrong(want))?;
                argv.push(format!("{}={v}", flag.long));
            }
        }
    }
    argv.extend(fixed.iter().map(|s| s.to_string()));
    if !positional.is_empty() {
        argv.push("--".into());
        argv.extend(positional.iter().cloned());
    }
    let matches = Cli::command()
        .try_get_matches_from(&argv)
        .map_err(|e| ArgError::Value(one_line(&e)))?;
    Cli::from_arg_matches(&matches)
        .map(|cli| cli.command)
        .map_err(|e| ArgError::Value(one_line(&e)))
}

/// A clap error as `estudely` prints its first line, without the `error: ` in front.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn flags_are_the_commands_long_options() {
        let collect = flags(&["collect"]).unwrap();
        let find = |n: &str| collect.iter().find(|f| f.name == n).unwrap();
        assert_eq!(find("max_infohashes").kind, FlagKind::One);
        assert_eq!(find("max_infohashes").default, ["20"]);
        assert_eq!(find("bootstrap").kind, FlagKind::Many);
        assert_eq!(find("bootstrap").default.len(), 3);
        assert_eq!(find("allow_private").kind, FlagKind::Switch);
        assert_eq!(find("transport").choices, ["tcp", "utp", "both"]);
        assert!(find("overall_timeout").help.starts_with("Stop after"));
        assert!(collect.iter().all(|f| f.name != "help"));
        let ping = flags(&["query", "ping"]).unwrap();
        assert!(ping.iter().any(|f| f.name == "timeout"), "query's globals");
        assert_eq!(
            flags(&["nope"]).unwrap_err(),
            ArgError::NoCommand("nope".into())
        );
    }

    #[test]
    fn values_are_typed_then_parsed_as_the_cli_does() {
        let ok = named(&[
            ("max_infohashes", Value::Int(3)),
            ("overall_timeout", Value::Float(1.5)),
            (
                "bootstrap",
                Value::List(vec![Value::Str("127.0.0.1:1".into())]),
            ),
            ("allow_private", Value::Bool(true)),
            ("no_harvest", Value::Bool(false)),
        ]);
        let Command::Collect(a) = parse(&["collect"], &[], &ok, &[]).unwrap() else {
            panic!()
        };
        assert_eq!(a.max_infohashes, 3);
        assert_eq!(a.overall_timeout.as_millis(), 1500);
        assert_eq!(a.bootstrap, ["127.0.0.1:1"]);
        assert!(a.net.allow_private && !a.net.no_harvest);

        let err = |pairs: &[(&str, Value)], fixed: &[&str]| {
            parse(&["collect"], &[], &named(pairs), fixed).unwrap_err()
        };
        assert_eq!(
            err(&[("nope", Value::Int(1))], &[]),
            ArgError::Unknown("nope".into())
        );
        assert_eq!(
            err(
                &[("format", Value::Str("csv".into()))],
                &["--format", "jsonl"]
            ),
            ArgError::Unknown("format".into()),
            "a fixed flag cannot be named"
        );
        assert!(matches!(
            err(&[("allow_private", Value::Int(1))], &[]),
            ArgError::Type { want: "bool", .. }
        ));
        assert!(matches!(
            err(&[("rate", Value::Bool(true))], &[]),
            ArgError::Type { got: "bool", .. }
        ));
        let ArgError::Value(msg) = err(&[("rate", Value::Float(-1.0))], &[]) else {
            panic!()
        };
        assert_eq!(
            msg,
            "invalid value '-1' for '--rate <Q>': `-1` must be more than 0 and at most 50000"
        );
    }

    #[test]
    fn positionals_come_last_and_literal() {
        let Command::Query(q) = parse(&["query", "ping"], &["-x:1".into()], &[], &[]).unwrap()
        else {
            panic!()
        };
        assert!(matches!(q.method, crate::args::QueryMethod::Ping { addr } if addr == "-x:1"));
    }
}
