//! Walks a `policy.toml` document (parsed by `toml_edit`, which keeps the
//! position of every key and value), building a [`Policy`] and collecting
//! every problem with its position and dotted key.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{ImDocument, Item, TableLike};

use crate::mounts;
use crate::units::{format_duration, format_size, parse_duration, parse_size};
use crate::{is_identifier, InvalidEntryPoint, Limits, Mount, Policy, PolicyError, PolicyErrors};

/// See [`crate::parse_policy`].
pub(crate) fn parse(text: &str, file: &Path, tenant_dir: &Path) -> Result<Policy, PolicyErrors> {
    let doc = ImDocument::parse(text).map_err(|e| {
        let message = e.message().trim().replace('\n', "; ");
        let hint = e
            .span()
            .and_then(|span| unquoted_unit_hint(text, span.start));
        PolicyError::at(
            file,
            text,
            e.span(),
            "",
            format!("invalid TOML: {message}{}", hint.unwrap_or_default()),
        )
    })?;
    let mut parser = Parser {
        file,
        text,
        tenant_dir,
        errors: Vec::new(),
    };
    let policy = parser.policy(doc.as_table());
    if parser.errors.is_empty() {
        Ok(policy)
    } else {
        Err(PolicyErrors(parser.errors))
    }
}

/// The classic mistake `memory = 256MiB` is a TOML syntax error; say how to fix it.
fn unquoted_unit_hint(text: &str, offset: usize) -> Option<&'static str> {
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let value = line.split_once('=')?.1.trim();
    let looks_like_unit = value.starts_with(|c: char| c.is_ascii_digit())
        && value.contains(|c: char| c.is_ascii_alphabetic());
    looks_like_unit.then_some(" (sizes and durations are strings: quote them, e.g. \"256MiB\")")
}

const TOP_KEYS: [&str; 4] = ["entry", "limits", "env", "mount"];
const LIMIT_KEYS: [&str; 10] = [
    "memory",
    "request_timeout",
    "max_instances",
    "queue_timeout",
    "max_body",
    "recycle_after",
    "idle_timeout",
    "min_idle",
    "max_memory_high_water",
    "log_limit",
];
const MOUNT_KEYS: [&str; 3] = ["path", "guest", "mode"];

/// Positions of a mount's `path` and `guest` values.
type Spans = (Option<Range<usize>>, Option<Range<usize>>);

/// One element of `mount`: the table (if it is one) and its position.
type MountEntry<'i> = (Option<&'i dyn TableLike>, Option<Range<usize>>);

/// Walks the TOML document, building a [`Policy`] and collecting errors.
struct Parser<'a> {
    file: &'a Path,
    text: &'a str,
    tenant_dir: &'a Path,
    errors: Vec<PolicyError>,
}

impl Parser<'_> {
    fn error(&mut self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) {
        self.errors
            .push(PolicyError::at(self.file, self.text, span, key, message));
    }

    fn unknown_key(
        &mut self,
        span: Option<Range<usize>>,
        key: &str,
        name: &str,
        expected: &[&str],
    ) {
        let mut message = format!("unknown key (expected one of: {})", expected.join(", "));
        let simplified = |s: &str| s.to_ascii_lowercase().replace('-', "_");
        if let Some(close) = expected.iter().find(|e| {
            let (a, b) = (simplified(name), simplified(e));
            a == b || a.trim_end_matches('s') == b || b.trim_end_matches('s') == a
        }) {
            message += &format!("; did you mean `{close}`?");
        } else if TOP_KEYS.contains(&name) {
            // Only reachable inside a table: at the top level these keys are known.
            message += &format!(
                "; keys after a [table] header belong to that table: move `{name}` above the first [table]"
            );
        }
        self.error(span, key, message);
    }

    fn type_error(&mut self, item: &Item, span: Option<Range<usize>>, key: &str, expected: &str) {
        let found = item.type_name();
        self.error(span, key, format!("expected {expected}, found {found}"));
    }

    fn policy(&mut self, root: &dyn TableLike) -> Policy {
        let mut policy = Policy::default();
        for (name, item) in root.iter() {
            let key_span = root.key(name).and_then(|k| k.span());
            let span = item.span().or(key_span.clone());
            match name {
                "entry" => match item.as_str() {
                    Some(text) => match text.parse() {
                        Ok(entry) => {
                            policy.entry = entry;
                            policy.entry_set = true;
                        }
                        Err(InvalidEntryPoint(message)) => self.error(span, name, message),
                    },
                    None => self.type_error(item, span, name, "a string \"module:callable\""),
                },
                "limits" => policy.limits = self.limits(item, span),
                "env" => policy.env = self.env(item, span),
                "mount" => policy.mounts = self.mounts(item, span),
                _ => self.unknown_key(key_span, name, name, &TOP_KEYS),
            }
        }
        policy
    }

    fn table<'i>(
        &mut self,
        item: &'i Item,
        span: Option<Range<usize>>,
        key: &str,
    ) -> Option<&'i dyn TableLike> {
        let table = item.as_table_like();
        if table.is_none() {
            self.type_error(item, span, key, &format!("a table ([{key}])"));
        }
        table
    }

    fn limits(&mut self, item: &Item, span: Option<Range<usize>>) -> Limits {
        let mut limits = Limits::default();
        let Some(table) = self.table(item, span, "limits") else {
            return limits;
        };
        let mut min_idle_span = None;
        let mut high_water_span = None;
        for (name, item) in table.iter() {
            let key_span = table.key(name).and_then(|k| k.span());
            let span = item.span().or(key_span.clone());
            let key = format!("limits.{name}");
            let key = key.as_str();
            let l = &mut limits;
            match name {
                "memory" => set(
                    &mut l.memory_bytes,
                    self.size(item, &span, key, 16 << 20, 4 << 30),
                ),
                "max_body" => set(
                    &mut l.max_body_bytes,
                    self.size(item, &span, key, 0, 1 << 30),
                ),
                "log_limit" => set(
                    &mut l.log_limit_bytes,
                    self.size(item, &span, key, 0, 16 << 20),
                ),
                "max_memory_high_water" => {
                    l.memory_high_water = self.size(item, &span, key, 0, u64::MAX);
                    high_water_span = span;
                }
                "request_timeout" => set(
                    &mut l.request_timeout,
                    self.duration(
                        item,
                        &span,
                        key,
                        Duration::from_millis(10),
                        Duration::from_secs(3600),
                    ),
                ),
                "queue_timeout" => set(
                    &mut l.queue_timeout,
                    self.duration(item, &span, key, Duration::ZERO, Duration::from_secs(600)),
                ),
                "idle_timeout" => {
                    if let Some(d) = self.duration(item, &span, key, Duration::ZERO, Duration::MAX)
                    {
                        l.idle_timeout = (!d.is_zero()).then_some(d);
                    }
                }
                "max_instances" => set(
                    &mut l.max_instances,
                    self.integer(item, &span, key, 1, 64).map(|n| n as u32),
                ),
                "min_idle" => {
                    set(
                        &mut l.min_idle,
                        self.integer(item, &span, key, 0, 64).map(|n| n as u32),
                    );
                    min_idle_span = span;
                }
                "recycle_after" => {
                    if let Some(n) = self.integer(item, &span, key, 0, u64::MAX) {
                        l.recycle_after = (n != 0).then_some(n);
                    }
                }
                _ => self.unknown_key(key_span, key, name, &LIMIT_KEYS),
            }
        }
        if limits.min_idle > limits.max_instances {
            self.error(
                min_idle_span,
                "limits.min_idle",
                format!(
                    "must be at most max_instances ({}) (got {})",
                    limits.max_instances, limits.min_idle
                ),
            );
        }
        if let Some(high_water) = limits.memory_high_water {
            if high_water > limits.memory_bytes {
                self.error(
                    high_water_span,
                    "limits.max_memory_high_water",
                    format!(
                        "must be at most memory ({}) (got {})",
                        format_size(limits.memory_bytes),
                        format_size(high_water)
                    ),
                );
            }
        }
        limits
    }

    /// A size: a string with a unit, or a plain integer of bytes; within `min..=max`.
    fn size(
        &mut self,
        item: &Item,
        span: &Option<Range<usize>>,
        key: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let parsed = match (item.as_integer(), item.as_str()) {
            (Some(n), _) => u64::try_from(n).map_err(|_| format!("{n} must not be negative")),
            (_, Some(text)) => parse_size(text),
            _ => {
                self.type_error(item, span.clone(), key, "a size such as \"256MiB\"");
                return None;
            }
        };
        let checked = parsed.and_then(|n| match n {
            n if n < min => Err(format!(
                "must be at least {} (got {})",
                format_size(min),
                format_size(n)
            )),
            n if n > max => Err(format!(
                "must be at most {} (got {})",
                format_size(max),
                format_size(n)
            )),
            n => Ok(n),
        });
        checked
            .map_err(|message| self.error(span.clone(), key, message))
            .ok()
    }

    /// A duration: a string with a unit; within `min..=max`.
    fn duration(
        &mut self,
        item: &Item,
        span: &Option<Range<usize>>,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let parsed = match (item.as_integer(), item.as_str()) {
            (Some(n), _) => Err(format!("{n} needs a unit, e.g. \"30s\"")),
            (_, Some(text)) => parse_duration(text),
            _ => {
                self.type_error(item, span.clone(), key, "a duration such as \"30s\"");
                return None;
            }
        };
        let checked = parsed.and_then(|d| match d {
            d if d < min => Err(format!(
                "must be at least {} (got {})",
                format_duration(min),
                format_duration(d)
            )),
            d if d > max => Err(format!(
                "must be at most {} (got {})",
                format_duration(max),
                format_duration(d)
            )),
            d => Ok(d),
        });
        checked
            .map_err(|message| self.error(span.clone(), key, message))
            .ok()
    }

    /// A plain integer within `min..=max`.
    fn integer(
        &mut self,
        item: &Item,
        span: &Option<Range<usize>>,
        key: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let Some(n) = item.as_integer() else {
            self.type_error(item, span.clone(), key, "an integer");
            return None;
        };
        let checked = match u64::try_from(n) {
            Err(_) => Err(format!("{n} must not be negative")),
            Ok(n) if n < min => Err(format!("must be at least {min} (got {n})")),
            Ok(n) if n > max => Err(format!("must be at most {max} (got {n})")),
            Ok(n) => Ok(n),
        };
        checked
            .map_err(|message| self.error(span.clone(), key, message))
            .ok()
    }

    fn env(&mut self, item: &Item, span: Option<Range<usize>>) -> Vec<(String, String)> {
        let Some(table) = self.table(item, span, "env") else {
            return Vec::new();
        };
        let mut env = Vec::new();
        for (name, item) in table.iter() {
            let key_span = table.key(name).and_then(|k| k.span());
            let span = item.span().or(key_span.clone());
            let key = format!("env.{name}");
            if !is_identifier(name) {
                self.error(
                    key_span,
                    &key,
                    "invalid variable name (letters, digits and '_', not starting with a digit)",
                );
            } else if name.starts_with("WASMPY_") {
                self.error(
                    key_span,
                    &key,
                    "names starting with WASMPY_ are reserved for the sandbox",
                );
            } else if let Some(value) = item.as_str() {
                if value.contains('\0') {
                    self.error(span, &key, "value must not contain NUL characters");
                } else {
                    env.push((name.to_string(), value.to_string()));
                }
            } else {
                let found = item.type_name();
                self.error(
                    span,
                    &key,
                    format!("expected a string, found {found} (quote it: {name} = \"...\")"),
                );
            }
        }
        env.sort();
        env
    }

    fn mounts(&mut self, item: &Item, span: Option<Range<usize>>) -> Vec<Mount> {
        // Accept `[[mount]]` sections as well as `mount = [{ ... }, ...]`.
        let entries: Vec<MountEntry> = if let Some(tables) = item.as_array_of_tables() {
            tables
                .iter()
                .map(|t| (Some(t as &dyn TableLike), t.span()))
                .collect()
        } else if let Some(array) = item.as_array() {
            array
                .iter()
                .map(|v| (v.as_inline_table().map(|t| t as &dyn TableLike), v.span()))
                .collect()
        } else {
            self.type_error(
                item,
                span,
                "mount",
                "an array of tables (write one [[mount]] section, with double brackets, per mount)",
            );
            return Vec::new();
        };

        // Valid mounts with their index in the file and the spans of path and guest.
        let mut accepted: Vec<(usize, Mount, Spans)> = Vec::new();
        for (index, (table, table_span)) in entries.into_iter().enumerate() {
            let prefix = format!("mount[{index}]");
            let Some(table) = table else {
                self.error(
                    table_span,
                    &prefix,
                    "expected a table with path, guest and mode",
                );
                continue;
            };
            let Some((mount, spans)) = self.mount(table, table_span, &prefix) else {
                continue;
            };
            match self.conflict(&accepted, &mount) {
                Some((field, message)) => {
                    let span = if field == "path" { spans.0 } else { spans.1 };
                    self.error(span, &format!("{prefix}.{field}"), message);
                }
                None => accepted.push((index, mount, spans)),
            }
        }
        accepted.into_iter().map(|(_, mount, _)| mount).collect()
    }

    /// Why `mount` cannot coexist with the mounts accepted so far: the field
    /// to blame (`guest` or `path`) and the message.
    fn conflict(
        &self,
        accepted: &[(usize, Mount, Spans)],
        mount: &Mount,
    ) -> Option<(&'static str, String)> {
        for (other, earlier, _) in accepted {
            if mounts::overlaps(&earlier.guest, &mount.guest) {
                let relation = if earlier.guest == mount.guest {
                    "the same as"
                } else {
                    "nested with"
                };
                return Some((
                    "guest",
                    format!(
                        "{:?} is {relation} mount[{other}].guest {:?}; guest paths must not overlap",
                        mount.guest, earlier.guest
                    ),
                ));
            }
            // A directory inside a writable mount could be swapped for a
            // symlink by the app, and would then be followed when the next
            // instance opens it.
            let (inner, outer) = (&mount.host, &earlier.host);
            let nested = |a: &Path, b: &Path| a != b && a.starts_with(b);
            if (nested(inner, outer) && earlier.writable)
                || (nested(outer, inner) && mount.writable)
            {
                return Some((
                    "path",
                    format!(
                        "{} and mount[{other}].path {} are nested and one of them is writable; \
                         the app could replace the inner directory with a symlink",
                        inner.display(),
                        outer.display()
                    ),
                ));
            }
        }
        None
    }

    /// One mount; returns it with the spans of its path and guest if valid.
    fn mount(
        &mut self,
        table: &dyn TableLike,
        table_span: Option<Range<usize>>,
        prefix: &str,
    ) -> Option<(Mount, Spans)> {
        let mut host = None;
        let mut guest = None;
        let mut writable = Some(false);
        let mut complete = true;
        for (name, item) in table.iter() {
            let key_span = table.key(name).and_then(|k| k.span());
            let span = item.span().or(key_span.clone());
            let key = format!("{prefix}.{name}");
            let Some(text) = item.as_str() else {
                if MOUNT_KEYS.contains(&name) {
                    self.type_error(item, span, &key, "a string");
                } else {
                    self.unknown_key(key_span, &key, name, &MOUNT_KEYS);
                }
                complete = false;
                continue;
            };
            match name {
                "path" => match self.host_path(text) {
                    Ok(path) => host = Some((path, span)),
                    Err(message) => self.error(span, &key, message),
                },
                "guest" => match mounts::check_guest_path(text) {
                    Ok(()) => guest = Some((text.to_string(), span)),
                    Err(message) => self.error(span, &key, message),
                },
                "mode" => {
                    writable = match text {
                        "ro" => Some(false),
                        "rw" => Some(true),
                        _ => {
                            self.error(span, &key, format!("{text:?} is not \"ro\" or \"rw\""));
                            None
                        }
                    }
                }
                _ => {
                    self.unknown_key(key_span, &key, name, &MOUNT_KEYS);
                    complete = false;
                }
            }
        }
        for required in ["path", "guest"] {
            if table.get(required).is_none() {
                self.error(
                    table_span.clone(),
                    &format!("{prefix}.{required}"),
                    "missing (required)",
                );
            }
        }
        let ((host, path_span), (guest, guest_span)) = (host?, guest?);
        let mount = Mount {
            host,
            guest,
            writable: writable?,
        };
        complete.then_some((mount, (path_span, guest_span)))
    }

    fn host_path(&self, path: &str) -> Result<PathBuf, String> {
        let tenant_dir = fs::canonicalize(self.tenant_dir).map_err(|e| {
            format!(
                "cannot resolve tenant directory {}: {e}",
                self.tenant_dir.display()
            )
        })?;
        mounts::check_host_path(&tenant_dir, path)
    }
}

/// Stores `value` in `slot` if present (absent means an error was recorded).
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}
