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

/// crictl's outputStatusInfo: `{"status": <status>, <info key>: <info value parsed
/// as JSON, else as string>...}`, keys sorted.
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
    let mut keys: Vec<_> = info.keys().collect();
    keys.sort();
    for k in keys {
        let raw = &info[k];
        let v = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone()));
        m.insert(k.clone(), v);
    }
    Value::Object(m)
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
        "yaml" => Err("yaml output is not supported by this crictl; use -o json".into()),
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

/// go-units HumanSizeWithPrecision(size, 3) (decimal units).
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size as f64;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    let digits = if s >= 100.0 {
        0
    } else if s >= 10.0 {
        1
    } else {
        2
    };
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
    fn container_status_json() {
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
        ]
        .into();
        let doc = status_info(v, None, &info);
        assert_eq!(doc["info"]["pid"], 42);
        assert_eq!(doc["x"], "y z");
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
    fn human_units() {
        assert_eq!(human_size(1_240_000), "1.24MB");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(trunc_id("sha256:0123456789abcdef", false), "0123456789abc");
    }
}
