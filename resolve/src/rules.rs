//! The static rules (DESIGN.md section 7): each looks at a finished resolution and says what
//! will go wrong, with the exact fix and where. Probe-only codes live in the daemon.

use qwen_env_proto::{Finding, Severity};

use crate::catalog::{Catalog, Class, Family, Url, same_url};
use crate::display::finding;
use crate::envfiles::Origin;
use crate::jsonc::{Loc, Node};
use crate::mask;
use crate::qwen::{AuthType, QwenResolution};
use crate::secrets::{self, FileKind, Hit, Place};
use crate::settings::Scope;
use crate::sources::Sources;

/// `Alibaba Coding Plan / Alibaba Token Plan (sk-sp-)`: whose keys these are, for messages.
pub(crate) fn key_words(fams: &[&Family]) -> String {
    let mut names: Vec<&str> = fams.iter().map(|f| f.name.as_str()).collect();
    names.dedup();
    let mut prefixes: Vec<&str> =
        fams.iter().flat_map(|f| f.key_prefixes.iter().map(String::as_str)).collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    format!("{} ({})", names.join(" / "), prefixes.join(", "))
}

/// `https://a/v1 (label), https://b/v1 (label)`: where keys of these families go; `None` when
/// the catalogue lists no endpoint for them.
pub fn endpoint_list<'a>(fams: impl IntoIterator<Item = &'a Family>) -> Option<String> {
    let list: Vec<String> = fams
        .into_iter()
        .flat_map(|f| f.endpoints.iter())
        .map(|e| format!("{} ({})", e.base_url, e.display()))
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

/// Where to send a key of `fams`, as a fix.
fn send_to(fams: &[&Family], fallback: impl FnOnce() -> String) -> String {
    match endpoint_list(fams.iter().copied()) {
        Some(list) => format!("set the base URL to an endpoint of {}: {list}", key_words(fams)),
        None => fallback(),
    }
}

/// Base-URL rules shared by every host: a path suffix the SDK appends again.
pub fn base_url_rules(base: &str, source: &str, out: &mut Vec<Finding>) {
    let trimmed = base.trim_end_matches('/');
    for suffix in ["/chat/completions", "/completions", "/responses", "/models"] {
        if let Some(fixed) = trimmed.strip_suffix(suffix) {
            out.push(finding(
                "base-url-path-suffix",
                Severity::Error,
                format!("base URL {base} ends in {suffix}: the client appends /chat/completions itself, so requests get 404"),
                format!("set the base URL to {fixed} ({source})"),
                Some(source.to_string()),
            ));
            break;
        }
    }
}

/// Rules about a key and the endpoint it is sent to, shared by every host. `key` is `None` for
/// keychain placeholders (their format was checked when stored); `model` is the id and where it
/// is set (a source such as `/s.json:4:9 model.name`, the location of the model-id rules). What
/// a base URL and a key are is the catalogue's to say ([`Catalog::endpoint_class`],
/// [`Catalog::key_class`]).
#[allow(clippy::too_many_arguments)] // one call per host; a struct would only rename them
pub fn key_endpoint_rules(
    catalog: &Catalog,
    key: Option<&str>,
    key_var: Option<&str>,
    key_source: &str,
    base: Option<&str>,
    base_source: &str,
    model: Option<(&str, &str)>,
    out: &mut Vec<Finding>,
) {
    let (model, model_source) = model.unzip();
    let model_at = model_source.filter(|s| !s.is_empty()).map(location_of);
    let ep_family = base.and_then(|b| catalog.endpoint_family(b));
    let ep = base.and_then(|b| catalog.endpoint_class(b));
    if let Some(k) = key {
        let mut problems = Vec::new();
        if k != k.trim() {
            problems.push("leading or trailing whitespace");
        }
        if k.contains('\r') || k.contains('\n') {
            problems.push("a line break");
        }
        if k.starts_with('"') || k.starts_with('\'') || k.ends_with('"') || k.ends_with('\'') {
            problems.push("quotes");
        }
        if k.trim().to_ascii_lowercase().starts_with("bearer ") {
            problems.push("a \"Bearer \" prefix");
        }
        if !k.is_ascii() {
            problems.push("non-ASCII characters");
        }
        if k.trim().contains(' ') && !problems.contains(&"a \"Bearer \" prefix") {
            problems.push("inner spaces");
        }
        if !problems.is_empty() {
            out.push(finding(
                "key-format",
                Severity::Error,
                format!(
                    "the API key ({key_source}) contains {}: the server will reject it",
                    problems.join(", ")
                ),
                format!("store the bare key only: qwen-env key set {}", key_var.unwrap_or("NAME")),
                Some(key_source.to_string()),
            ));
        }
        let key_fams = catalog.key_families(k);
        let kind = catalog.key_class(k);
        // A known kind of key on an endpoint that only takes its own kind. Keys on OpenAI are
        // base-url-default-openai's; local servers take anything.
        // An OpenRouter key elsewhere is openrouter-base-url's (below), said once.
        if let (Some(e), Some(kc), Some(ef)) = (ep, kind, ep_family)
            && kc != e
            && kc != Class::Openrouter
            && matches!(e, Class::PayAsYouGo | Class::Plan | Class::Openrouter)
        {
            out.push(finding(
                "key-endpoint-class-mismatch",
                Severity::Error,
                format!(
                    "a key of {} on an endpoint of {}: expect 401 (key {key_source}, base URL {base_source})",
                    key_words(&key_fams),
                    ef.name
                ),
                send_to(&key_fams, || {
                    format!("use the key issued for {}", base.unwrap_or("this endpoint"))
                }) + &format!(", or use a key of {}", ef.name),
                Some(key_source.to_string()),
            ));
        }
        if ep == Some(Class::Openai)
            && let (Some(kc), Some(ef)) = (kind, ep_family)
            && kc != Class::Openai
        {
            let host = base.and_then(Url::parse).map_or_else(String::new, |u| u.host().to_owned());
            out.push(finding(
                "base-url-default-openai",
                Severity::Error,
                format!(
                    "requests go to {host} ({base_source}) but the key is not a key of {}",
                    ef.name
                ),
                send_to(&key_fams, || {
                    "set the base URL to the endpoint of the service that issued the key".into()
                }),
                Some(base_source.to_string()),
            ));
        }
        if kind == Some(Class::Openrouter)
            && ep != Some(Class::Openrouter)
            && ep != Some(Class::Openai)
        {
            out.push(finding(
                "openrouter-base-url",
                Severity::Error,
                format!(
                    "a key of {} is sent to {} ({base_source}): expect 401",
                    key_words(&key_fams),
                    base.unwrap_or("the default endpoint")
                ),
                send_to(&key_fams, || "set the base URL to the key's service".into()),
                Some(base_source.to_string()),
            ));
        }
    }
    if ep == Some(Class::Openrouter)
        && let (Some(b), Some(ef)) = (base, ep_family)
        && !ef.endpoints.iter().any(|e| same_url(&e.base_url, b))
    {
        let urls: Vec<&str> = ef.endpoints.iter().map(|e| e.base_url.as_str()).collect();
        out.push(finding(
            "openrouter-base-url",
            Severity::Error,
            format!("{} base URL {b} is not {}", ef.name, urls.join(" or ")),
            format!("set the base URL to {}", urls.join(" or ")),
            Some(base_source.to_string()),
        ));
    }
    // An OpenRouter model id (`qwen/qwen3-coder:free`) sent to an endpoint whose model ids have
    // no provider part: it answers "model not found" (seed 000's OpenRouter set-up half done).
    if matches!(ep, Some(Class::PayAsYouGo | Class::Plan | Class::Openai))
        && let Some(ef) = ep_family
        && let Some(m) = model.filter(|m| openrouter_style(m))
    {
        let router = catalog
            .of_class(Class::Openrouter)
            .filter_map(|f| f.endpoints.first())
            .map(|e| e.base_url.clone())
            .next()
            .unwrap_or_else(|| "OpenRouter's base URL".to_owned());
        let bare = m.split_once('/').map_or(m, |(_, rest)| rest);
        let bare = bare.split_once(':').map_or(bare, |(id, _)| id);
        out.push(finding(
            "openrouter-model-elsewhere",
            Severity::Error,
            format!(
                "model \"{m}\" is an OpenRouter id (provider/model[:tag]), but it is sent to {} ({base_source}), whose model ids have no provider part: expect \"model not found\"",
                ef.name
            ),
            format!(
                "use {}'s own id for the model (e.g. {bare}; GET <base URL>/models lists them), or, to use OpenRouter, set the base URL to {router} with an OpenRouter key",
                ef.name
            ),
            model_at.clone(),
        ));
    }
    if ep == Some(Class::Openrouter)
        && let Some(ef) = ep_family
        && let Some(m) = model
        && !m.contains('/')
    {
        out.push(finding(
            "openrouter-model-format",
            Severity::Error,
            format!("model \"{m}\" is not in {}'s provider/model form", ef.name),
            format!("use e.g. qwen/{m} (the model ids {} lists at GET <base URL>/models)", ef.name),
            model_at,
        ));
    }
}

/// A finding's location from a source as `explain` shows it: `env NAME` and `keychain NAME` are
/// the variable; a file's (`/s.json:4:9 model.name`, `/p/.env:2:1 OPENAI_MODEL`) is itself.
fn location_of(source: &str) -> String {
    let var = source.strip_prefix("env ").or_else(|| source.strip_prefix("keychain "));
    var.unwrap_or(source).to_owned()
}

/// `provider/model` or `provider/model:tag`, as OpenRouter spells model ids: one slash, a
/// lower-case provider part, no spaces.
fn openrouter_style(model: &str) -> bool {
    let Some((provider, rest)) = model.split_once('/') else { return false };
    let provider_ok = !provider.is_empty()
        && provider
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    provider_ok && !rest.is_empty() && !rest.contains(['/', ' '])
}

/// Near-miss and unread names (HOST_TOOLS.md 4.1 "Not read by Qwen Code", issue #822).
const UNREAD: &[(&str, &str)] = &[
    ("OPENAI_API_BASE", "OPENAI_BASE_URL"),
    ("OPENAI_BASEURL", "OPENAI_BASE_URL"),
    ("OPENAI_BASE", "OPENAI_BASE_URL"),
    ("OPENAI_API_URL", "OPENAI_BASE_URL"),
    ("OPENAI_URL", "OPENAI_BASE_URL"),
    ("OPENAI_KEY", "OPENAI_API_KEY"),
    ("QWEN_BASE_URL", "OPENAI_BASE_URL"),
    ("QWEN_API_BASE", "OPENAI_BASE_URL"),
    ("DASHSCOPE_BASE_URL", "OPENAI_BASE_URL"),
    ("BAILIAN_BASE_URL", "OPENAI_BASE_URL"),
    ("QWEN_API_KEY", "an envKey in modelProviders, or OPENAI_API_KEY"),
    ("OPEN_ROUTER_API_KEY", "OPENROUTER_API_KEY"),
];

/// An `envKey` that is not a variable name (a key pasted in its place).
fn envkey_is_secret(k: &str) -> bool {
    secrets::looks_like_key(k) || k.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '_'))
}

fn settings_loc(o: &QwenResolution, path: &[&str]) -> Option<(String, Scope)> {
    o.layers.iter().rev().find_map(|l| l.node.path(path).map(|n| (n.loc.to_string(), l.scope)))
}

/// The Qwen Code rules. `key_plain` is false when the key is a keychain placeholder.
pub fn qwen(
    o: &QwenResolution,
    src: &Sources,
    catalog: &Catalog,
    key_plain: bool,
    out: &mut Vec<Finding>,
) {
    // unresolved-var-reference
    for u in &o.unresolved {
        let used =
            u.path.contains("apiKey") || u.path.contains("baseUrl") || u.path.starts_with("env.");
        out.push(finding(
            "unresolved-var-reference",
            if used { Severity::Error } else { Severity::Warning },
            format!("${} in {} is not defined anywhere: Qwen Code sends the text \"${}\" literally", u.var, u.path, u.var),
            format!("define {} (qwen-env key set {} for a secret, or export it), or replace the reference in {}", u.var, u.var, u.loc),
            Some(u.loc.to_string()),
        ));
    }
    if o.untrusted_workspace {
        out.push(finding(
            "workspace-untrusted",
            Severity::Info,
            "folder trust is on and this folder is not trusted: the workspace settings and project .env are ignored".into(),
            format!("trust the folder in Qwen Code, or add \"{}\": \"TRUST_FOLDER\" to {}", src.cwd.display(), src.qwen.trusted_folders_path.display()),
            Some(src.qwen.trusted_folders_path.display().to_string()),
        ));
    }
    let key_source = o.fields[3].source.clone().unwrap_or_default();
    let base_source = o.fields[2].source.clone().unwrap_or_default();
    if let Some(base) = &o.base_url {
        base_url_rules(base, &base_source, out);
    }
    let key_value = o.key.as_ref().map(|(v, _)| v.as_str());
    if o.auth.is_some() && !matches!(o.auth, Some(AuthType::QwenOauth)) {
        key_endpoint_rules(
            catalog,
            key_value.filter(|_| key_plain),
            o.key_var.as_deref(),
            &key_source,
            o.base_url.as_deref(),
            &base_source,
            o.model.as_deref().map(|m| (m, o.fields[1].source.as_deref().unwrap_or_default())),
            out,
        );
    }
    // One plan's key variable on another plan's endpoint, by envKey name (issue #3704): Coding
    // Plan and Token Plan keys look alike (both sk-sp-) but are not interchangeable.
    if let (Some(p), Some(base)) = (&o.provider, &o.base_url)
        && let Some(var) = p.env_key.as_deref()
        && let Some(ef) = catalog.endpoint_family(base).filter(|f| f.class == Some(Class::Plan))
        && let Some(kf) = catalog.of_class(Class::Plan).find(|f| {
            f.id != ef.id
                && f.env_keys.iter().any(|k| k == var)
                && !ef.env_keys.iter().any(|k| k == var)
        })
    {
        out.push(finding(
            "key-endpoint-class-mismatch",
            Severity::Warning,
            format!(
                "{var} is a key variable of {} on an endpoint of {} ({}): the two plans' keys are not interchangeable",
                kf.name,
                ef.name,
                p.path()
            ),
            format!("point {}.baseUrl at the endpoint of the plan the key belongs to", p.path()),
            Some(p.node.loc.to_string()),
        ));
    }

    // Key missing, envKey unset, local server.
    if let Some(t) = o.auth
        && t != AuthType::QwenOauth
    {
        // An envKey that holds a key is reported by envkey-holds-secret and never echoed.
        let ek =
            o.provider.as_ref().and_then(|p| p.env_key.clone()).filter(|k| !envkey_is_secret(k));
        let ek_set = ek.as_deref().is_some_and(|k| o.env.nonempty(k).is_some());
        if let (Some(p), Some(k)) = (&o.provider, &ek)
            && !ek_set
        {
            let fallback = o.key.is_some();
            out.push(finding(
                "envkey-unset",
                if fallback { Severity::Warning } else { Severity::Error },
                if fallback {
                    format!("{}.envKey names {k}, which no source sets; the key falls back to {key_source}", p.path())
                } else {
                    format!("{}.envKey names {k}, which no source sets (environment, .env files, settings env, keychain)", p.path())
                },
                format!("qwen-env key set {k}"),
                Some(p.node.get("envKey").map_or_else(|| p.node.loc.to_string(), |n| n.loc.to_string())),
            ));
        }
        if o.key.is_none() {
            let local = o
                .base_url
                .as_deref()
                .is_some_and(|b| catalog.endpoint_class(b) == Some(Class::Local));
            if local {
                let var = ek.clone().unwrap_or_else(|| t.key_var().to_string());
                out.push(finding(
                    "local-server-needs-key",
                    Severity::Error,
                    format!("the base URL is a local server and no API key is set: the SDK still needs a non-empty key ({var})"),
                    format!("set any placeholder, e.g. {var}=local in .env (or qwen-env key set {var})"),
                    Some(var),
                ));
            } else if ek.is_none() || ek_set {
                let var = ek.unwrap_or_else(|| t.key_var().to_string());
                out.push(finding(
                    "key-missing",
                    Severity::Error,
                    if o.provider.is_some() {
                        format!("Missing API key for {} auth: the '{var}' environment variable is not set", t.as_str())
                    } else {
                        format!("Missing API key for {} auth: no --openai-api-key, {var} or security.auth.apiKey", t.as_str())
                    },
                    format!("qwen-env key set {var}"),
                    Some(var),
                ));
            }
        }
    }

    // envkey-holds-secret, for every entry.
    for e in &o.entries {
        if let Some(k) = &e.env_key
            && envkey_is_secret(k)
        {
            let loc =
                e.node.get("envKey").map_or_else(|| e.node.loc.to_string(), |n| n.loc.to_string());
            out.push(finding(
                "envkey-holds-secret",
                Severity::Error,
                format!("{}.envKey holds a value, not a variable name: envKey must name the variable that carries the key", e.path()),
                format!("set \"envKey\": \"DASHSCOPE_API_KEY\" (or another name) in {} and store the key with qwen-env key set DASHSCOPE_API_KEY", e.node.loc.file),
                Some(loc),
            ));
        }
    }

    // model-not-in-providers: model.name names no entry although providers exist for T.
    if o.model_from_settings
        && o.provider.is_none()
        && let (Some(t), Some(m)) = (o.auth, &o.model_id)
        && o.entries.iter().any(|e| e.protocol == t)
    {
        let ids: Vec<&str> =
            o.entries.iter().filter(|e| e.protocol == t).map(|e| e.id.as_str()).collect();
        let loc = settings_loc(o, &["model", "name"]).map(|(l, _)| l);
        out.push(finding(
            "model-not-in-providers",
            Severity::Warning,
            format!("model.name \"{m}\" matches no modelProviders.{} entry: a runtime model is built from env and flags instead (entries: {})", t.as_str(), ids.join(", ")),
            format!("set \"model\": {{\"name\": \"{}\"}} or add an entry with \"id\": \"{m}\"", ids[0]),
            loc,
        ));
    }

    workspace_shadow(o, out);

    // generation-config-replaced
    if let Some(p) = &o.provider
        && let Some(gc) = o.merged.path(&["model", "generationConfig"]).and_then(Node::as_object)
        && !gc.is_empty()
    {
        let own = p.node.get("generationConfig");
        let fields: Vec<&str> = gc
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| own.and_then(|g| g.get(k)).is_none())
            .collect();
        if !fields.is_empty() {
            out.push(finding(
                "generation-config-replaced",
                Severity::Warning,
                format!(
                    "model.generationConfig.{{{}}} is ignored for provider model \"{}\" from {}",
                    fields.join(", "),
                    p.id,
                    p.path()
                ),
                format!("move these fields to {}.generationConfig", p.path()),
                o.merged.path(&["model", "generationConfig"]).map(|n| n.loc.to_string()),
            ));
        }
    }

    // selected-type-mismatch: settings pick one protocol while the env triple means another.
    if let Some((loc, _)) = settings_loc(o, &["security", "auth", "selectedType"])
        && o.flags.auth_type.is_none()
        && let Some(t) = o.auth
    {
        let e = |k: &str| o.env.nonempty(k).is_some();
        let env_t = if e("OPENAI_API_KEY")
            && (e("OPENAI_MODEL") || e("QWEN_MODEL"))
            && e("OPENAI_BASE_URL")
        {
            Some(AuthType::Openai)
        } else if e("ANTHROPIC_API_KEY") && e("ANTHROPIC_MODEL") && e("ANTHROPIC_BASE_URL") {
            Some(AuthType::Anthropic)
        } else if e("GEMINI_API_KEY") && e("GEMINI_MODEL") {
            Some(AuthType::Gemini)
        } else {
            None
        };
        if let Some(et) = env_t
            && et != t
        {
            out.push(finding(
                "selected-type-mismatch",
                Severity::Warning,
                format!("security.auth.selectedType is \"{}\" but the environment holds a complete {} triple, which is ignored", t.as_str(), et.as_str()),
                format!("set \"selectedType\": \"{}\" at {loc}, or pass --auth-type {}", et.as_str(), et.as_str()),
                Some(loc),
            ));
        }
    }

    env_rules(o, catalog, out);
    plaintext(&secrets::qwen(src), out);
}

fn workspace_shadow(o: &QwenResolution, out: &mut Vec<Finding>) {
    let Some(ws) = o.layers.iter().find(|l| l.scope == Scope::Workspace) else { return };
    let Some(ws_mp) = ws.node.get("modelProviders").and_then(Node::as_object) else { return };
    for l in o.layers.iter().filter(|l| l.scope < Scope::Workspace) {
        let Some(mp) = l.node.get("modelProviders") else { continue };
        for (pid, ws_arr) in ws_mp {
            let Some(lower) = mp.get(pid).and_then(Node::as_array) else { continue };
            let ids = |a: &[Node]| -> Vec<String> {
                a.iter()
                    .filter_map(|n| n.get("id").and_then(Node::as_str).map(str::to_string))
                    .collect()
            };
            let ws_ids = ids(ws_arr.as_array().unwrap_or(&[]));
            let vanished: Vec<String> =
                ids(lower).into_iter().filter(|i| !ws_ids.contains(i)).collect();
            if vanished.is_empty() {
                continue;
            }
            let selected = o.model_id.as_ref().is_some_and(|m| vanished.contains(m));
            out.push(finding(
                "workspace-shadows-providers",
                if selected { Severity::Error } else { Severity::Warning },
                format!(
                    "workspace modelProviders.{pid} replaces the {} list: {} vanish{}",
                    l.scope.name(),
                    vanished.join(", "),
                    if selected { " (including the selected model)" } else { "" }
                ),
                format!("copy the entries for {} into {} modelProviders.{pid}, or remove modelProviders.{pid} there", vanished.join(", "), ws.file.label),
                Some(ws_arr.loc.to_string()),
            ));
        }
    }
}

fn env_rules(o: &QwenResolution, catalog: &Catalog, out: &mut Vec<Finding>) {
    let sensitive = |name: &str| mask::is_secret_name(name);
    for name in &o.read_vars {
        let cands = o.env.cands(name);
        // empty-env-var: exported empty (counts as unset).
        if cands.iter().any(|c| c.origin == Origin::Process && c.value.is_empty()) {
            let filled = o.env.nonempty(name).is_some();
            out.push(finding(
                "empty-env-var",
                if filled { Severity::Info } else { Severity::Warning },
                format!(
                    "{name} is exported as an empty string, which Qwen Code treats as unset{}",
                    if filled { "; a lower source fills it" } else { "" }
                ),
                format!("unset {name} in your shell (remove the empty export)"),
                Some(name.clone()),
            ));
        }
        // stale-env-shadows: several different non-empty values.
        let nonempty: Vec<_> = cands.iter().filter(|c| !c.value.is_empty()).collect();
        if nonempty.len() >= 2 && nonempty.iter().any(|c| c.value != nonempty[0].value) {
            let show = |c: &crate::envfiles::Cand| -> String {
                match &c.origin {
                    Origin::Keychain(_) => c.source(name),
                    _ if sensitive(name) => {
                        format!("{} ({})", c.source(name), mask::fingerprint(&c.value))
                    }
                    _ => format!("{} ({})", c.source(name), c.value),
                }
            };
            let losers: Vec<String> = nonempty[1..]
                .iter()
                .filter(|c| c.value != nonempty[0].value)
                .map(|c| show(c))
                .collect();
            let keychain_wins = matches!(nonempty[0].origin, Origin::Keychain(_));
            out.push(finding(
                "stale-env-shadows",
                if keychain_wins { Severity::Info } else { Severity::Warning },
                format!("{name} is defined with different values; {} wins over {}", show(nonempty[0]), losers.join(", ")),
                if matches!(nonempty[0].origin, Origin::Process) {
                    format!("unset {name} in your shell (or update it) so the intended value applies; remove the others")
                } else {
                    format!("keep one definition of {name} and remove the others")
                },
                Some(nonempty[0].location(name)),
            ));
        }
    }
    // unread-variable: names Qwen Code never reads, unless an envKey points at them.
    let env_keys: Vec<&str> = o.entries.iter().filter_map(|e| e.env_key.as_deref()).collect();
    for (name, instead) in UNREAD {
        if env_keys.contains(name) {
            continue;
        }
        if let Some(c) = o.env.cands(name).iter().find(|c| !c.value.is_empty()) {
            out.push(finding(
                "unread-variable",
                Severity::Warning,
                format!("{name} is set ({}) but Qwen Code never reads it", c.source(name)),
                format!("rename {name} to {instead} in {}", c.location(name)),
                Some(c.location(name)),
            ));
        }
    }
    // DASHSCOPE_API_KEY set while the key comes from elsewhere (issue #119).
    if !env_keys.contains(&"DASHSCOPE_API_KEY")
        && let Some(c) = o.env.cands("DASHSCOPE_API_KEY").iter().find(|c| !c.value.is_empty())
        && o.auth.is_some()
    {
        out.push(finding(
            "unread-variable",
            Severity::Warning,
            format!("DASHSCOPE_API_KEY is set ({}) but no modelProviders envKey names it: Qwen Code uses {} instead", c.source("DASHSCOPE_API_KEY"), o.fields[3].source.as_deref().unwrap_or("no key")),
            "add \"envKey\": \"DASHSCOPE_API_KEY\" to the modelProviders entry of your DashScope model".into(),
            Some(c.location("DASHSCOPE_API_KEY")),
        ));
    }
    // openai-org-header
    for name in ["OPENAI_ORG_ID", "OPENAI_PROJECT_ID"] {
        if o.env.nonempty(name).is_some()
            && o.base_url
                .as_deref()
                .is_some_and(|b| catalog.endpoint_class(b) != Some(Class::Openai))
        {
            out.push(finding(
                "openai-org-header",
                Severity::Warning,
                format!(
                    "{name} is set: the OpenAI SDK sends it as a header to {}",
                    o.base_url.as_deref().unwrap_or_default()
                ),
                format!("unset {name} (qwen-env run --bare removes it)"),
                Some(name.to_string()),
            ));
        }
    }
}

/// `plaintext-secret` for each literal the secrets scanner found, then
/// `secret-file-permissions` for the files holding them.
pub fn plaintext(hits: &[Hit], out: &mut Vec<Finding>) {
    let mut files: Vec<(String, Option<u32>)> = Vec::new();
    for h in hits {
        let (label, name) = (&h.label, &h.name);
        let (message, fix) = match (&h.place, h.kind) {
            (Place::Line(Loc { line, .. }), _) => (
                format!("a literal key {name} in {label}"),
                format!(
                    "qwen-env key import --scrub (stores {name} in the keychain and deletes line {line} of {label})"
                ),
            ),
            (Place::Member { path, .. }, FileKind::Settings(scope)) => (
                match scope {
                    Some(scope) => format!("a literal key in {path} ({} settings)", scope.name()),
                    None => format!("a literal key in {path} ({label})"),
                },
                format!(
                    "qwen-env key import --scrub (stores it as {name} in the keychain and removes {path} from {label})"
                ),
            ),
            (Place::Member { path, .. }, FileKind::OpenClawProfiles) => (
                format!("a literal key in {label} {path}"),
                format!(
                    "qwen-env key import (stores it as {name} in the keychain), then run openclaw doctor --fix and delete {label}"
                ),
            ),
            (Place::Member { path, .. }, FileKind::OpenClawStore) => (
                format!("a literal key in {label} {path} (OpenClaw keeps profiles in plaintext)"),
                format!(
                    "qwen-env key import (stores it as {name} in the keychain), then remove the {path}: openclaw models auth logout {} --yes",
                    path.strip_prefix("profile ").unwrap_or(path)
                ),
            ),
            (Place::Member { path, .. }, FileKind::OpenClawConfig | FileKind::DotEnv) => (
                format!("a literal key in {label} {path}"),
                format!(
                    "qwen-env key import --scrub (stores it as {name} in the keychain and removes {path} from {label})"
                ),
            ),
        };
        out.push(finding("plaintext-secret", Severity::Warning, message, fix, Some(h.position())));
        if !files.iter().any(|(l, _)| **l == **label) {
            files.push((label.to_string(), h.mode));
        }
    }
    permission_rules(&files, out);
}

/// `secret-file-permissions` for files that hold a secret.
fn permission_rules(files: &[(String, Option<u32>)], out: &mut Vec<Finding>) {
    for (label, mode) in files {
        if let Some(m) = mode
            && m & 0o077 != 0
        {
            out.push(finding(
                "secret-file-permissions",
                Severity::Warning,
                format!("{label} holds a secret and is readable by group or others (mode {m:o})"),
                format!("chmod 600 {label}"),
                Some(label.clone()),
            ));
        }
    }
}

/// Causes and the findings that are only their consequences: when the cause is reported, a
/// consequence is folded into it (its message appended, the cause taking its severity) instead
/// of standing alone with a fix that would not help (`key set OPENAI_API_KEY` when the key is
/// there but its provider entry is ignored).
const FOLDS: &[(&str, &[&str])] = &[
    (
        "unknown-provider-protocol",
        &["key-missing", "envkey-unset", "local-server-needs-key", "model-not-in-providers"],
    ),
    ("envkey-holds-secret", &["key-missing", "envkey-unset", "local-server-needs-key"]),
    ("key-in-other-backend", &["key-missing"]),
    // The key and the model are OpenRouter's; only the base URL is not: one cause.
    ("base-url-default-openai", &["openrouter-model-elsewhere"]),
    ("openrouter-base-url", &["openrouter-model-elsewhere"]),
];

/// Codes that name a cause: listed before the codes of the same severity that are not.
const CAUSES: &[&str] = &[
    "config-parse-error",
    "unknown-provider-protocol",
    "provider-entry-invalid",
    "envkey-holds-secret",
    "invalid-auth-type",
    "oauth-discontinued",
    "workspace-untrusted",
    "workspace-shadows-providers",
    "selected-type-mismatch",
    "untrusted-endpoint",
    "key-in-other-backend",
    "keychain-entry-missing",
    "openclaw-include",
    "openclaw-legacy-auth-profiles",
    "openclaw-profile-store",
];

/// Facts about the machine rather than the setup: last among their severity, and when one
/// repeats (sixteen unreachable endpoints on an offline `key set`) it is said once, with a count.
const ENVIRONMENT: &[&str] = &[
    "endpoint-unreachable",
    "keychain-not-durable",
    "watch-limit",
    "rate-limited",
    "probe-unexpected-status",
    "not-verified",
    "key-age",
];

fn rank(code: &str) -> u8 {
    if CAUSES.contains(&code) {
        0
    } else if ENVIRONMENT.contains(&code) {
        2
    } else {
        1
    }
}

/// The findings as shown: silenced codes dropped; consequences folded into their reported cause
/// ([`FOLDS`]); most severe first, causes before consequences within a severity (stable);
/// one finding per code and message, and per code and variable (the most severe); a repeated
/// environment fact once, with a count.
pub fn finish(mut f: Vec<Finding>, silence: &[String]) -> Vec<Finding> {
    f.retain(|x| !silence.contains(&x.code));
    fold(&mut f);
    f.sort_by_key(|x| (x.severity, rank(&x.code)));
    let mut out: Vec<Finding> = Vec::with_capacity(f.len());
    let mut repeats: Vec<(String, usize)> = Vec::new();
    for x in f {
        if out.iter().any(|o| o.code == x.code && (o.message == x.message || same_variable(o, &x)))
        {
            continue;
        }
        if ENVIRONMENT.contains(&x.code.as_str()) && out.iter().any(|o| o.code == x.code) {
            match repeats.iter_mut().find(|(c, _)| *c == x.code) {
                Some((_, n)) => *n += 1,
                None => repeats.push((x.code.clone(), 1)),
            }
            continue;
        }
        out.push(x);
    }
    for (code, n) in repeats {
        if let Some(o) = out.iter_mut().find(|o| o.code == code) {
            let more =
                if n == 1 { "1 more like it".to_owned() } else { format!("{n} more like it") };
            o.message = format!("{} (and {more})", o.message);
        }
    }
    out
}

/// Two findings of one code about one variable (`stale-env-shadows` from the injection and from
/// the environment rules) say the same thing: the first (most severe) is kept. Findings located
/// in a file are told apart by their message, since not every location has a line yet.
fn same_variable(a: &Finding, b: &Finding) -> bool {
    let variable = |l: &str| {
        l.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    a.location.is_some() && a.location == b.location && a.location.as_deref().is_some_and(variable)
}

/// Folds each consequence of a reported cause into the first finding of that cause.
fn fold(f: &mut Vec<Finding>) {
    for (cause, consequences) in FOLDS {
        let Some(at) = f.iter().position(|x| x.code == *cause) else { continue };
        let mut folded = Vec::new();
        let mut i = 0;
        while i < f.len() {
            if consequences.contains(&f[i].code.as_str()) {
                folded.push(f.remove(i));
            } else {
                i += 1;
            }
        }
        let at = if folded.is_empty() {
            at
        } else {
            f.iter().position(|x| x.code == *cause).unwrap_or(at)
        };
        let c = &mut f[at];
        for x in folded {
            c.severity = c.severity.min(x.severity);
            c.message = format!("{}; because of this, {}: {}", c.message, x.code, x.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_rule() {
        let mut f = Vec::new();
        base_url_rules("https://x/v1/chat/completions", "s", &mut f);
        assert_eq!(f[0].code, "base-url-path-suffix");
        assert!(f[0].fix.contains("https://x/v1 "));
        let mut f = Vec::new();
        base_url_rules("https://x/v1/", "s", &mut f);
        assert!(f.is_empty());
    }

    #[test]
    fn key_format_rule_never_leaks() {
        let mut f = Vec::new();
        key_endpoint_rules(
            &Catalog::builtin(),
            Some("Bearer sk-secretvalue123"),
            Some("K"),
            "env K",
            Some("https://x/v1"),
            "b",
            None,
            &mut f,
        );
        assert_eq!(f[0].code, "key-format");
        assert!(!format!("{f:?}").contains("secretvalue"));
    }

    #[test]
    fn finish_sorts_and_silences() {
        let mk = |c: &str, s| finding(c, s, c.into(), String::new(), None);
        let f = finish(
            vec![
                mk("a", Severity::Info),
                mk("b", Severity::Error),
                mk("c", Severity::Warning),
                mk("d", Severity::Error),
            ],
            &["d".to_string()],
        );
        let codes: Vec<&str> = f.iter().map(|x| x.code.as_str()).collect();
        assert_eq!(codes, ["b", "c", "a"]);
    }

    #[test]
    fn finish_folds_orders_and_collapses() {
        let at = |c: &str, s, loc: &str| {
            finding(c, s, format!("{c} at {loc}"), "fix".into(), Some(loc.into()))
        };
        let f = finish(
            vec![
                at("key-missing", Severity::Error, "OPENAI_API_KEY"),
                at("endpoint-unreachable", Severity::Warning, "a"),
                at("stale-env-shadows", Severity::Warning, "K"),
                at("unknown-provider-protocol", Severity::Warning, "s.json:1:2"),
                at("endpoint-unreachable", Severity::Warning, "b"),
                at("stale-env-shadows", Severity::Info, "K"),
                at("endpoint-unreachable", Severity::Warning, "c"),
                at("base-url-path-suffix", Severity::Warning, "u"),
                at("plaintext-secret", Severity::Warning, "/f.json"),
                finding(
                    "plaintext-secret",
                    Severity::Warning,
                    "other".into(),
                    "fix".into(),
                    Some("/f.json".into()),
                ),
            ],
            &[],
        );
        let codes: Vec<&str> = f.iter().map(|x| x.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "unknown-provider-protocol",
                "stale-env-shadows",
                "base-url-path-suffix",
                "plaintext-secret",
                "plaintext-secret",
                "endpoint-unreachable"
            ]
        );
        // The cause carries its consequence's severity and words, and keeps its own fix.
        assert_eq!(f[0].severity, Severity::Error);
        assert!(
            f[0].message.contains("because of this, key-missing: key-missing at OPENAI_API_KEY")
        );
        assert_eq!(f[1].severity, Severity::Warning);
        assert!(
            f[5].message.ends_with("endpoint-unreachable at a (and 2 more like it)"),
            "{:?}",
            f[5]
        );
        // Finishing again changes nothing.
        assert_eq!(finish(f.clone(), &[]), f);
    }
}
