//! `-o json`: the report as one JSON document (docs/diagnose.md).

use crate::diagnose::report::Report;

pub fn render(report: &Report) -> String {
    // Serializing these plain structs cannot fail (string keys, no maps of
    // other keys); an empty object would still be valid JSON.
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::report::sample;

    /// The documented field names, and `null` for what is unknown.
    #[test]
    fn the_json_has_the_documented_fields() {
        let json: serde_json::Value = serde_json::from_str(&render(&sample::with_kills())).expect("valid JSON");
        for key in
            ["version", "generated_at", "node", "since", "kernel_log", "kills", "groups", "node_memory", "no_kill"]
        {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
        assert_eq!(json["version"], 1);
        assert!(json["since"].is_null() && json["no_kill"].is_null());
        assert_eq!(json["kernel_log"]["kernel_count"], 42);
        let a = &json["groups"][0];
        assert_eq!((a["key"].as_str(), a["kills"].as_u64()), (Some("/test/a"), Some(3)));
        assert_eq!(a["causes"][0], "cgroup_limit");
        assert_eq!(a["victims"][2]["pid"], 12);
        assert_eq!(a["findings"][0]["kind"], "repeated");
        assert_eq!((a["findings"][0]["kills"].as_u64(), a["findings"][0]["in_kills"].as_u64()), (Some(3), Some(2)));
        assert!(a["namespace"].is_null());
        assert_eq!(a["advice"][0]["action"], "raise_limit");
        assert_eq!(json["groups"][1]["container"], "api");
        assert_eq!(json["node_memory"]["kubepods"]["limit_bytes"], serde_json::Value::Null);
        assert_eq!(json["node_memory"]["psi"]["some"]["avg10"], 1.25);
        let quiet: serde_json::Value = serde_json::from_str(&render(&sample::without_kills())).expect("valid JSON");
        assert_eq!(quiet["kills"], 0);
        assert_eq!(quiet["no_kill"]["kubelet_log"]["evicted_pods"][0], "shop/web-1");
        assert!(quiet["node_memory"]["kubepods"].is_null());
    }
}
