//! Per-tenant overrides: settings an operator changes for one tenant while Skein runs.
//!
//! Today the only setting is `retention`. A tenant's overrides come from two places:
//!
//! - **object storage**, `__skein/overrides/<tenant>.json`, written through the admin API
//!   (`PUT /api/admin/tenants/<tenant>/overrides`) so that every process sees the same value;
//! - **the overrides file** named in the configuration (`compactor.overrides_file`), re-read
//!   while running, for settings kept in version control.
//!
//! For each key the stored value wins over the file, and the file over the global default:
//! the API is how an operator changes a tenant *now*, and a value set there must not be undone
//! silently by the next read of an unchanged file. A `PUT` of `{}` removes the stored values,
//! so the file's (or the default) apply again.
//!
//! Both use the same JSON document per tenant, `{"retention": "7d"}`; the file holds one per
//! tenant: `{"tenants": {"team-a": {"retention": "1d"}}}`. Durations are strings of numbers
//! with units `s`, `m`, `h`, `d`, `w` (`"36h"`, `"1d12h"`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use skein_format::Store;
use skein_format::TenantId;
use skein_format::layout::SYSTEM_PREFIX;

/// Shortest retention accepted: anything shorter would delete blocks about as fast as the
/// ingesters write them.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);

/// Longest retention accepted (100 years); longer values are typing mistakes.
pub const MAX_RETENTION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The settings of one tenant that differ from the defaults. Unset keys fall back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantOverrides {
    /// How long the tenant's blocks are kept, by their newest span.
    pub retention: Option<Duration>,
}

impl TenantOverrides {
    /// Parses and checks a tenant's overrides document. Errors say what to change.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid("overrides", format!("the body is not valid JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Like [`from_json`](Self::from_json), from parsed JSON.
    pub fn from_value(value: &Value) -> Result<Self> {
        let Value::Object(map) = value else {
            return Err(Error::invalid(
                "overrides",
                "expected a JSON object such as {\"retention\": \"7d\"}",
            ));
        };
        let mut out = TenantOverrides::default();
        for (key, v) in map {
            match key.as_str() {
                "retention" => out.retention = parse_retention(v)?,
                other => {
                    return Err(Error::invalid(
                        "overrides",
                        format!("unknown key {other:?}; the known key is \"retention\""),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The document as JSON, e.g. `{"retention":"7d"}`.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        if let Some(r) = self.retention {
            map.insert("retention".into(), Value::String(format_duration(r)));
        }
        Value::Object(map)
    }

    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.retention.is_none()
    }
}

fn parse_retention(v: &Value) -> Result<Option<Duration>> {
    let s = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s,
        Value::Number(_) => {
            return Err(Error::invalid(
                "retention",
                format!(
                    "{v} is a number; write a duration with its unit, such as \"7d\" or \"36h\""
                ),
            ));
        }
        _ => {
            return Err(Error::invalid(
                "retention",
                "expected a duration string such as \"7d\" or \"36h\"",
            ));
        }
    };
    let d = parse_duration(s).map_err(|reason| Error::invalid("retention", reason))?;
    if d < MIN_RETENTION {
        return Err(Error::invalid(
            "retention",
            format!("{s:?} is shorter than the minimum of 1h"),
        ));
    }
    if d > MAX_RETENTION {
        return Err(Error::invalid(
            "retention",
            format!("{s:?} is longer than the maximum of 100 years (36500d)"),
        ));
    }
    Ok(Some(d))
}

/// Parses `"7d"`, `"36h"`, `"1d12h"`, `"90m"`: numbers each followed by a unit `s`, `m`, `h`,
/// `d` or `w`. The error names what is wrong.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("the duration is empty; write it as e.g. \"7d\" or \"36h\"".into());
    }
    if text.starts_with('-') {
        return Err(format!("{s:?} is negative; a duration must be positive"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => {
                return Err(format!(
                    "{s:?} is not a duration: unexpected {c:?}; use numbers with units s, m, h, d or w, such as \"7d\""
                ));
            }
        };
        if digits.is_empty() {
            return Err(format!("{s:?} is not a duration: a unit without a number"));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?} is not a duration: the number is too large"))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?} is too large"))?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "{s:?} has no unit after {digits}; write e.g. \"{digits}d\" or \"{digits}h\""
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration in the largest unit that divides it: `"7d"`, `"36h"`, `"90m"`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    for (unit, name) in [(86_400, "d"), (3600, "h"), (60, "m")] {
        if secs > 0 && secs.is_multiple_of(unit) {
            return format!("{}{name}", secs / unit);
        }
    }
    format!("{secs}s")
}

/// The prefix of the stored overrides.
pub fn overrides_prefix() -> Path {
    Path::from(SYSTEM_PREFIX).join("overrides")
}

/// Where a tenant's stored overrides live.
pub fn overrides_path(tenant: &TenantId) -> Path {
    overrides_prefix().join(format!("{}.json", tenant.as_str()))
}

/// Reads a tenant's stored overrides; `None` when none are stored.
pub async fn read_tenant_overrides(
    store: &Store,
    tenant: &TenantId,
) -> Result<Option<TenantOverrides>> {
    let path = overrides_path(tenant);
    let bytes = match store.get(&path).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    TenantOverrides::from_json(&bytes)
        .map(Some)
        .map_err(|e| Error::corrupt("overrides", &path, e))
}

/// Stores a tenant's overrides (replacing what was stored). An empty document removes them.
pub async fn write_tenant_overrides(
    store: &Store,
    tenant: &TenantId,
    overrides: &TenantOverrides,
) -> Result<()> {
    let path = overrides_path(tenant);
    if overrides.is_empty() {
        return match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    let json = serde_json::to_vec_pretty(&overrides.to_value())
        .map_err(|e| Error::Format(skein_format::Error::Task(e.to_string())))?;
    store.put(&path, PutPayload::from(json)).await?;
    Ok(())
}

/// Reads every tenant's stored overrides. Unreadable documents are logged and skipped.
pub async fn read_all_overrides(store: &Store) -> Result<BTreeMap<TenantId, TenantOverrides>> {
    let prefix = overrides_prefix();
    let objects: Vec<Path> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await?;
    let mut out = BTreeMap::new();
    for path in objects {
        let Some(tenant) = path
            .filename()
            .and_then(|f| f.strip_suffix(".json"))
            .and_then(|t| TenantId::new(t).ok())
        else {
            continue;
        };
        match read_tenant_overrides(store, &tenant).await {
            Ok(Some(o)) => {
                out.insert(tenant, o);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%tenant, error = %e, "ignoring unreadable stored overrides"),
        }
    }
    Ok(out)
}

/// Parses an overrides file: `{"tenants": {"<tenant>": {"retention": "7d"}, ...}}`.
pub fn parse_overrides_file(bytes: &[u8]) -> Result<BTreeMap<TenantId, TenantOverrides>> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid("overrides file", format!("not valid JSON: {e}")))?;
    let Value::Object(top) = value else {
        return Err(Error::invalid(
            "overrides file",
            "expected {\"tenants\": {\"<tenant>\": {\"retention\": \"7d\"}}}",
        ));
    };
    let mut out = BTreeMap::new();
    for (key, v) in top {
        if key != "tenants" {
            return Err(Error::invalid(
                "overrides file",
                format!("unknown key {key:?}; the known key is \"tenants\""),
            ));
        }
        let Value::Object(tenants) = v else {
            return Err(Error::invalid(
                "overrides file",
                "\"tenants\" must be an object keyed by tenant ID",
            ));
        };
        for (name, doc) in tenants {
            let tenant = TenantId::new(&name)?;
            let o = TenantOverrides::from_value(&doc)
                .map_err(|e| Error::invalid("overrides file", format!("tenant {name:?}: {e}")))?;
            out.insert(tenant, o);
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct State {
    file: BTreeMap<TenantId, TenantOverrides>,
    stored: BTreeMap<TenantId, TenantOverrides>,
}

/// The overrides in force: the stored ones, the file's, and the defaults, refreshed by
/// [`refresh`](Overrides::refresh). Shared by the roles of a process.
#[derive(Debug)]
pub struct Overrides {
    store: Store,
    file: Option<PathBuf>,
    default_retention: Duration,
    state: RwLock<State>,
}

impl Overrides {
    /// Overrides read from `store` and, when given, from `file`, over `default_retention`.
    pub fn new(store: Store, default_retention: Duration, file: Option<PathBuf>) -> Self {
        Overrides {
            store,
            file,
            default_retention,
            state: RwLock::new(State::default()),
        }
    }

    /// The global default retention.
    pub fn default_retention(&self) -> Duration {
        self.default_retention
    }

    /// Re-reads the file and the stored overrides. On an error the previous values stay in
    /// force (a typo in the file must not reset every tenant to the default) and the error is
    /// returned for the caller to log.
    pub async fn refresh(&self) -> Result<()> {
        let mut first_error = None;
        if let Some(path) = &self.file {
            let parsed = match tokio::fs::read(path).await {
                Ok(bytes) => parse_overrides_file(&bytes),
                Err(e) => Err(Error::Config(format!(
                    "cannot read overrides file {}: {e}",
                    path.display()
                ))),
            };
            match parsed {
                Ok(file) => write_lock(&self.state).file = file,
                Err(e) => first_error = Some(e),
            }
        }
        match read_all_overrides(&self.store).await {
            Ok(stored) => write_lock(&self.state).stored = stored,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Records a tenant's stored overrides just written, so they apply in this process at
    /// once.
    pub fn set_stored(&self, tenant: &TenantId, overrides: TenantOverrides) {
        let mut state = write_lock(&self.state);
        if overrides.is_empty() {
            state.stored.remove(tenant);
        } else {
            state.stored.insert(tenant.clone(), overrides);
        }
    }

    /// The tenant's retention: stored, else from the file, else the default.
    pub fn retention(&self, tenant: &TenantId) -> Duration {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .stored
            .get(tenant)
            .and_then(|o| o.retention)
            .or_else(|| state.file.get(tenant).and_then(|o| o.retention))
            .unwrap_or(self.default_retention)
    }

    /// What the file says for a tenant (for the admin API's answer).
    pub fn from_file(&self, tenant: &TenantId) -> TenantOverrides {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.file.get(tenant).cloned().unwrap_or_default()
    }
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageConfig;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(format_duration(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(format_duration(Duration::from_secs(14 * 86_400)), "14d");
        for bad in ["", "-1d", "7", "d", "7x", "1.5d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn documents_are_checked_with_clear_errors() {
        let ok = TenantOverrides::from_json(br#"{"retention": "7d"}"#).unwrap();
        assert_eq!(ok.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            TenantOverrides::from_json(&serde_json::to_vec(&ok.to_value()).unwrap()).unwrap(),
            ok
        );
        for (bad, says) in [
            (r#"{"retention": "-1d"}"#, "negative"),
            (r#"{"retention": "soon"}"#, "not a duration"),
            (r#"{"retention": 7}"#, "number"),
            (r#"{"retention": "30m"}"#, "minimum"),
            (r#"{"retention": "200000d"}"#, "maximum"),
            (r#"{"retention_days": 7}"#, "unknown key"),
            (r#"[1]"#, "JSON object"),
            (r#"{"#, "not valid JSON"),
        ] {
            let e = TenantOverrides::from_json(bad.as_bytes()).unwrap_err();
            assert!(
                matches!(e, Error::Format(skein_format::Error::InvalidInput { .. }))
                    && e.to_string().contains(says),
                "{bad}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn stored_wins_over_file_wins_over_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("overrides.json");
        std::fs::write(
            &file,
            r#"{"tenants": {"a": {"retention": "1d"}, "b": {"retention": "2d"}}}"#,
        )
        .unwrap();
        let store = StorageConfig::Memory {}.open().unwrap();
        let (a, b, c) = (
            TenantId::new("a").unwrap(),
            TenantId::new("b").unwrap(),
            TenantId::new("c").unwrap(),
        );
        let day = Duration::from_secs(86_400);
        write_tenant_overrides(
            &store,
            &b,
            &TenantOverrides {
                retention: Some(3 * day),
            },
        )
        .await
        .unwrap();
        let o = Overrides::new(store.clone(), 14 * day, Some(file.clone()));
        o.refresh().await.unwrap();
        assert_eq!(o.retention(&a), day);
        assert_eq!(o.retention(&b), 3 * day);
        assert_eq!(o.retention(&c), 14 * day);
        // A broken file keeps the previous values and reports the error.
        std::fs::write(&file, r#"{"tenants": {"a": {"retention": "-1d"}}}"#).unwrap();
        assert!(o.refresh().await.is_err());
        assert_eq!(o.retention(&a), day);
        // Clearing the stored value lets the file apply again.
        write_tenant_overrides(&store, &b, &TenantOverrides::default())
            .await
            .unwrap();
        std::fs::write(&file, r#"{"tenants": {"b": {"retention": "2d"}}}"#).unwrap();
        o.refresh().await.unwrap();
        assert_eq!(o.retention(&b), 2 * day);
        assert_eq!(o.retention(&a), 14 * day);
    }
}
