//! The OTLP receiver's requests flattened into log records and metric data
//! points, with OTLP's `AnyValue`s as plain JSON. Pure: the receiver's file
//! is read in otlp.rs, which hands its requests here.

use std::collections::BTreeMap;

use serde_json::Value;

/// One log record, flattened.
#[derive(Clone, Debug, Default)]
pub struct LogRecord {
    pub transport: String,
    pub encoding: String,
    pub resource: BTreeMap<String, Value>,
    pub scope_name: String,
    pub event_name: Option<String>,
    /// 1..=24 (`WARN` = 13); 0 when unset.
    pub severity_number: u32,
    pub severity_text: Option<String>,
    /// The body as plain JSON (see [`any_value`]).
    pub body: Value,
    /// Attribute key -> plain JSON value (string, integer, bool, double, ...).
    pub attributes: BTreeMap<String, Value>,
    pub time_unix_nano: Option<u64>,
    pub observed_time_unix_nano: Option<u64>,
    pub raw: Value,
}

impl LogRecord {
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }

    pub fn attr_bool(&self, key: &str) -> Option<bool> {
        self.attributes.get(key).and_then(Value::as_bool)
    }
}

/// One metric data point, flattened.
#[derive(Clone, Debug, Default)]
pub struct MetricPoint {
    pub name: String,
    pub description: String,
    pub unit: String,
    /// `sum`, `gauge`, `histogram`, `exponential_histogram` or `summary`.
    pub kind: String,
    /// Sums only.
    pub monotonic: Option<bool>,
    /// e.g. `AGGREGATION_TEMPORALITY_CUMULATIVE`.
    pub temporality: Option<String>,
    /// `as_int` / `as_double` of sums and gauges, `sum` of the others.
    pub value: Option<f64>,
    /// Histograms and summaries.
    pub count: Option<u64>,
    pub attributes: BTreeMap<String, Value>,
    pub resource: BTreeMap<String, Value>,
    pub scope_name: String,
    pub start_time_unix_nano: Option<u64>,
    pub time_unix_nano: Option<u64>,
    pub transport: String,
    pub raw: Value,
}

impl MetricPoint {
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }
}

/// Every log record of the logs `requests`, in arrival order.
pub fn log_records<'a>(requests: impl IntoIterator<Item = &'a Value>) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for request in requests {
        let transport = request["transport"].as_str().unwrap_or_default();
        let encoding = request["encoding"].as_str().unwrap_or_default();
        for rl in array(&request["request"]["resource_logs"]) {
            let resource = attributes(&rl["resource"]["attributes"]);
            for sl in array(&rl["scope_logs"]) {
                let scope_name = sl["scope"]["name"].as_str().unwrap_or_default();
                for record in array(&sl["log_records"]) {
                    out.push(LogRecord {
                        transport: transport.to_owned(),
                        encoding: encoding.to_owned(),
                        resource: resource.clone(),
                        scope_name: scope_name.to_owned(),
                        event_name: record["event_name"].as_str().filter(|s| !s.is_empty()).map(str::to_owned),
                        severity_number: severity_number(&record["severity_number"]),
                        severity_text: record["severity_text"].as_str().map(str::to_owned),
                        body: any_value(&record["body"]),
                        attributes: attributes(&record["attributes"]),
                        time_unix_nano: as_u64(&record["time_unix_nano"]),
                        observed_time_unix_nano: as_u64(&record["observed_time_unix_nano"]),
                        raw: record.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Every data point of the metric `name` (e.g. `oomtrace.oom_kills`) in the
/// metrics `requests`, in arrival order: with cumulative temporality the last
/// point of a given attribute set holds its current total.
pub fn metric_points<'a>(requests: impl IntoIterator<Item = &'a Value>, name: &str) -> Vec<MetricPoint> {
    let mut out = Vec::new();
    for request in requests {
        let transport = request["transport"].as_str().unwrap_or_default();
        for rm in array(&request["request"]["resource_metrics"]) {
            let resource = attributes(&rm["resource"]["attributes"]);
            for sm in array(&rm["scope_metrics"]) {
                let scope_name = sm["scope"]["name"].as_str().unwrap_or_default();
                for metric in array(&sm["metrics"]).iter().filter(|m| m["name"] == name) {
                    let Some((kind, data)) = ["sum", "gauge", "histogram", "exponential_histogram", "summary"]
                        .iter()
                        .find_map(|k| metric.get(*k).map(|d| (*k, d)))
                    else {
                        continue;
                    };
                    for point in array(&data["data_points"]) {
                        let value = match kind {
                            "sum" | "gauge" => as_f64(&point["as_int"]).or_else(|| as_f64(&point["as_double"])),
                            _ => as_f64(&point["sum"]),
                        };
                        out.push(MetricPoint {
                            name: name.to_owned(),
                            description: metric["description"].as_str().unwrap_or_default().to_owned(),
                            unit: metric["unit"].as_str().unwrap_or_default().to_owned(),
                            kind: kind.to_owned(),
                            monotonic: data["is_monotonic"].as_bool().or(if kind == "sum" {
                                Some(false)
                            } else {
                                None
                            }),
                            temporality: data["aggregation_temporality"].as_str().map(str::to_owned),
                            value,
                            count: as_u64(&point["count"]),
                            attributes: attributes(&point["attributes"]),
                            resource: resource.clone(),
                            scope_name: scope_name.to_owned(),
                            start_time_unix_nano: as_u64(&point["start_time_unix_nano"]),
                            time_unix_nano: as_u64(&point["time_unix_nano"]),
                            transport: transport.to_owned(),
                            raw: point.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A list of OTLP `KeyValue`s as key -> plain value.
pub fn attributes(list: &Value) -> BTreeMap<String, Value> {
    array(list).iter().filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), any_value(&kv["value"])))).collect()
}

/// An OTLP `AnyValue` as plain JSON: strings, integers (int64 arrives as a
/// string and is parsed), bools, doubles, arrays, kvlists as objects, bytes
/// as their base64 string; an empty value as null.
pub fn any_value(v: &Value) -> Value {
    if let Some(s) = v.get("string_value") {
        return s.clone();
    }
    if let Some(i) = v.get("int_value") {
        return match i {
            Value::String(s) => s.parse::<i64>().map_or_else(|_| i.clone(), Value::from),
            other => other.clone(),
        };
    }
    if let Some(b) = v.get("bool_value") {
        return b.clone();
    }
    if let Some(d) = v.get("double_value") {
        return d.clone();
    }
    if let Some(a) = v.get("array_value") {
        return Value::Array(array(&a["values"]).iter().map(any_value).collect());
    }
    if let Some(kv) = v.get("kvlist_value") {
        return Value::Object(attributes(&kv["values"]).into_iter().collect());
    }
    if let Some(b) = v.get("bytes_value") {
        return b.clone();
    }
    Value::Null
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// `SEVERITY_NUMBER_WARN` (how MessageToDict renders the enum) or a number -> 13.
fn severity_number(v: &Value) -> u32 {
    if let Some(n) = v.as_u64() {
        return u32::try_from(n).unwrap_or(0);
    }
    let Some(name) = v.as_str().and_then(|s| s.strip_prefix("SEVERITY_NUMBER_")) else { return 0 };
    let (level, step) = match name.find(|c: char| c.is_ascii_digit()) {
        Some(i) => (&name[..i], name[i..].parse::<u32>().unwrap_or(1)),
        None => (name, 1),
    };
    let base = match level {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => return 0,
    };
    base + step.clamp(1, 4) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_values_and_severities() {
        assert_eq!(severity_number(&Value::from("SEVERITY_NUMBER_WARN")), 13);
        assert_eq!(severity_number(&Value::from("SEVERITY_NUMBER_ERROR3")), 19);
        assert_eq!(any_value(&serde_json::json!({"int_value": "42"})), Value::from(42));
    }
}
