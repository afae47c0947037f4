//! Output in crictl's formats: protobuf-JSON (camelCase keys, enum names, 64-bit
//! integers as strings, defaults emitted), `{"status":..,"info":..}` documents,
//! go-template subset, and tab-aligned tables.

use k8s_cri::v1::{
    security_profile::ProfileType, ContainerState, MountPropagation, NamespaceMode,
    PodSandboxState, Protocol,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Which enum a bare `state` field holds.
#[derive(Clone, Copy)]
pub enum Kind {
    Container,
    Pod,
    Other,
}

const INT64_AS_STRING: &[&str] = &[
    "created_at",
    "started_at",
    "finished_at",
    "size",
    "timestamp",
];

pub fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn enum_name(kind: Kind, key: &str, n: i32) -> Option<&'static str> {
    match key {
        "state" => match kind {
            Kind::Container => ContainerState::try_from(n).ok().map(|e| e.as_str_name()),
            Kind::Pod => PodSandboxState::try_from(n).ok().map(|e| e.as_str_name()),
            Kind::Other => None,
        },
        "network" | "pid" | "ipc" | "mode" => {
            NamespaceMode::try_from(n).ok().map(|e| e.as_str_name())
        }
        "propagation" => MountPropagation::try_from(n).ok().map(|e| e.as_str_name()),
        "protocol" => Protocol::try_from(n).ok().map(|e| e.as_str_name()),
        "profile_type" => ProfileType::try_from(n).ok().map(|e| e.as_str_name()),
        _ => None,
    }
}

/// Converts serde's rendering of a prost message (snake_case, numeric enums) into
/// the protobuf JSON mapping as printed by crictl (jsonpb with EmitDefaults).
/// Map-typed fields (labels, annotations, ...) keep their keys.
pub fn pb_json(v: Value, kind: Kind) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let val = match (&val, k.as_str()) {
                    (_, "labels" | "annotations" | "info" | "sysctls" | "unified") => val,
                    (Value::Number(n), key) => match n.as_i64() {
                        Some(i) if enum_name(kind, key, i as i32).is_some() => {
                            Value::String(enum_name(kind, key, i as i32).unwrap().to_string())
                        }
                        _ if INT64_AS_STRING.contains(&key) => Value::String(n.to_string()),
                        _ => val,
                    },
                    // protojson leaves unset message fields out.
                    (Value::Null, _) => continue,
                    _ => pb_json(val, kind),
                };
                out.insert(camel(&k), val);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|x| pb_json(x, kind)).collect()),
        other => other,
    }
}

pub fn to_pb<T: Serialize>(msg: &T, kind: Kind) -> Value {
    pb_json(serde_json::to_value(msg).unwrap_or(Value::Null), kind)
}

/// crictl's outputStatusData for one resource: `{"status": <status>, <info key>:
/// <info value>...}`; a value starting with `{` is parsed as a JSON object, any other
/// is kept as a string with surrounding double quotes removed.
pub fn status_info(
    status: Value,
    extra: Option<(&str, Value)>,
    info: &HashMap<String, String>,
) -> Value {
    let mut m = Map::new();
    m.insert("status".into(), status);
    if let Some((k, v)) = extra {
        m.insert(k.into(), v);
    }
    for (k, raw) in info {
        let v = match raw.starts_with('{') {
            true => serde_json::from_str::<Map<String, Value>>(raw)
                .map(Value::Object)
                .unwrap_or_else(|_| Value::String(raw.clone())),
            false => Value::String(raw.trim_matches('"').to_string()),
        };
        m.insert(k.clone(), v);
    }
    Value::Object(m)
}

/// Several status documents print as an array, a single one as itself.
pub fn one_or_many(mut docs: Vec<Value>) -> Value {
    if docs.len() == 1 {
        docs.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(docs)
    }
}

/// Go's `time.Unix(0, ns).UTC().Format(time.RFC3339Nano)`; `None` is Go's zero time.
pub fn rfc3339_nano(ns: Option<i64>) -> String {
    let Some(ns) = ns else {
        return "0001-01-01T00:00:00Z".into();
    };
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac != 0 {
        out.push_str(format!(".{frac:09}").trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// crictl's marshalContainerStatus: times as RFC 3339 (UTC here); startedAt is the
/// zero time for a created container, finishedAt unless it exited.
pub fn container_status_json(cs: &k8s_cri::v1::ContainerStatus) -> Value {
    let mut v = to_pb(cs, Kind::Container);
    let created = cs.state == ContainerState::ContainerCreated as i32;
    let finished = cs.state == ContainerState::ContainerExited as i32
        || (cs.state == ContainerState::ContainerUnknown as i32 && cs.finished_at > 0);
    if let Value::Object(m) = &mut v {
        m.insert("createdAt".into(), rfc3339_nano(Some(cs.created_at)).into());
        m.insert(
            "startedAt".into(),
            rfc3339_nano((!created).then_some(cs.started_at)).into(),
        );
        m.insert(
            "finishedAt".into(),
            rfc3339_nano(finished.then_some(cs.finished_at)).into(),
        );
    }
    v
}

/// crictl's marshalPodSandboxStatus: createdAt as RFC 3339.
pub fn pod_status_json(ps: &k8s_cri::v1::PodSandboxStatus) -> Value {
    let mut v = to_pb(ps, Kind::Pod);
    if let Value::Object(m) = &mut v {
        m.insert("createdAt".into(), rfc3339_nano(Some(ps.created_at)).into());
    }
    v
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Minimal go-template: `{{.a.b}}`, `{{ .a.b }}`, `{{json .a}}`, `{{.}}`; other text
/// is copied. Values print like Go's template (strings bare, numbers as numbers,
/// missing values as `<no value>`), objects and arrays as JSON.
pub fn go_template(tmpl: &str, v: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = tmpl;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("template: unclosed action in {tmpl:?}"))?;
        let action = after[..end].trim_matches(|c: char| c.is_whitespace() || c == '-');
        let (json, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        if !path.starts_with('.') {
            return Err(format!("template: unsupported action {{{{{action}}}}}"));
        }
        let mut cur = Some(v);
        for seg in path[1..].split('.').filter(|s| !s.is_empty()) {
            cur = cur.and_then(|c| c.get(seg));
        }
        match (cur, json) {
            (Some(c), true) => out.push_str(&serde_json::to_string(c).unwrap_or_default()),
            (None, true) => out.push_str("null"),
            (None, false) | (Some(Value::Null), false) => out.push_str("<no value>"),
            (Some(Value::String(s)), false) => out.push_str(s),
            (Some(c), false) => out.push_str(&c.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders a status document in the format selected with `-o` / `--template`.
pub fn render(v: &Value, format: &str, template: Option<&str>) -> Result<String, String> {
    match format {
        "" | "json" => Ok(pretty(v)),
        "go-template" => go_template(
            template.ok_or("--template is required for go-template output")?,
            v,
        ),
        "yaml" => serde_yaml::to_string(v).map_err(|e| format!("yaml: {e}")),
        other => Err(format!("unsupported output format {other:?}")),
    }
}

/// Left-aligned columns like Go's tabwriter(minwidth 20, padding 3).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max((c.chars().count() + 3).max(20));
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// go-units HumanDuration + " ago", as crictl's CREATED column.
pub fn ago(created_ns: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    format!(
        "{} ago",
        human_duration((now - created_ns).max(0) as u64 / 1_000_000_000)
    )
}

pub fn human_duration(secs: u64) -> String {
    let hours = secs / 3600;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s < 60 * 60 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// go-units HumanSizeWithPrecision (decimal units, `%.{precision}g`): crictl uses
/// precision 3 for images and 4 (HumanSize) for stats.
pub fn human_size(size: u64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size as f64;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    let int_digits = if s >= 100.0 {
        3
    } else if s >= 10.0 {
        2
    } else {
        1
    };
    let digits = precision.saturating_sub(int_digits);
    let mut n = format!("{s:.digits$}");
    if n.contains('.') {
        n = n.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{n}{}", UNITS[i])
}

/// crictl truncates ids to 13 characters in tables.
pub fn trunc_id(id: &str, no_trunc: bool) -> String {
    let id = if no_trunc {
        id
    } else {
        id.strip_prefix("sha256:").unwrap_or(id)
    };
    if no_trunc || id.len() <= 13 {
        id.to_string()
    } else {
        id[..13].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{ContainerMetadata, ContainerStatus};

    #[test]
    fn container_status_doc() {
        let st = ContainerStatus {
            id: "abc".into(),
            metadata: Some(ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            state: ContainerState::ContainerExited as i32,
            created_at: 12,
            exit_code: 3,
            log_path: "/l".into(),
            labels: [("a_b".to_string(), "x".to_string())].into(),
            ..Default::default()
        };
        let v = to_pb(&st, Kind::Container);
        assert_eq!(v["state"], "CONTAINER_EXITED");
        assert_eq!(v["exitCode"], 3);
        assert_eq!(v["createdAt"], "12");
        assert_eq!(v["logPath"], "/l");
        assert_eq!(v["labels"]["a_b"], "x");
        assert_eq!(v["metadata"]["name"], "c");
        let info = [
            ("info".to_string(), r#"{"pid": 42}"#.to_string()),
            ("x".into(), "y z".into()),
            ("q".into(), "\"quoted\"".into()),
            ("n".into(), "12".into()),
        ]
        .into();
        let doc = status_info(v, None, &info);
        assert_eq!(doc["status"]["image"], Value::Null); // unset message: omitted
        assert!(doc["status"].get("image").is_none());
        assert_eq!(doc["info"]["pid"], 42);
        assert_eq!(doc["x"], "y z");
        assert_eq!(doc["q"], "quoted");
        assert_eq!(doc["n"], "12");
        assert_eq!(doc["status"]["id"], "abc");
        assert_eq!(go_template("{{.info.pid}}", &doc).unwrap(), "42");
        assert_eq!(
            go_template("{{ .status.state }}/{{.nope}}", &doc).unwrap(),
            "CONTAINER_EXITED/<no value>"
        );
        assert_eq!(
            go_template("{{json .status.metadata}}", &doc).unwrap(),
            r#"{"attempt":0,"name":"c"}"#
        );
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_nano(None), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(Some(1_700_000_000_123_450_000)),
            "2023-11-14T22:13:20.12345Z"
        );
        assert_eq!(
            rfc3339_nano(Some(951_782_400_000_000_001)),
            "2000-02-29T00:00:00.000000001Z"
        );
        let cs = k8s_cri::v1::ContainerStatus {
            state: ContainerState::ContainerRunning as i32,
            created_at: 1_000_000_000,
            started_at: 2_000_000_000,
            finished_at: 3_000_000_000,
            ..Default::default()
        };
        let v = container_status_json(&cs);
        assert_eq!(v["createdAt"], "1970-01-01T00:00:01Z");
        assert_eq!(v["startedAt"], "1970-01-01T00:00:02Z");
        assert_eq!(v["finishedAt"], "0001-01-01T00:00:00Z");
        assert_eq!(v["state"], "CONTAINER_RUNNING");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_size(1_240_000, 3), "1.24MB");
        assert_eq!(human_size(4_261_000, 3), "4.26MB");
        assert_eq!(human_size(999, 3), "999B");
        assert_eq!(human_size(123_456_789, 3), "123MB");
        assert_eq!(human_size(123_456_789, 4), "123.5MB");
        assert_eq!(human_size(1_089_536, 4), "1.09MB");
        assert_eq!(human_size(0, 4), "0B");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(trunc_id("sha256:0123456789abcdef", false), "0123456789abc");
    }
}
