//! The templates render into well-formed files with every placeholder filled and every directive
//! explained; the plist and task XML parse (with python3, where installed).

use std::path::Path;
use std::process::{Command, Stdio};

use super::*;

#[test]
fn systemd_escaping() {
    assert_eq!(systemd_escape("/usr/bin/qwen-envd"), "/usr/bin/qwen-envd");
    assert_eq!(systemd_escape("/opt/my tools/qwen-envd"), "\"/opt/my tools/qwen-envd\"");
    assert_eq!(systemd_escape("/a%b"), "/a%%b");
    assert_eq!(systemd_escape("/a$b"), "\"/a$$b\"");
    assert_eq!(systemd_escape("/a \"b\"\\"), r#""/a \"b\"\\""#);
}

#[test]
fn every_systemd_directive_has_a_comment() {
    for (name, text) in [("service", SYSTEMD_SERVICE), ("socket", SYSTEMD_SOCKET)] {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let directive = !line.is_empty() && !line.starts_with('#') && !line.starts_with('[');
            if directive {
                assert!(
                    i > 0 && lines[i - 1].starts_with('#'),
                    "{name}: `{line}` has no comment saying why"
                );
            }
        }
    }
}

#[test]
fn systemd_units_render() {
    let unit = systemd_service(Path::new("/opt/q e/qwen-envd")).unwrap();
    assert!(unit.contains("\nExecStart=\"/opt/q e/qwen-envd\" --foreground\n"), "{unit}");
    assert!(!unit.contains('@'), "a placeholder is left: {unit}");
    assert!(SYSTEMD_SOCKET.contains("\nListenStream=%t/qwen-env/sock\n"));
    assert!(SYSTEMD_SOCKET.contains("\nSocketMode=0600\n"));
    assert!(SYSTEMD_SOCKET.contains("\nDirectoryMode=0700\n"));
}

/// Runs a python3 snippet on `input`; `None` when python3 is missing (outside CI).
fn python(script: &str, input: &[u8]) -> Option<String> {
    use std::io::Write;
    let child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        assert!(std::env::var_os("CI").is_none(), "python3 is required in CI");
        eprintln!("SKIPPED: python3 is not installed");
        return None;
    };
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn launchd_plist_parses() {
    let plist = launchd_plist(
        Path::new("/Users/a&b/bin/qwen-envd"),
        Path::new("/var/folders/x/T/"),
        Path::new("/Users/a&b/Library/Logs/qwen-env"),
    )
    .unwrap();
    assert!(
        !plist.contains("@QWEN") && !plist.contains("@TMPDIR@") && !plist.contains("@LOG_DIR@")
    );
    let script = "import plistlib, sys, json\n\
                  p = plistlib.loads(sys.stdin.buffer.read())\n\
                  print(json.dumps(p, sort_keys=True))";
    let Some(json) = python(script, plist.as_bytes()) else { return };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["Label"], "io.qwen-env.qwen-envd");
    assert_eq!(
        v["ProgramArguments"],
        serde_json::json!(["/Users/a&b/bin/qwen-envd", "--foreground"])
    );
    assert_eq!(v["RunAtLoad"], true);
    assert_eq!(v["KeepAlive"]["SuccessfulExit"], false);
    assert_eq!(v["EnvironmentVariables"]["TMPDIR"], "/var/folders/x/T/");
    assert_eq!(v["StandardErrorPath"], "/Users/a&b/Library/Logs/qwen-env/qwen-envd.err.log");
}

#[test]
fn windows_task_parses() {
    let xml = windows_task(Path::new(r"C:\Users\a<b\.cargo\bin\qwen-envd.exe"), r"PC\a<b").unwrap();
    // Written as UTF-16 LE with a BOM, as `schtasks` reads it.
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(xml.encode_utf16().flat_map(u16::to_le_bytes));
    let script = "import sys, xml.etree.ElementTree as ET\n\
                  ns = {'t': 'http://schemas.microsoft.com/windows/2004/02/mit/task'}\n\
                  root = ET.fromstring(sys.stdin.buffer.read())\n\
                  print(root.find('t:Actions/t:Exec/t:Command', ns).text)\n\
                  print(root.find('t:Actions/t:Exec/t:Arguments', ns).text)\n\
                  print(root.find('t:Triggers/t:LogonTrigger/t:UserId', ns).text)";
    let Some(text) = python(script, &bytes) else { return };
    assert_eq!(text, "C:\\Users\\a<b\\.cargo\\bin\\qwen-envd.exe\n--foreground\nPC\\a<b\n");
}
