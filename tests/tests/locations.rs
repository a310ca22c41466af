//! Every finding that names a file names the place in it: `path:line:col`, and in a JSON,
//! JSON5 or `.env` file that place is the key of the member the finding is about (the `"envKey"`
//! of `"envKey": "sk-…"`, not its value or the `[` of the array it sits in).
//!
//! The configurations are the differential suites' (tests/fixtures/differential, every case that
//! needs no host-tool command to set up) and a set of broken ones below, each run through the
//! real `qwen-env explain --as-is --json`; the check reads the file at the location it was given.

use std::collections::BTreeMap;
use std::path::Path;

use qwen_env_tests::TestEnv;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Fixture {
    case: Vec<Case>,
}

/// The part of a differential case that shapes the configuration (the rest is ignored).
#[derive(Deserialize)]
struct Case {
    name: String,
    #[serde(default = "default_cwd")]
    cwd: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    setup: Vec<toml::Value>,
}

fn default_cwd() -> String {
    "work/proj".to_owned()
}

fn fixture(text: &str) -> Vec<Case> {
    toml::from_str::<Fixture>(text).expect("fixture parses").case
}

/// Broken configurations, so that findings of most kinds appear with a location.
const BROKEN: &str = r#"
[[case]]
name = "qwen-literal-envkey-and-suffix"
files = { ".qwen/settings.json" = '''{
  "modelProviders": {
    "openai": [
      { "id": "qwen3-coder-plus", "envKey": "sk-0123456789abcdef0123456789abcdef",
        "baseUrl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions" }
    ]
  },
  "security": { "auth": { "selectedType": "openai" } },
  "model": { "name": "qwen3-coder-plus" }
}''' }

[[case]]
name = "qwen-unknown-protocol-and-duplicates"
files = { "work/proj/.qwen/settings.json" = '''{
  "modelProviders": {
    "dashscope": [ { "id": "qwen-plus", "envKey": "DASHSCOPE_API_KEY" } ],
    "openai": [ { "id": "a", "envKey": "A_KEY" }, { "id": "a", "envKey": "A_KEY" }, { "name": "no id" } ]
  },
  "security": { "auth": { "selectedType": "openai" } },
  "model": { "name": "qwen-plus" }
}''' }

[[case]]
name = "qwen-env-files"
files = { "work/proj/.env" = '''
OPENAI_API_KEY=
export OPENAI_BASE_URL=https://dashscope.aliyuncs.com/compatible-mode/v1/
OPENAI_MODEL=qwen/qwen3-coder:free
''', ".env" = "OPENAI_API_KEY=sk-or-v1-0123456789abcdef0123456789abcdef\n", ".qwen/settings.json" = '''{ "env": { "OPENAI_API_KEY": "${NOT_SET_ANYWHERE}" },
  "security": { "auth": { "selectedType": "openai" } } }''' }

[[case]]
name = "qwen-openrouter-bare-model"
files = { ".qwen/settings.json" = '''{
  "security": { "auth": { "selectedType": "openai" } },
  "model": { "name": "qwen3-coder" }
}''', "work/proj/.env" = "OPENAI_BASE_URL=https://openrouter.ai/api/v1\n" }

[[case]]
name = "qwen-openrouter-model-on-dashscope"
files = { "work/proj/.env" = '''OPENAI_API_KEY=sk-0123456789abcdef0123456789abcdef
OPENAI_BASE_URL=https://dashscope-intl.aliyuncs.com/compatible-mode/v1
OPENAI_MODEL=qwen/qwen3-coder:free
''' }

[[case]]
name = "qwen-oauth-and-plaintext"
files = { ".qwen/settings.json" = '''{
  "security": { "auth": { "selectedType": "qwen-oauth" } },
  "env": { "DASHSCOPE_API_KEY": "sk-0123456789abcdef0123456789abcdef" }
}''' }

[[case]]
name = "qwen-parse-error"
files = { "work/proj/.qwen/settings.json" = '''{
  "model": { "name": "qwen-plus" },,
}''' }

[[case]]
name = "openclaw-parse-error"
files = { ".openclaw/openclaw.json" = '''{
  models: { providers: { qwen: { baseUrl: } } },
}''' }

[[case]]
name = "openclaw-broken"
args = ["infer", "model", "run", "--local", "--prompt", "hi"]
files = { ".openclaw/openclaw.json" = '''{
  // JSON5: comments, unquoted keys, trailing commas
  models: {
    providers: {
      qwen: { baseUrl: "${QWEN_BASE_NOT_SET}/v1", apiKey: "sk-0123456789abcdef0123456789abcdef", },
      dashscope: { baseUrl: "ftp://example.invalid/v1" },
    },
  },
  agents: { defaults: { model: { primary: "dashscope/qwen-plus" } } },
}''' }

[[case]]
name = "openclaw-token-plan-literal"
args = ["infer", "model", "run", "--local", "--prompt", "hi"]
files = { ".openclaw/openclaw.json" = '''{ models: { providers: { "qwen-token-plan": {
    apiKey: "sk-sp-0123456789abcdef0123456789abcdef",
    baseUrl: "https://dashscope.aliyuncs.com/compatible-mode/v1" } } },
  agents: { defaults: { model: { primary: "qwen-token-plan/qwen3.6-plus" } } } }''' }
"#;

/// `path:line:col` of a location that names a place in a file (`path:line:col member.path`
/// when it also names the member), if it does.
fn file_position(location: &str) -> Option<(&str, usize, usize)> {
    let (place, member) = location.split_once(' ').unwrap_or((location, ""));
    if member.contains(' ') {
        return None;
    }
    let (rest, col) = place.rsplit_once(':')?;
    let (path, line) = rest.rsplit_once(':')?;
    Some((path, line.parse().ok()?, col.parse().ok()?))
}

/// Whether the text at `at` is the key of a member: a JSON string or JSON5 identifier followed by
/// `:`, or a `.env` assignment (`NAME=`, `export NAME=`).
fn is_member_key(at: &str, dotenv: bool) -> bool {
    if dotenv {
        let at = at.strip_prefix("export ").map_or(at, str::trim_start);
        let name: String = at
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        return !name.is_empty() && at[name.len()..].trim_start().starts_with(['=', ':']);
    }
    let after = match at.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let body = &at[1..];
            body.find(q).map(|end| &body[end + 1..])
        }
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
            let end = at
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(at.len());
            Some(&at[end..])
        }
        _ => None,
    };
    after.is_some_and(|rest| rest.trim_start().starts_with(':'))
}

/// Codes whose place is not a member: where a file stops parsing.
const NOT_A_MEMBER: [&str; 1] = ["config-parse-error"];

/// Codes about an array element as a whole (a `modelProviders` entry without an `id`), located
/// where the element starts.
const ARRAY_ELEMENT: [&str; 1] = ["provider-entry-invalid"];

/// Codes about a file as a whole (its mode, its existence), or about what no file sets (located
/// at the file the fix goes in), located by its path alone.
const WHOLE_FILE: [&str; 4] = [
    "secret-file-permissions",
    "openclaw-legacy-auth-profiles",
    "no-auth-type",
    "workspace-untrusted",
];

/// Runs `explain --as-is --json` for the case and checks every finding's location; returns the
/// codes whose file position was checked, and pushes what is wrong to `problems`.
fn check_case(env: &TestEnv, host: &str, case: &Case, problems: &mut Vec<String>) -> Vec<String> {
    let home = env.home.join(&case.name);
    let fill = |s: &str| {
        s.replace("{BASE}", "http://127.0.0.1:9/v1")
            .replace("{ALT}", "http://127.0.0.1:9/alt/v1")
            .replace("{HOME}", &home.display().to_string())
    };
    for (rel, content) in &case.files {
        let path = home.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, fill(content)).unwrap();
    }
    let cwd = home.join(&case.cwd);
    std::fs::create_dir_all(&cwd).unwrap();
    let mut args = vec!["explain", "--as-is", "--json", "--", host];
    // The OpenClaw suite's default command (differential_openclaw.rs, `default_args`).
    let default = ["infer", "model", "run", "--local", "--prompt", "say pong"].map(String::from);
    let given = if case.args.is_empty() && host == "openclaw" { &default[..] } else { &case.args };
    let filled: Vec<String> = given.iter().map(|a| fill(a)).collect();
    args.extend(filled.iter().map(String::as_str));
    let out = env
        .client(&args)
        .current_dir(&cwd)
        .env("HOME", &home)
        .envs(case.env.iter().map(|(k, v)| (k.clone(), fill(v))))
        .output()
        .unwrap();
    let Ok(json) = serde_json::from_slice::<Value>(&out.stdout) else {
        problems.push(format!(
            "{}: explain printed no JSON: {}",
            case.name,
            qwen_env_tests::describe(&out)
        ));
        return Vec::new();
    };
    let mut checked = Vec::new();
    for f in json["findings"].as_array().into_iter().flatten() {
        let code = f["code"].as_str().unwrap_or("?");
        let Some(location) = f["location"].as_str() else {
            problems.push(format!("{}: {code} has no location: {f}", case.name));
            continue;
        };
        let under_home = location.starts_with(&home.display().to_string());
        let Some((path, line, col)) = file_position(location) else {
            // The file alone: for a fact about the whole file, or for a file that does not
            // exist (it has no line to name: it is where the fix goes).
            let file_alone = !location.contains(' ')
                && (WHOLE_FILE.contains(&code) || !Path::new(location).exists());
            if under_home && !file_alone {
                problems.push(format!(
                    "{}: {code} names a file without line:col: {location}",
                    case.name
                ));
            }
            continue;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            problems.push(format!("{}: {code} names {location}, which cannot be read", case.name));
            continue;
        };
        checked.push(code.to_owned());
        let Some(at) = text.lines().nth(line - 1).and_then(|l| l.get(col - 1..)) else {
            problems
                .push(format!("{}: {code} at {location} is past the end of the line", case.name));
            continue;
        };
        let dotenv =
            Path::new(path).file_name().is_some_and(|n| n.to_string_lossy().starts_with(".env"));
        let element = ARRAY_ELEMENT.contains(&code) && at.starts_with('{');
        if !NOT_A_MEMBER.contains(&code) && !element && !is_member_key(at, dotenv) {
            problems.push(format!(
                "{}: {code} at {location} points at {at:?}, not at a member's key",
                case.name
            ));
        }
    }
    checked
}

#[test]
fn every_file_location_points_at_the_members_key() {
    let env = TestEnv::new();
    let corpora = [
        ("qwen", fixture(include_str!("../fixtures/differential/cases.toml"))),
        ("openclaw", fixture(include_str!("../fixtures/differential/openclaw.toml"))),
        ("qwen", fixture(BROKEN).into_iter().filter(|c| c.name.starts_with("qwen")).collect()),
        (
            "openclaw",
            fixture(BROKEN).into_iter().filter(|c| c.name.starts_with("openclaw")).collect(),
        ),
    ];
    let mut problems = Vec::new();
    let mut checked = std::collections::BTreeSet::new();
    for (host, cases) in &corpora {
        for case in cases.iter().filter(|c| c.setup.is_empty()) {
            for code in check_case(&env, host, case, &mut problems) {
                checked.insert(format!("{host} {code}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The broken configurations give these, each at a position that was checked: a location
    // that stops naming `path:line:col` would check nothing and must not pass.
    for want in [
        "qwen config-parse-error",
        "qwen envkey-holds-secret",
        "qwen base-url-path-suffix",
        "qwen unknown-provider-protocol",
        "qwen duplicate-model-id",
        "qwen provider-entry-invalid",
        "qwen plaintext-secret",
        "qwen unresolved-var-reference",
        "qwen stale-env-shadows",
        "qwen oauth-discontinued",
        "openclaw config-parse-error",
        "openclaw openclaw-unknown-model",
        "openclaw plaintext-secret",
        "openclaw key-endpoint-class-mismatch",
        "openclaw unread-variable",
        "qwen openrouter-model-elsewhere",
        "qwen openrouter-model-format",
    ] {
        assert!(checked.contains(want), "no position checked for {want}: {checked:?}");
    }
}
