//! Step D, second half: the validation of `modelProviders`, which needs no auth type
//! (HOST_TOOLS.md 3.1). Entries Qwen Code rejects are findings here and never match in step F.

use qwen_env_proto::{Finding, Severity};

use super::{AuthType, Entry};
use crate::display::finding;
use crate::jsonc::Node;

/// Validate `modelProviders` (HOST_TOOLS.md 3.1) and return the usable entries in candidate
/// order (provider keys in object order, then array order), first `(id, baseUrl)` kept.
pub(super) fn validate_providers(merged: &Node, findings: &mut Vec<Finding>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let Some(mp) = merged.get("modelProviders") else { return out };
    let Some(groups) = mp.as_object() else {
        findings.push(finding(
            "provider-entry-invalid",
            Severity::Warning,
            "modelProviders is not an object: it is ignored".into(),
            "make modelProviders an object of provider id → array of models".into(),
            Some(mp.loc.to_string()),
        ));
        return out;
    };
    let mapping = merged.get("providerProtocol");
    for (pid, arr) in groups {
        let protocol = if let Some(t) = AuthType::parse(pid) {
            t
        } else {
            let mapped = mapping.and_then(|m| m.get(pid));
            if let Some(t) = mapped.and_then(Node::as_str).and_then(AuthType::parse) {
                t
            } else {
                let n = arr.as_array().map_or(0, <[Node]>::len);
                let (msg, fix, loc) = if let Some(bad) = mapped {
                    (
                        format!(
                            "providerProtocol[\"{pid}\"] is not a known protocol: its {n} model(s) are ignored"
                        ),
                        format!(
                            "set \"providerProtocol\": {{\"{pid}\": \"openai\"}} (or another of openai, openai-responses, anthropic, gemini, vertex-ai)"
                        ),
                        bad.loc.to_string(),
                    )
                } else {
                    (
                        format!(
                            "modelProviders provider \"{pid}\" is not a built-in protocol (openai, qwen-oauth, gemini, vertex-ai, anthropic) and has no providerProtocol mapping; its {n} model(s) are ignored"
                        ),
                        format!(
                            "set \"providerProtocol\": {{\"{pid}\": \"openai\"}} in {}, or move its models under modelProviders.openai",
                            arr.loc.file
                        ),
                        arr.loc.to_string(),
                    )
                };
                findings.push(finding(
                    "unknown-provider-protocol",
                    Severity::Warning,
                    msg,
                    fix,
                    Some(loc),
                ));
                continue;
            }
        };
        let Some(items) = arr.as_array() else {
            findings.push(finding(
                "provider-entry-invalid",
                Severity::Warning,
                format!("modelProviders.{pid} is not an array (the legacy {{protocol, models}} wrapper?): it is skipped"),
                format!("make modelProviders.{pid} an array of model entries: [{{\"id\": …, \"baseUrl\": …, \"envKey\": …}}]"),
                Some(arr.loc.to_string()),
            ));
            continue;
        };
        if protocol == AuthType::QwenOauth {
            continue;
        }
        for (i, item) in items.iter().enumerate() {
            let path = format!("modelProviders.{pid}[{i}]");
            let Some(id) = item.get("id").and_then(Node::as_str).filter(|s| !s.is_empty()) else {
                findings.push(finding(
                    "provider-entry-invalid",
                    Severity::Error,
                    format!(
                        "Model config in authType '{}' missing required field: id ({path})",
                        protocol.as_str()
                    ),
                    format!("add \"id\": \"MODEL\" to {path}"),
                    Some(item.loc.to_string()),
                ));
                continue;
            };
            if let Some(w) = item.get("wireApi") {
                let ok_proto = matches!(protocol, AuthType::Openai | AuthType::OpenaiResponses);
                let ok_val = matches!(w.as_str(), Some("chat-completions" | "responses"));
                if !ok_proto || !ok_val {
                    findings.push(finding(
                        "provider-entry-invalid",
                        Severity::Error,
                        format!("{path}.wireApi is invalid (only \"chat-completions\" or \"responses\", and only on OpenAI protocols): Qwen Code stops with a fatal config error"),
                        format!("remove \"wireApi\" from {path} or set it to \"chat-completions\""),
                        Some(w.loc.to_string()),
                    ));
                    continue;
                }
            }
            let base_url = item.get("baseUrl").and_then(Node::as_str).map(str::to_string);
            if let Some(first) =
                out.iter().find(|e| e.protocol == protocol && e.id == id && e.base_url == base_url)
            {
                findings.push(finding(
                    "duplicate-model-id",
                    Severity::Warning,
                    format!("{path} repeats id \"{id}\" with the same baseUrl as {}: the later entry is ignored", first.path()),
                    format!("remove {path} or give it a different id"),
                    Some(item.get("id").map_or(&item.loc, |n| &n.loc).to_string()),
                ));
                continue;
            }
            out.push(Entry {
                pid: pid.clone(),
                index: i,
                protocol,
                id: id.to_string(),
                base_url,
                env_key: item.get("envKey").and_then(Node::as_str).map(str::to_string),
                node: item.clone(),
            });
        }
    }
    out
}
