//! Steps A and B, locations and settings: which settings files Qwen Code reads, whether they
//! parse, and whether folder trust lets the workspace layer in (HOST_TOOLS.md 1.1, 1.2).

use std::sync::Arc;

use qwen_env_proto::{Finding, Severity};

use crate::display::finding;
use crate::jsonc::{Node, Value};
use crate::settings::{self, Scope};
use crate::sources::{SettingsFile, Sources};

/// The settings layers Qwen Code uses, unexpanded, lowest first.
pub(super) struct RawLayers {
    /// Scope, file, and its document (an empty object when it does not parse).
    pub layers: Vec<(Scope, Arc<SettingsFile>, Node)>,
    /// Whether the workspace is trusted (its `.env` is read only then).
    pub trusted: bool,
    /// Whether folder trust dropped an existing workspace layer.
    pub untrusted_workspace: bool,
}

/// A and B: the layer files, a finding for each that does not parse, and folder trust.
pub(super) fn load(src: &Sources, findings: &mut Vec<Finding>) -> RawLayers {
    let files = layer_files(src);
    for (scope, f) in &files {
        if let Err(e) = &f.parsed {
            let (sev, what) = if *scope == Scope::Workspace {
                (
                    Severity::Error,
                    "Qwen Code will copy it to settings.json.corrupted and overwrite it with {}",
                )
            } else {
                (Severity::Error, "Qwen Code refuses to start")
            };
            findings.push(finding(
                "config-parse-error",
                sev,
                format!("{} settings file does not parse: {e}; {what}", scope.name()),
                format!("fix the JSON syntax in {} at line {} column {}", f.label, e.line, e.col),
                Some(format!("{}:{}:{}", f.label, e.line, e.col)),
            ));
        } else if let Ok(n) = &f.parsed
            && !matches!(n.value, Value::Object(_))
        {
            findings.push(finding(
                "config-parse-error",
                Severity::Error,
                format!("{} settings file is not a valid JSON object", scope.name()),
                format!("make the top level of {} an object: {{ … }}", f.label),
                Some(n.loc.to_string()),
            ));
        }
    }
    let raw: Vec<(Scope, Arc<SettingsFile>, Node)> =
        files.iter().map(|(s, f)| (*s, f.clone(), raw_node(f))).collect();
    // Trust is read from the non-workspace layers.
    let pre = settings::merge(raw.iter().filter(|l| l.0 != Scope::Workspace).map(|l| &l.2));
    let trusted = workspace_trusted(src, &pre);
    let untrusted_workspace = !trusted && raw.iter().any(|l| l.0 == Scope::Workspace);
    let raw: Vec<_> = raw.into_iter().filter(|l| trusted || l.0 != Scope::Workspace).collect();

    RawLayers { layers: raw, trusted, untrusted_workspace }
}

fn layer_files(src: &Sources) -> Vec<(Scope, Arc<SettingsFile>)> {
    let q = &src.qwen;
    [
        (Scope::SystemDefaults, &q.system_defaults),
        (Scope::User, &q.user),
        (Scope::Workspace, &q.workspace),
        (Scope::System, &q.system),
    ]
    .into_iter()
    .filter_map(|(s, f)| f.clone().map(|f| (s, f)))
    .collect()
}

fn raw_node(f: &SettingsFile) -> Node {
    match &f.parsed {
        Ok(n) if matches!(n.value, Value::Object(_)) => n.clone(),
        _ => Node::new(Value::Object(Vec::new())),
    }
}

/// Folder trust (HOST_TOOLS.md 1.2): off by default, and then every workspace is trusted. With
/// it on, `trustedFolders.json` maps paths to `TRUST_FOLDER` / `TRUST_PARENT` / `DO_NOT_TRUST`;
/// the longest matching rule decides, and no rule means untrusted.
fn workspace_trusted(src: &Sources, pre: &Node) -> bool {
    let enabled = pre.path(&["security", "folderTrust", "enabled"]).map(|n| &n.value)
        == Some(&Value::Bool(true));
    if !enabled {
        return true;
    }
    let Some(Ok(rules)) = src.qwen.trusted_folders.as_ref().map(|f| &f.parsed) else {
        return false;
    };
    let cwd = src.cwd.to_string_lossy();
    let mut best: Option<(usize, bool)> = None;
    for (path, v) in rules.as_object().unwrap_or(&[]) {
        let (root, trust) = match v.as_str() {
            Some("TRUST_FOLDER") => (path.as_str().to_string(), true),
            Some("TRUST_PARENT") => (
                std::path::Path::new(path)
                    .parent()
                    .map_or(String::new(), |p| p.to_string_lossy().into()),
                true,
            ),
            Some("DO_NOT_TRUST") => (path.clone(), false),
            _ => continue,
        };
        let root = root.trim_end_matches('/');
        if (cwd == root || cwd.starts_with(&format!("{root}/")) || root.is_empty())
            && best.is_none_or(|(l, _)| root.len() >= l)
        {
            best = Some((root.len(), trust));
        }
    }
    best.is_some_and(|(_, t)| t)
}
