//! `key import [--scrub]` on realistic files, including a keychain that fails mid-import.

use std::path::{Path, PathBuf};

use qwen_env_tests::{TestEnv, describe, fingerprint};
use serde_json::Value;

const DS: &str = "sk-dashscope0000000000000001";
const OR: &str = "sk-or-v1-router000000000000002";
const API: &str = "sk-apikey000000000000000003";
const OC: &str = "sk-openclaw00000000000000004";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The scrub backups under `$XDG_STATE_HOME/qwen-env/backups`, sorted.
fn backups(env: &TestEnv) -> Vec<PathBuf> {
    let dir = env.root.path().join("state/qwen-env/backups");
    let mut v: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn settings_text() -> String {
    format!(
        r#"{{
  // keep this comment
  "env": {{
    "OPENROUTER_API_KEY": "{OR}",
    "EDITOR": "vi"
  }},
  "modelProviders": {{ "openai": [ {{ "id": "qwen3-coder-plus", "envKey": "DASHSCOPE_API_KEY",
      "baseUrl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1" }} ] }},
  "security": {{ "auth": {{ "selectedType": "openai", "apiKey": "{API}" }} }},
  "model": {{ "name": "qwen3-coder-plus" }}
}}
"#
    )
}

#[test]
fn import_scrub_moves_every_literal_into_the_keychain() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    let settings = env.home.join(".qwen/settings.json");
    write(&settings, &settings_text());
    write(
        &proj.join(".env"),
        &format!("# project keys\nexport DASHSCOPE_API_KEY={DS} # mine\nLOG=debug\n"),
    );
    write(
        &env.home.join(".openclaw/openclaw.json"),
        &format!(
            "{{ models: {{ providers: {{ qwen: {{ apiKey: '{OC}', baseUrl: 'https://x/v1' }} }} }} }}\n"
        ),
    );
    qwen_env_tests::set_mode(&proj.join(".env"), 0o600);

    // Without --scrub: stored, files untouched.
    let out = env.client(&["key", "import", "--json"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> =
        j["imported"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    for n in ["DASHSCOPE_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY", "QWEN_API_KEY"] {
        assert!(names.contains(&n), "{n} not imported: {j:#}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains(DS), "a secret was printed");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), settings_text());
    let ls = env.ok(&["key", "ls"]);
    for (k, v) in [
        ("DASHSCOPE_API_KEY", DS),
        ("OPENROUTER_API_KEY", OR),
        ("OPENAI_API_KEY", API),
        ("QWEN_API_KEY", OC),
    ] {
        assert!(ls.contains(k) && ls.contains(&fingerprint(v)), "{k}: {ls}");
    }

    // With --scrub: the literals leave the files; comments, other values and envKey stay.
    let out = env.client(&["key", "import", "--scrub"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let s = std::fs::read_to_string(&settings).unwrap();
    assert!(!s.contains(OR) && !s.contains(API), "{s}");
    assert!(
        s.contains("// keep this comment")
            && s.contains("\"EDITOR\": \"vi\"")
            && s.contains("\"envKey\": \"DASHSCOPE_API_KEY\""),
        "{s}"
    );
    let e = std::fs::read_to_string(proj.join(".env")).unwrap();
    assert_eq!(e, "# project keys\nLOG=debug\n");
    assert_eq!(qwen_env_tests::mode(&proj.join(".env")), 0o600);
    let oc = std::fs::read_to_string(env.home.join(".openclaw/openclaw.json")).unwrap();
    assert!(!oc.contains(OC) && oc.contains("baseUrl"), "{oc}");
    // Backups hold the originals: private, under the state dir, named in the output, and not
    // beside the files.
    let printed = String::from_utf8_lossy(&out.stdout);
    let backups = backups(&env);
    assert_eq!(backups.len(), 3, "{backups:?}");
    for b in &backups {
        assert_eq!(qwen_env_tests::mode(b), 0o600, "{}", b.display());
        assert!(
            printed.contains(&b.display().to_string()),
            "{} not printed: {printed}",
            b.display()
        );
    }
    let text = |name: &str| {
        let b = backups.iter().find(|b| b.file_name().unwrap().to_str().unwrap().starts_with(name));
        std::fs::read_to_string(b.unwrap_or_else(|| panic!("no {name} backup"))).unwrap()
    };
    assert_eq!(text("settings.json."), settings_text());
    assert!(text("env.").contains(DS));
    assert!(text("openclaw.json.").contains(OC));
    for dir in [&proj, &env.home.join(".qwen"), &env.home.join(".openclaw")] {
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("qwen-env")), "left beside: {names:?}");
    }

    // The next run gets the key from the keychain, and the files no longer raise plaintext-secret.
    let j: Value = serde_json::from_slice(
        &env.client(&["explain", "--json"]).current_dir(&proj).output().unwrap().stdout,
    )
    .unwrap();
    assert_eq!(j["api_key"]["source"], "keychain DASHSCOPE_API_KEY");
    assert_eq!(j["api_key"]["fingerprint"], fingerprint(DS));
    assert!(!j["findings"].to_string().contains("plaintext-secret"), "{j:#}");
}

#[test]
fn a_different_value_in_the_keychain_is_not_overwritten_without_force() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    write(&proj.join(".env"), &format!("DASHSCOPE_API_KEY={DS}\n"));
    env.set_key("DASHSCOPE_API_KEY", "sk-already0000000000000000009");
    let out = env.client(&["key", "import", "--scrub"]).current_dir(&proj).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--force"), "{}", describe(&out));
    assert!(std::fs::read_to_string(proj.join(".env")).unwrap().contains(DS), "file changed");
    let out =
        env.client(&["key", "import", "--scrub", "--force"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(env.ok(&["key", "ls"]).contains(&fingerprint(DS)));
    assert!(!std::fs::read_to_string(proj.join(".env")).unwrap().contains(DS));
}

/// The keychain stops answering between listing and storing: no file may change.
#[test]
fn a_failed_keychain_write_leaves_the_files_untouched() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    let settings = env.home.join(".qwen/settings.json");
    write(&settings, &settings_text());
    write(&proj.join(".env"), &format!("DASHSCOPE_API_KEY={DS}\n"));
    let script = format!(
        r#"cd {proj}
$Q status >/dev/null || exit 10
# The Secret Service goes away; a fresh one (activated on demand) starts locked, with no one to
# unlock it: every write fails or times out.
pkill -x gnome-keyring-d; sleep 0.5
$Q key import --scrub
echo "exit=$?"
$Q daemon stop >/dev/null
"#,
        proj = proj.display()
    );
    let Some(out) = env.with_secret_service(&script) else { return };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("exit=1"), "{}", describe(&out));
    assert!(stdout.contains("not stored"), "{}", describe(&out));
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), settings_text(), "settings changed");
    assert_eq!(
        std::fs::read_to_string(proj.join(".env")).unwrap(),
        format!("DASHSCOPE_API_KEY={DS}\n")
    );
    assert!(backups(&env).is_empty(), "a backup of an untouched file");
}

/// Planted `.env.qwen-env.bak` and `.env.qwen-env.tmp` symlinks (the names older versions
/// used) and a planted backup name: nothing is written through any of them, and a second scrub
/// never overwrites the first one's backup.
#[test]
fn scrub_writes_through_no_planted_symlink_and_keeps_every_backup() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    write(&proj.join(".env"), &format!("DASHSCOPE_API_KEY={DS}\nLOG=debug\n"));
    let loot = env.root.path().join("loot");
    std::fs::create_dir_all(&loot).unwrap();
    for name in [".env.qwen-env.bak", ".env.qwen-env.tmp"] {
        std::os::unix::fs::symlink(loot.join(name), proj.join(name)).unwrap();
    }
    // The first names this daemon would pick for its temporary file and (for the next seconds)
    // for the backup are taken by symlinks too.
    assert!(env.run(&["status"]).status.success());
    let pid = env.daemon_pid().unwrap();
    for n in 0..2 {
        let name = format!("..env.qwen-env-{pid}.{n}.tmp");
        std::os::unix::fs::symlink(loot.join(&name), proj.join(&name)).unwrap();
    }
    let bdir = env.root.path().join("state/qwen-env/backups");
    std::fs::create_dir_all(&bdir).unwrap();
    qwen_env_tests::set_mode(&bdir, 0o700);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for secs in now..now + 5 {
        let name = format!("env.{secs}.0.bak");
        std::os::unix::fs::symlink(loot.join(&name), bdir.join(&name)).unwrap();
    }
    let planted = backups(&env);
    let out = env.client(&["key", "import", "--scrub"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(std::fs::read_to_string(proj.join(".env")).unwrap(), "LOG=debug\n");
    assert_eq!(
        std::fs::read_dir(&loot).unwrap().count(),
        0,
        "something was written through a link"
    );
    let first: Vec<PathBuf> = backups(&env).into_iter().filter(|b| !planted.contains(b)).collect();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(qwen_env_tests::mode(&first[0]), 0o600);
    let first_text = std::fs::read_to_string(&first[0]).unwrap();
    assert!(first_text.contains(DS));

    // The key comes back (same value) and is scrubbed again within the same second: a new
    // backup, the first one intact.
    write(&proj.join(".env"), &format!("DASHSCOPE_API_KEY={DS}\nLOG=trace\n"));
    let out = env.client(&["key", "import", "--scrub"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let both: Vec<PathBuf> = backups(&env).into_iter().filter(|b| !planted.contains(b)).collect();
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(std::fs::read_to_string(&first[0]).unwrap(), first_text);
    assert!(both.iter().any(|b| std::fs::read_to_string(b).unwrap().contains("LOG=trace")));
    assert_eq!(std::fs::read_to_string(proj.join(".env")).unwrap(), "LOG=trace\n");
    assert_eq!(std::fs::read_dir(&loot).unwrap().count(), 0);
}

/// A `.env` that is a symlink to the user's own file: the key leaves the real file and the
/// link stays a link. A symlink to someone else's file is refused, and nothing changes.
#[test]
fn a_symlinked_env_is_scrubbed_in_its_target_only_when_the_user_owns_it() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    let real = env.home.join("secrets/project.env");
    write(&real, &format!("DASHSCOPE_API_KEY={DS}\nLOG=debug\n"));
    qwen_env_tests::set_mode(&real, 0o600);
    std::fs::create_dir_all(&proj).unwrap();
    std::os::unix::fs::symlink(&real, proj.join(".env")).unwrap();
    let out = env.client(&["key", "import", "--scrub"]).current_dir(&proj).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(std::fs::symlink_metadata(proj.join(".env")).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "LOG=debug\n");
    assert_eq!(qwen_env_tests::mode(&real), 0o600);
    assert_eq!(backups(&env).len(), 1);

    // Someone else's file behind the link (arranging that needs root).
    if qwen_env_proto::endpoint::euid() != 0 {
        eprintln!("SKIPPED: the foreign-owner half needs root");
        return;
    }
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    let theirs = env.root.path().join("theirs/.env");
    let original = format!("DASHSCOPE_API_KEY={DS}\n");
    write(&theirs, &original);
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    std::fs::create_dir_all(&proj).unwrap();
    std::os::unix::fs::symlink(&theirs, proj.join(".env")).unwrap();
    let out = env.client(&["key", "import", "--scrub"]).current_dir(&proj).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("belongs to uid 65534") && stdout.contains("by hand"),
        "{}",
        describe(&out)
    );
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), original);
    assert!(std::fs::symlink_metadata(proj.join(".env")).unwrap().file_type().is_symlink());
    assert!(backups(&env).is_empty());
}

/// The scrub's system calls, traced: backup and temporary file created with `O_EXCL` and
/// `O_NOFOLLOW`, both synced, the rename, then the directory synced.
#[test]
fn scrub_creates_exclusively_and_syncs_file_and_directory() {
    if !qwen_env_tests::require("strace") {
        return;
    }
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    write(&proj.join(".env"), &format!("DASHSCOPE_API_KEY={DS}\nLOG=debug\n"));
    let trace = env.root.path().join("trace");
    let mut daemon = env
        .command("strace")
        .args(["-f", "-qq", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2", "-o"])
        .arg(&trace)
        .arg(qwen_env_tests::bin("qwen-envd"))
        .arg("--foreground")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = qwen_env_tests::wait_until(std::time::Duration::from_secs(20), || {
        env.daemon_dir().join("sock").exists()
    });
    let out = env.client(&["key", "import", "--scrub"]).current_dir(&proj).output().unwrap();
    let _ = env.run(&["daemon", "stop"]);
    let stopped = qwen_env_tests::wait_until(std::time::Duration::from_secs(10), || {
        daemon.try_wait().unwrap().is_some()
    });
    if !stopped {
        let _ = daemon.kill();
    }
    let _ = daemon.wait();
    assert!(up, "the traced daemon did not start");
    assert!(out.status.success(), "{}", describe(&out));
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // `openat(…, "PATH", FLAGS…) = FD` for the first open of a path containing `needle`.
    let opened = |needle: &str| -> (usize, String, String) {
        let i = lines
            .iter()
            .position(|l| l.contains("openat(") && l.contains(needle))
            .unwrap_or_else(|| panic!("no openat of {needle}:\n{text}"));
        let fd = lines[i].rsplit("= ").next().unwrap().split_whitespace().next().unwrap();
        (i, lines[i].to_owned(), fd.to_owned())
    };
    let fsync_after = |from: usize, fd: &str| {
        lines[from..].iter().position(|l| {
            (l.contains(&format!("fsync({fd})")) || l.contains(&format!("fdatasync({fd})")))
                && l.trim_end().ends_with("= 0")
        })
    };
    let bdir = env.root.path().join("state/qwen-env/backups");
    for needle in [format!("{}/env.", bdir.display()), "..env.qwen-env-".to_owned()] {
        let (i, line, fd) = opened(&needle);
        assert!(line.contains("O_EXCL") && line.contains("O_NOFOLLOW"), "{line}");
        assert!(fsync_after(i, &fd).is_some(), "{needle} was not synced:\n{text}");
    }
    let r = lines
        .iter()
        .position(|l| l.contains("rename") && l.contains("..env.qwen-env-"))
        .unwrap_or_else(|| panic!("no rename:\n{text}"));
    let dir = format!("\"{}\"", proj.display());
    let d = r + lines[r..]
        .iter()
        .position(|l| l.contains("openat(") && l.contains(&dir))
        .unwrap_or_else(|| panic!("the directory was not opened after the rename:\n{text}"));
    let fd = lines[d].rsplit("= ").next().unwrap().split_whitespace().next().unwrap();
    assert!(fsync_after(d, fd).is_some(), "the directory was not synced:\n{text}");
}

/// The literals `key import` takes are the ones `doctor` reports (one scanner): for each imported
/// location, the tool whose file it is has a `plaintext-secret` there.
#[test]
fn every_literal_key_import_takes_is_reported_by_doctor() {
    let env = TestEnv::new();
    let proj = env.home.join("proj");
    write(&env.home.join(".qwen/settings.json"), &settings_text());
    write(&proj.join(".env"), &format!("DASHSCOPE_API_KEY={DS}\n"));
    // A qwen apiKey that the exported QWEN_API_KEY outranks, and another provider's key:
    // `doctor -- openclaw` used to stay silent about both.
    write(
        &env.home.join(".openclaw/openclaw.json"),
        &format!(
            "{{ models: {{ providers: {{ qwen: {{ apiKey: '{OC}', baseUrl: 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1' }},\n openrouter: {{ apiKey: 'sk-or-v1-openclawrouter0005' }} }} }} }}\n"
        ),
    );
    write(&env.home.join(".openclaw/.env"), "MOONSHOT_API_KEY=sk-moonmoonmoonmoon0001\n");
    let exported = [("QWEN_API_KEY", "sk-exported000000000000000007")];
    let json = |args: &[&str]| -> Value {
        let out = env.client(args).current_dir(&proj).envs(exported).output().unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
    };
    let imported = json(&["key", "import", "--json"]);
    let items = imported["imported"].as_array().unwrap();
    assert!(items.len() >= 6, "{imported:#}");
    let qwen = json(&["doctor", "--json"]);
    let openclaw = json(&["doctor", "--json", "--", "openclaw"]);
    let reported = |doc: &Value, at: &str, what: &str| {
        doc["findings"].as_array().unwrap().iter().any(|f| {
            f["code"] == "plaintext-secret"
                && f["location"] == at
                && f["message"].as_str().unwrap().contains(what)
        })
    };
    for item in items {
        let location = item["location"].as_str().unwrap();
        let name = item["name"].as_str().unwrap();
        // `file:line`, or `position key.path` for a JSON member.
        let (at, what) = location.split_once(' ').unwrap_or((location, name));
        let tools: Vec<(&str, &Value)> = if location.contains("/.openclaw/") {
            vec![("openclaw", &openclaw)]
        } else if location.contains("/proj/.env") {
            vec![("qwen", &qwen), ("openclaw", &openclaw)]
        } else {
            vec![("qwen", &qwen)]
        };
        for (tool, doc) in tools {
            assert!(
                reported(doc, at, what),
                "key import takes {name} at {location}; doctor -- {tool} does not report it: {doc:#}"
            );
        }
    }
    assert!(!format!("{qwen}{openclaw}{imported}").contains(OC), "a secret was printed");
}
