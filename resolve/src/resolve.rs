//! The public entry point: resolve for the detected host, overlay the keychain for `run`
//! (DESIGN.md section 6), build the [`Plan`], run the rules and finish the findings.

use std::collections::BTreeMap;
use std::path::Path;

use qwen_env_proto::{CallerContext, Field, Finding, Resolution, SecretValue, Severity};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::display::{Cand, Show, Shower, field, finding};
use crate::envfiles::{EnvView, Origin};
use crate::mask;
use crate::qwen::{self, AuthType, KeySource};
use crate::sources::{Host, Sources};
use crate::{generic, openclaw, rules, secrets};

/// Non-secret view of what the OS keychain holds (the daemon fills it from its metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeychainView {
    /// Entries by name (the variable they feed).
    pub entries: BTreeMap<String, KeyMeta>,
}

/// Metadata of one keychain entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    /// `sha256:` + 12 hex.
    pub fingerprint: String,
    /// `sk-…a289`.
    pub masked: String,
    /// When its current value was stored (Unix seconds): `key-age` counts from here.
    pub stored: u64,
}

/// Everything a resolution depends on besides the files.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    /// Who asks, where, for which command.
    pub caller: &'a CallerContext,
    /// The caller's home directory.
    pub home: &'a Path,
    /// Resolve as the host would today, without the keychain overlay.
    pub as_is: bool,
    /// `run --bare`.
    pub bare: bool,
    /// `--with` names.
    pub with: &'a [String],
    /// `--profile`.
    pub profile: Option<&'a str>,
    /// Variables to explain.
    pub variables: &'a [String],
    /// The keychain's metadata.
    pub keychain: &'a KeychainView,
    /// Our config.
    pub config: &'a Config,
    /// The endpoint catalogue in force (the base catalogue with the config's `[[family]]`
    /// tables applied): what the static rules know about hosts, plans and key prefixes.
    pub catalog: &'a Catalog,
    /// Now (Unix seconds), for `key-age`.
    pub now: u64,
}

/// What `qwen-env run` must do to the child, beyond what the caller already has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Keychain entries to set in the child: (keychain entry name, child variable). Usually the
    /// same name; under `--bare` the key lands in the protocol's variable (`OPENAI_API_KEY`).
    pub inject_as: Vec<(String, String)>,
    /// Non-secret variables to set.
    pub vars: Vec<(String, String)>,
    /// Secrets that are not in the keychain but must be passed on under `--bare` (a key from a
    /// `.env` file or settings, which `--bare` no longer reads). `SecretValue`'s `Debug` is
    /// redacted.
    pub secret_vars: Vec<(String, SecretValue)>,
    /// Variables to remove.
    pub unset: Vec<String>,
    /// Arguments to insert after the program name.
    pub extra_args: Vec<String>,
    /// What `run` changed, in words.
    pub notes: Vec<String>,
    /// The key the resolved request carries, for the daemon's probes (DESIGN.md section 8).
    pub probe_key: Option<KeyRef>,
}

/// Where the resolved key's value is: the resolver never holds keychain secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A keychain entry, by name: the daemon fetches the value.
    Keychain(String),
    /// A value from a file, the environment or a flag.
    Plain(SecretValue),
}

impl KeyRef {
    fn of(value: &str) -> Option<KeyRef> {
        if let Some((name, _)) = parse_placeholder(value) {
            Some(KeyRef::Keychain(name.to_string()))
        } else if value.contains(PH) || value.is_empty() {
            // A keychain value inside a longer string: not a key a probe could send as is.
            None
        } else {
            Some(KeyRef::Plain(SecretValue::new(value.to_string())))
        }
    }
}

const PH: char = '\u{1}';

#[cfg(test)]
thread_local! {
    /// How many times `qwen::resolve` ran on this thread (tests check the injection loop).
    pub(crate) static QWEN_RUNS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The value a keychain entry has inside the resolver: a placeholder naming the entry and its
/// fingerprint (the resolver never sees the secret; the daemon injects it).
pub fn keychain_placeholder(name: &str, meta: &KeyMeta) -> String {
    format!("{PH}keychain:{name}:{}{PH}", meta.fingerprint)
}

fn parse_placeholder(v: &str) -> Option<(&str, &str)> {
    let inner = v.strip_prefix(PH)?.strip_suffix(PH)?.strip_prefix("keychain:")?;
    inner.split_once(':')
}

struct KcShower<'a>(&'a KeychainView);

impl Shower for KcShower<'_> {
    fn show(&self, value: &str) -> (String, String) {
        if let Some((name, fp)) = parse_placeholder(value) {
            let masked =
                self.0.entries.get(name).map_or_else(|| "***".to_string(), |m| m.masked.clone());
            return (masked, fp.to_string());
        }
        if value.contains(PH) {
            // A keychain value expanded inside a longer settings string.
            return ("(contains a keychain value)".into(), String::new());
        }
        (mask::masked(value), mask::fingerprint(value))
    }
}

/// Resolve the caller's configuration. Returns what the host will use (with the keychain
/// overlay unless `as_is`) and what `run` must do.
pub fn resolve(src: &Sources, p: &Params<'_>) -> (Resolution, Plan) {
    let shower = KcShower(p.keychain);
    let mut plan = Plan::default();
    // Files found but not read (FIFOs, devices, oversized files) come first.
    let mut findings: Vec<Finding> = src.findings.clone();

    // Extra keys: --with and the profile (for every host); `[generic] keys` only for generic
    // commands with neither.
    let extra = match generic::keys(p.with, p.profile, p.config, src.host == Host::Generic) {
        Ok(k) => k,
        Err(name) => {
            findings.push(finding(
                "unknown-profile",
                Severity::Error,
                format!("profile \"{name}\" is not defined in the qwen-env config"),
                format!("add [profile.{name}] keys = [\"NAME\", …] to config.toml"),
                None,
            ));
            p.with.to_vec()
        }
    };
    let mut inject: Vec<String> = Vec::new();
    if !p.as_is {
        for k in &extra {
            if p.keychain.entries.contains_key(k) {
                inject.push(k.clone());
            } else {
                findings.push(finding(
                    "keychain-entry-missing",
                    Severity::Warning,
                    format!("{k} was asked for (--with / profile) but the keychain has no entry of that name"),
                    format!("qwen-env key set {k}"),
                    Some(k.clone()),
                ));
            }
        }
    }
    let ph = |name: &str| keychain_placeholder(name, &p.keychain.entries[name]);

    let mut res = Resolution { tool: src.host.tool().to_string(), ..Resolution::default() };
    let env_view: EnvView;
    match src.host {
        Host::Qwen => {
            let all_args: &[String] = p.caller.argv.get(1..).unwrap_or(&[]);
            // Under `run --bare` the triple comes from the normal resolution, even when the user
            // also typed `--bare` for Qwen Code (which is then not added a second time).
            let user_bare = all_args.iter().any(|a| a == "--bare");
            let stripped: Vec<String>;
            let args: &[String] = if p.bare && !p.as_is && user_bare {
                stripped = all_args.iter().filter(|a| *a != "--bare").cloned().collect();
                &stripped
            } else {
                all_args
            };
            // One resolution with the given keychain entries injected as process environment.
            // `qwen::resolve` is pure and the order of injections does not matter (each names
            // another variable), so a set of injections already resolved is not resolved again:
            // dropping a key that did not help returns to a resolution made before.
            let mut seen: Vec<(Vec<String>, qwen::QwenResolution)> = Vec::new();
            let mut run = |inject: &[String]| -> qwen::QwenResolution {
                let mut set = inject.to_vec();
                set.sort();
                if let Some((_, r)) = seen.iter().find(|(s, _)| *s == set) {
                    return r.clone();
                }
                let inj: Vec<(String, String, String)> =
                    inject.iter().map(|n| (n.clone(), ph(n), n.clone())).collect();
                #[cfg(test)]
                QWEN_RUNS.with(|n| n.set(n.get() + 1));
                let r = qwen::resolve(&qwen::Input {
                    src,
                    env0: &p.caller.env,
                    args,
                    inject: &inj,
                    shower: &shower,
                });
                seen.push((set, r.clone()));
                r
            };
            // The first resolution is what the tool gets from its own files and environment
            // (plus any --with keys). Then, while a variable the key can be read from ranks above
            // the one it comes from now and the keychain holds it, that variable is injected:
            // the provider's envKey, `KEY`, a `$VAR` in security.auth.apiKey (`key_reads`).
            let mut out = run(&inject);
            let own_key = out.key.clone();
            let mut added: Vec<String> = Vec::new();
            while !p.as_is
                && let Some(v) = next_injection(&out, &inject, p.keychain)
            {
                inject.push(v.clone());
                added.push(v);
                out = run(&inject);
            }
            // Least privilege: a key added above that changes neither the auth type nor the key
            // (it lost to a flag or a higher-precedence variable, or an OPENAI_API_KEY that did
            // not complete the inference triple) is not passed on.
            for v in added.iter().rev() {
                let Some(i) = inject.iter().position(|k| k == v) else { continue };
                let mut without = inject.clone();
                without.remove(i);
                let r = run(&without);
                if r.auth == out.auth && r.key == out.key {
                    inject = without;
                    out = r;
                }
            }
            if !p.as_is {
                replaced_note(own_key.as_ref(), out.key.as_ref(), &mut plan);
            }
            let key_plain = !matches!(&out.key, Some((v, _)) if v.contains(PH));
            findings.append(&mut out.findings);
            rules::qwen(&out, src, p.catalog, key_plain, &mut findings);
            [res.auth_type, res.model, res.base_url, res.api_key] = out.fields.clone();
            if p.bare && !p.as_is {
                bare_plan(&out, user_bare, &mut plan);
            }
            plan.probe_key = out.key.as_ref().and_then(|(v, _)| KeyRef::of(v));
            env_view = out.env;
        }
        Host::OpenClaw => {
            let mut out;
            let mut guard = 0;
            let held: Vec<String> =
                if p.as_is { Vec::new() } else { p.keychain.entries.keys().cloned().collect() };
            loop {
                let inj: Vec<(String, String)> =
                    inject.iter().map(|n| (n.clone(), ph(n))).collect();
                out = openclaw::resolve(
                    src,
                    &p.caller.argv,
                    &p.caller.env,
                    &inj,
                    &held,
                    &shower,
                    p.catalog,
                );
                guard += 1;
                if p.as_is || guard > 4 {
                    break;
                }
                // The provider's variable that wins (or would, once set) and the keychain
                // holds; nothing when a stored profile or a pinned config key wins anyway.
                let env_wins = matches!(out.winner, None | Some(openclaw::Winner::Env(_)))
                    || matches!(out.winner, Some(openclaw::Winner::ConfigLiteral));
                let want = if env_wins {
                    out.key_var
                        .clone()
                        .filter(|v| {
                            out.key_vars.contains(&v.as_str()) && p.keychain.entries.contains_key(v)
                        })
                        .or_else(|| {
                            out.key_vars
                                .iter()
                                .find(|v| p.keychain.entries.contains_key(**v))
                                .map(|v| (*v).to_string())
                        })
                } else {
                    None
                };
                match want {
                    Some(v) if !inject.contains(&v) => inject.push(v),
                    _ => break,
                }
            }
            findings.append(&mut out.findings);
            [res.auth_type, res.model, res.base_url, res.api_key] = out.fields.clone();
            plan.probe_key = out.key.as_deref().and_then(KeyRef::of);
            env_view = out.env;
        }
        Host::Generic => {
            let mut env = EnvView::from_process(&p.caller.env);
            for n in &inject {
                env.inject(n, ph(n), Origin::Keychain(n.clone()));
            }
            if let Some(first) = extra.first() {
                res.api_key = var_field(&env, first, &shower);
            }
            if extra.is_empty() {
                findings.push(finding(
                    "no-keys-for-command",
                    Severity::Info,
                    "this command is not Qwen Code or OpenClaw and no keys were named".into(),
                    "pass --with NAME, --profile P, or set [generic] keys = [\"NAME\"] in config.toml".into(),
                    None,
                ));
            }
            env_view = env;
        }
    }

    // What run injects and what it replaced.
    for n in &inject {
        if !plan.inject_as.iter().any(|(k, _)| k == n) {
            plan.inject_as.push((n.clone(), n.clone()));
        }
        let meta = &p.keychain.entries[n];
        if let Some((_, old)) = p.caller.env.iter().rev().find(|(k, _)| k == n)
            && !old.is_empty()
        {
            let old_fp = mask::fingerprint(old);
            if old_fp != meta.fingerprint {
                plan.notes.push(format!(
                    "replaced the exported {n} ({old_fp}) with the keychain's {n} ({})",
                    meta.fingerprint
                ));
                findings.push(finding(
                    "stale-env-shadows",
                    Severity::Warning,
                    format!("the exported {n} ({old_fp}) differs from the keychain's ({}); qwen-env run replaces it, plain {} would use the stale one", meta.fingerprint, res.tool),
                    format!("unset {n} in your shell profile (the keychain holds it)"),
                    Some(n.clone()),
                ));
            }
        }
        let days = p.now.saturating_sub(meta.stored) / 86_400;
        if meta.stored > 0 && days > p.config.rotate_after_days {
            findings.push(finding(
                "key-age",
                Severity::Warning,
                format!(
                    "keychain entry {n} is {days} days old (rotate_after_days = {})",
                    p.config.rotate_after_days
                ),
                format!("rotate the key at its provider, then qwen-env key set {n}"),
                Some(n.clone()),
            ));
        }
    }

    res.variables =
        p.variables.iter().map(|v| (v.clone(), var_field(&env_view, v, &shower))).collect();
    res.findings = rules::finish(findings, &p.config.silence);
    let mut known = secrets::known_values(src, &p.caller.env);
    for k in pasted_keys(&res) {
        if !known.contains(&k) {
            known.push(k);
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    known.sort_by_key(|v| std::cmp::Reverse(v.len()));
    redact(&mut res, &known);
    (res, plan)
}

/// A variable's field: winner, source, shadowed; masked when it looks secret.
fn var_field(env: &EnvView, name: &str, shower: &dyn Shower) -> Field {
    let secret = mask::is_secret_name(name);
    let winner = env.winner(name).map(std::ptr::from_ref);
    let cands: Vec<Cand> = env
        .cands(name)
        .iter()
        .map(|c| {
            let show = if secret || c.value.contains(PH) { Show::Secret } else { Show::Text };
            Cand::new(c.value.clone(), c.source(name), winner == Some(std::ptr::from_ref(c)), show)
        })
        .collect();
    field(&cands, shower, Some(name.to_string())).1
}

/// `--bare` (HOST_TOOLS.md "Broker recipe"): Qwen Code then reads neither settings nor `.env`,
/// so the key, base URL and model of the normal resolution are handed over as the protocol's
/// variables, and the SDK's organisation headers are removed.
fn bare_plan(out: &qwen::QwenResolution, user_bare: bool, plan: &mut Plan) {
    let Some(t) = out.auth else { return };
    if !user_bare {
        plan.extra_args.push("--bare".into());
    }
    if t == AuthType::OpenaiResponses && out.flags.auth_type.is_none() {
        plan.extra_args.push("--auth-type".into());
        plan.extra_args.push("openai-responses".into());
    }
    let (key_var, base_var, model_var) = match t {
        AuthType::Anthropic => ("ANTHROPIC_API_KEY", Some("ANTHROPIC_BASE_URL"), "ANTHROPIC_MODEL"),
        AuthType::Gemini => ("GEMINI_API_KEY", None, "GEMINI_MODEL"),
        AuthType::VertexAi => ("GOOGLE_API_KEY", None, "GOOGLE_MODEL"),
        _ => ("OPENAI_API_KEY", Some("OPENAI_BASE_URL"), "OPENAI_MODEL"),
    };
    if let (Some(b), Some(bv)) = (&out.base_url, base_var) {
        plan.vars.push((bv.to_string(), b.clone()));
    }
    if let Some(m) = &out.model {
        plan.vars.push((model_var.to_string(), m.clone()));
    }
    plan.vars.push(("QWEN_USAGE_STATISTICS_ENABLED".into(), "false".into()));
    match &out.key {
        Some((v, KeySource::Env(_, Origin::Keychain(entry)))) if v.contains(PH) => {
            plan.inject_as.push((entry.clone(), key_var.to_string()));
            if entry != key_var {
                plan.notes.push(format!("--bare: the keychain's {entry} is set as {key_var}"));
            }
        }
        Some((_, KeySource::Env(var, Origin::Process))) if var == key_var => {}
        Some((v, ks)) => {
            plan.secret_vars.push((key_var.to_string(), SecretValue::new(v.clone())));
            let from = key_source(ks);
            plan.notes.push(format!(
                "--bare: passing the key from {from} as {key_var} (not from the keychain)"
            ));
        }
        None => {}
    }
    plan.unset.extend(["OPENAI_ORG_ID".to_string(), "OPENAI_PROJECT_ID".to_string()]);
}

/// The variable `run` injects next: the first the key can be read from that ranks above the one
/// it comes from now, is in the keychain and is not injected yet.
fn next_injection(
    out: &qwen::QwenResolution,
    inject: &[String],
    keychain: &KeychainView,
) -> Option<String> {
    let now = keychain_entry(out)
        .and_then(|e| out.key_reads.iter().position(|v| v == e))
        .unwrap_or(out.key_reads.len());
    out.key_reads[..now]
        .iter()
        .find(|v| keychain.entries.contains_key(*v) && !inject.contains(*v))
        .cloned()
}

/// The keychain entry the resolved key is (its placeholder), if it is one.
fn keychain_entry(out: &qwen::QwenResolution) -> Option<&str> {
    out.key.as_ref().and_then(|(v, _)| parse_placeholder(v)).map(|(name, _)| name)
}

/// Where a Qwen Code key came from, in words (`work/proj/.env:2 DASHSCOPE_API_KEY`).
fn key_source(ks: &KeySource) -> String {
    match ks {
        KeySource::Env(var, o) => {
            crate::envfiles::Cand { value: String::new(), origin: o.clone() }.source(var)
        }
        KeySource::Flag => "--openai-api-key".into(),
        KeySource::Settings(loc) => format!("{loc} security.auth.apiKey"),
    }
}

/// `run`'s note when the keychain's key displaced one the tool would have used on its own (a
/// `.env` file, settings `env`, a `$VAR` in settings, another exported variable). An exported
/// variable of the entry's own name gets the `stale-env-shadows` note below instead.
fn replaced_note(
    own: Option<&(String, KeySource)>,
    now: Option<&(String, KeySource)>,
    plan: &mut Plan,
) {
    let (Some((new, _)), Some((old, ks))) = (now, own) else { return };
    let Some((entry, new_fp)) = parse_placeholder(new) else { return };
    if old.contains(PH) || old.trim().is_empty() {
        return;
    }
    if matches!(ks, KeySource::Env(var, Origin::Process) if var == entry) {
        return;
    }
    let old_fp = mask::fingerprint(old);
    if old_fp != new_fp {
        plan.notes.push(format!(
            "replaced the key from {} ({old_fp}) with the keychain's {entry} ({new_fp})",
            key_source(ks)
        ));
    }
}

/// Keys pasted where no key belongs (a base URL, a model name, a variable that is not
/// secret-named): displayed values that look like keys ([`secrets::keys_in`]).
fn pasted_keys(res: &Resolution) -> Vec<String> {
    let fields =
        [&res.model, &res.base_url].into_iter().chain(res.variables.iter().map(|(_, f)| f));
    let mut out: Vec<String> = Vec::new();
    for f in fields {
        for v in f.value.iter().chain(f.shadowed.iter().filter_map(|s| s.value.as_ref())) {
            for k in secrets::keys_in(v) {
                if !out.iter().any(|o| o == k) {
                    out.push(k.to_owned());
                }
            }
        }
    }
    out
}

/// Masks any known secret that reached a displayed value through `$VAR` expansion (a model
/// name or base URL written as `"$DASHSCOPE_API_KEY"` is expanded exactly as Qwen Code does, and
/// must still never be shown). Secret fields already show only masks and fingerprints.
fn redact(res: &mut Resolution, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    let scrub = |text: &mut String| {
        for s in secrets {
            if text.contains(s.as_str()) {
                *text = text.replace(s.as_str(), &mask::masked(s));
            }
        }
    };
    let fields = [&mut res.auth_type, &mut res.model, &mut res.base_url, &mut res.api_key];
    for f in fields.into_iter().chain(res.variables.iter_mut().map(|(_, f)| f)) {
        for v in f.value.iter_mut().chain(f.source.iter_mut()) {
            scrub(v);
        }
        for sh in &mut f.shadowed {
            for v in sh.value.iter_mut().chain(std::iter::once(&mut sh.source)) {
                scrub(v);
            }
        }
    }
    for f in &mut res.findings {
        for v in [&mut f.message, &mut f.fix]
            .into_iter()
            .chain(f.location.iter_mut())
            .chain(f.evidence.iter_mut())
        {
            scrub(v);
        }
    }
}
