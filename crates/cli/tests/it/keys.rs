//! `costfloor keys`: create prints the key once and stores only its SHA-256, list
//! shows what is stored, revoke removes the entry; bad input names the field.

use crate::{costfloor, input_error};

const CONFIG: &str = r#"# The team's gateway.
[server]
ledger = "ledger.db"

[[backend]]
name = "local"
type = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
model = "m"
deployment = "llama-3.3-70b-4xa100"

[[route]]
name = "chat"
models = ["chat"]
targets = ["local"]
"#;

fn config(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("costfloor-it-keys-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, CONFIG).unwrap();
    path
}

#[test]
fn create_list_revoke() {
    let path = config("cycle");
    let file = path.to_str().unwrap();
    let made = costfloor(&[
        "keys", "create", "--config", file, "--name", "team-a", "--route", "chat",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("cfk_") && key.len() == 47, "{key}");
    let text = std::fs::read_to_string(&path).unwrap();
    // Only the digest is stored; the comments and order of the file are kept.
    assert!(!text.contains(&key));
    assert!(
        text.starts_with("# The team's gateway.\n[server]"),
        "{text}"
    );
    let entry: toml::Table = toml::from_str(&text).unwrap();
    let stored = entry["client_key"].as_array().unwrap()[0]
        .as_table()
        .unwrap();
    assert_eq!(stored["name"].as_str(), Some("team-a"));
    assert_eq!(stored["sha256"].as_str().unwrap().len(), 64);
    // The gateway accepts the edited file.
    let check = costfloor(&["serve", "--check", "--config", file]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let listed = String::from_utf8(costfloor(&["keys", "list", "--config", file]).stdout).unwrap();
    let prefix = &stored["sha256"].as_str().unwrap()[..12];
    assert!(
        listed.contains("team-a") && listed.contains(prefix) && listed.contains("chat"),
        "{listed}"
    );
    assert!(
        !listed.contains(&stored["sha256"].as_str().unwrap()[12..]),
        "{listed}"
    );
    // A second key of the same name is refused; revoking removes the entry.
    let err = input_error(&["keys", "create", "--config", file, "--name", "team-a"]);
    assert!(err.contains("`team-a` already exists"), "{err}");
    let revoked = costfloor(&["keys", "revoke", "--config", file, "--name", "team-a"]);
    assert!(revoked.status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("client_key"), "{text}");
    let err = input_error(&["keys", "revoke", "--config", file, "--name", "team-a"]);
    assert!(err.contains("no client_key `team-a`"), "{err}");
}

#[test]
fn bad_input_names_the_field() {
    let path = config("bad");
    let file = path.to_str().unwrap();
    let err = input_error(&[
        "keys", "create", "--config", file, "--name", "x", "--route", "nope",
    ]);
    assert!(
        err.contains("--route nope") && err.contains("routes: chat"),
        "{err}"
    );
    std::fs::write(
        &path,
        format!("{CONFIG}\n[[client_key]]\nname = \"y\"\nsha256 = \"abc\"\n"),
    )
    .unwrap();
    // The file parses, but the gateway refuses a digest that is not 64 hex digits.
    let check = costfloor(&["serve", "--check", "--config", file]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success()
            && stderr.contains("client_key `y`")
            && stderr.contains("64 hex digits"),
        "{stderr}"
    );
    std::fs::write(&path, "not toml [").unwrap();
    let err = input_error(&["keys", "list", "--config", file]);
    assert!(err.contains("gateway.toml"), "{err}");
}

#[test]
fn limits_and_budgets_are_written_and_checked() {
    let path = config("limits");
    let file = path.to_str().unwrap();
    let made = costfloor(&[
        "keys",
        "create",
        "--config",
        file,
        "--name",
        "batch",
        "--rpm",
        "60",
        "--tpm",
        "100000",
        "--monthly-budget-usd",
        "25.5",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let set = costfloor(&[
        "keys",
        "set-budget",
        "--config",
        file,
        "--name",
        "batch",
        "--monthly-budget-usd",
        "40",
        "--budget-on",
        "counterfactual",
    ]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let key = table["client_key"].as_array().unwrap()[0]
        .as_table()
        .unwrap();
    assert_eq!(key["rpm"].as_integer(), Some(60));
    assert_eq!(key["tpm"].as_integer(), Some(100_000));
    assert_eq!(key["monthly_budget_usd"].as_float(), Some(40.0));
    assert_eq!(key["budget_on"].as_str(), Some("counterfactual"));
    let check = costfloor(&["serve", "--check", "--config", file]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let listed = String::from_utf8(costfloor(&["keys", "list", "--config", file]).stdout).unwrap();
    assert!(
        listed.contains("60 requests/min, 100000 tokens/min, $40/month (counterfactual cost)"),
        "{listed}"
    );
    for (flag, value, says) in [
        ("--rpm", "0", "--rpm = 0"),
        ("--monthly-budget-usd", "-1", "--monthly-budget-usd = -1"),
    ] {
        let err = input_error(&[
            "keys", "create", "--config", file, "--name", "x", flag, value,
        ]);
        assert!(err.contains(says), "{err}");
    }
    let err = input_error(&[
        "keys",
        "set-budget",
        "--config",
        file,
        "--name",
        "nobody",
        "--monthly-budget-usd",
        "1",
    ]);
    assert!(err.contains("no client_key `nobody`"), "{err}");
}
