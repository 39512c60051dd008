//! `costfloor catalog import-litellm`: LiteLLM's price file to a catalog overlay, on a
//! real excerpt (crates/costfloor-core/testdata/litellm/SOURCES.md) and on the whole
//! current file from the `litellm` package on PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;

use costfloor_core::catalog::Catalog;

use crate::{costfloor, input_error, json, temp_file};

fn excerpt() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../costfloor-core/testdata/litellm/model_prices_excerpt.json")
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("costfloor-it-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ok_stdout(args: &[&str]) -> String {
    let output = costfloor(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_excerpt_imports_to_an_overlay_that_catalog_accepts() {
    let dir = scratch_dir("excerpt");
    let out = dir.join("litellm.toml");
    let excerpt = excerpt();
    let stdout = ok_stdout(&[
        "catalog",
        "import-litellm",
        excerpt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--as-of",
        "2026-11-29",
    ]);
    // 18 entries: 10 chat models imported, 1 alias mapped, 1 embedding, 6 skipped
    // (crates/costfloor-core/testdata/litellm/SOURCES.md says which and why).
    assert!(stdout.contains("entries read"), "{stdout}");
    assert!(stdout.contains("Wrote 10 entries"), "{stdout}");
    assert!(
        stdout.contains("morph/morph-dsv4flash: `input_cost_per_token` = 1.41953125e-07"),
        "{stdout}"
    );
    // The overlay goes through the same path as --catalog.
    let catalog = out.to_str().unwrap();
    let haiku = json(&[
        "catalog",
        "show",
        "claude-haiku-4.5",
        "--json",
        "--catalog",
        catalog,
    ]);
    // claude-haiku-4-5: input 1e-06, output 5e-06, 5-minute write 1.25e-06, 1-hour write
    // 2e-06, read 1e-07 USD per token = $1, $5, $1.25, $2, $0.10 per MTok.
    assert_eq!(haiku["input_usd_per_mtok"], 1.0);
    assert_eq!(haiku["output_usd_per_mtok"], 5.0);
    assert_eq!(haiku["cache_write_usd_per_mtok"], 1.25);
    assert_eq!(haiku["cache_write_1h_usd_per_mtok"], 2.0);
    assert_eq!(haiku["cache_read_usd_per_mtok"], 0.1);
    assert_eq!(haiku["batch_discount"], 0.5);
    assert_eq!(haiku["as_of"], "2026-11-29");
    // The alias's target, claude-sonnet-5-5 ($2 in, $10 out per MTok), prices a plan:
    // the default workload is 10M calls × (1,000 in + 200 out) = 10B input and 2B output
    // tokens: 10,000 × $2 + 2,000 × $10 = $40,000 a month.
    let plan = json(&[
        "plan",
        "--json",
        "--catalog",
        catalog,
        "--api",
        "claude-sonnet-5-5",
    ]);
    let option = plan["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "claude-sonnet-5-5")
        .unwrap();
    assert_eq!(option["monthly_cost_usd"], 40_000.0);
    let validated = ok_stdout(&["catalog", "validate", catalog]);
    assert!(validated.contains(": ok"), "{validated}");
}

#[test]
fn without_out_the_overlay_is_stdout_and_the_summary_stderr() {
    let excerpt = excerpt();
    let output = costfloor(&[
        "catalog",
        "import-litellm",
        excerpt.to_str().unwrap(),
        "--only",
        "openai",
    ]);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let mut catalog = Catalog::embedded().unwrap();
    catalog.overlay("stdout", &stdout).unwrap();
    // gpt-4o-mini: input 1.5e-07, output 6e-07, read 7.5e-08 USD per token.
    let mini = catalog.api_model("gpt-4o-mini").unwrap();
    assert_eq!(mini.input_usd_per_mtok.micro_usd(), 150_000);
    assert_eq!(mini.output_usd_per_mtok.micro_usd(), 600_000);
    assert_eq!(mini.cache_read_usd_per_mtok.unwrap().micro_usd(), 75_000);
    assert_eq!(stdout.matches("[[api_model]]").count(), 3, "{stdout}");
    assert!(stderr.contains("(--only openai)"), "{stderr}");
    assert!(stderr.contains("provider not selected"), "{stderr}");
}

#[test]
fn the_diff_shows_old_new_and_change() {
    // A catalog where Haiku 4.5 costs half: the import brings it back to $1/$5.
    let cheap = temp_file(
        "half-haiku.toml",
        "[[api_model]]\nid = 'claude-haiku-4.5'\nprovider = 'anthropic'\ninput_usd_per_mtok = 0.5\noutput_usd_per_mtok = 2.5\ncache_write_usd_per_mtok = 1.25\ncache_write_1h_usd_per_mtok = 2.0\ncache_read_usd_per_mtok = 0.1\nbatch_discount = 0.5\ncontext_window = 200000\nas_of = 'x'\nsource = 'test'\n",
    );
    let excerpt = excerpt();
    let stdout = ok_stdout(&[
        "catalog",
        "import-litellm",
        excerpt.to_str().unwrap(),
        "--diff",
        "--catalog",
        cheap.to_str().unwrap(),
    ]);
    // $0.50 → $1.00 is +100%, $2.50 → $5.00 too.
    let row = |price: &str| {
        stdout
            .lines()
            .find(|line| line.contains("claude-haiku-4.5") && line.contains(price))
            .unwrap_or_else(|| panic!("no {price} row:\n{stdout}"))
            .to_string()
    };
    let input = row(" input ");
    assert!(
        input.contains("$0.50") && input.contains("$1.00") && input.contains("+100.0%"),
        "{input}"
    );
    let output = row(" output ");
    assert!(
        output.contains("$2.50") && output.contains("$5.00") && output.contains("+100.0%"),
        "{output}"
    );
    // The embedded Sonnet 4.6 has a $6/$22.50 tier above 200K tokens; the excerpt's has none.
    assert!(
        stdout.contains("claude-sonnet-4.6") && stdout.contains("removed"),
        "{stdout}"
    );
    // --diff without --out prints no overlay.
    assert!(!stdout.contains("[[api_model]]"), "{stdout}");
    let report = json(&[
        "catalog",
        "import-litellm",
        excerpt.to_str().unwrap(),
        "--diff",
        "--json",
    ]);
    assert_eq!(report["summary"]["entries_read"], 18);
    assert_eq!(
        report["diff"]["missing"],
        serde_json::json!(["gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o"])
    );
}

#[test]
fn bad_input_exits_2_names_the_file_and_writes_nothing() {
    let dir = scratch_dir("bad");
    let out = dir.join("never.toml");
    let out_arg = out.to_str().unwrap();
    let not_json = temp_file("prices.txt", "input_cost_per_token = 1e-06\n");
    let err = input_error(&[
        "catalog",
        "import-litellm",
        not_json.to_str().unwrap(),
        "--out",
        out_arg,
    ]);
    assert!(
        err.contains("prices.txt: not JSON") && err.contains("expected LiteLLM's"),
        "{err}"
    );
    let array = temp_file("array.json", "[{\"input_cost_per_token\": 1e-06}]");
    let err = input_error(&[
        "catalog",
        "import-litellm",
        array.to_str().unwrap(),
        "--out",
        out_arg,
    ]);
    assert!(
        err.contains("array.json: the top level is an array: expected a JSON object"),
        "{err}"
    );
    let err = input_error(&["catalog", "import-litellm", "/nonexistent/prices.json"]);
    assert!(err.contains("/nonexistent/prices.json"), "{err}");
    let excerpt = excerpt();
    let err = input_error(&[
        "catalog",
        "import-litellm",
        excerpt.to_str().unwrap(),
        "--only",
        "antropic",
        "--out",
        out_arg,
    ]);
    assert!(err.contains("did you mean `anthropic`"), "{err}");
    let err = input_error(&[
        "catalog",
        "import-litellm",
        excerpt.to_str().unwrap(),
        "--as-of",
        "29/11/2026",
    ]);
    assert!(err.contains("YYYY-MM-DD"), "{err}");
    assert!(!out.exists(), "a failed import wrote {}", out.display());
    // A failed import leaves an existing file as it was, with no temporary file beside it.
    std::fs::write(&out, "# the last review\n").unwrap();
    input_error(&[
        "catalog",
        "import-litellm",
        array.to_str().unwrap(),
        "--out",
        out_arg,
    ]);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "# the last review\n"
    );
    let err = input_error(&[
        "catalog",
        "import-litellm",
        excerpt.to_str().unwrap(),
        "--out",
        dir.join("no-such-dir/x.toml").to_str().unwrap(),
    ]);
    assert!(err.contains("cannot write"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("never.toml")]);
}

/// The whole current price file, from the `litellm` wheel on PyPI, cached under
/// `${COSTFLOOR_CACHE:-$HOME/.cache/costfloor}/litellm/`. Delete that folder to test
/// against a newer release. Panics, saying why, when it cannot be had.
fn whole_litellm_file() -> (PathBuf, String) {
    let cache = std::env::var_os("COSTFLOOR_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/costfloor"))
        })
        .expect("neither COSTFLOOR_CACHE nor HOME is set: no place to cache LiteLLM's price file");
    let dir = cache.join("litellm");
    let file = dir.join("model_prices_and_context_window_backup.json");
    let version_file = dir.join("VERSION");
    if !file.exists() || !version_file.exists() {
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let wheels = dir.join("wheel");
        let _ = std::fs::remove_dir_all(&wheels);
        let download = Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "litellm", "-d"])
            .arg(&wheels)
            .output()
            .unwrap_or_else(|err| {
                panic!("cannot run python3 to download LiteLLM's price file: {err}")
            });
        assert!(
            download.status.success(),
            "`python3 -m pip download --no-deps litellm` failed, so the whole-file test \
             cannot run (it needs PyPI once; the file is cached in {}):\n{}",
            dir.display(),
            String::from_utf8_lossy(&download.stderr)
        );
        let wheel = std::fs::read_dir(&wheels)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
            .unwrap_or_else(|| panic!("pip downloaded no wheel into {}", wheels.display()));
        let partial = dir.join("model_prices.partial");
        let unzip = Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile\n\
                 data = zipfile.ZipFile(sys.argv[1]).read('litellm/model_prices_and_context_window_backup.json')\n\
                 open(sys.argv[2], 'wb').write(data)",
            ])
            .arg(&wheel)
            .arg(&partial)
            .output()
            .unwrap();
        assert!(
            unzip.status.success(),
            "cannot extract litellm/model_prices_and_context_window_backup.json from {}:\n{}",
            wheel.display(),
            String::from_utf8_lossy(&unzip.stderr)
        );
        std::fs::rename(&partial, &file).unwrap();
        let wheel_name = wheel.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(&version_file, format!("{wheel_name}\n")).unwrap();
        let _ = std::fs::remove_dir_all(&wheels);
    }
    let version = std::fs::read_to_string(&version_file).unwrap();
    (file, version.trim().to_string())
}

/// A number of the file as micro-USD per MTok through f64, an independent check of the
/// exact conversion: every imported price is a whole number of micro-USD per MTok, and
/// f64 carries 15 significant digits, so the rounded product is exact.
fn micro_via_f64(entry: &serde_json::Value, field: &str) -> Option<i128> {
    entry
        .get(field)
        .and_then(serde_json::Value::as_f64)
        .map(|usd_per_token| (usd_per_token * 1e12).round() as i128)
}

#[test]
fn the_whole_current_litellm_file_imports_with_a_consistent_summary() {
    let (file, version) = whole_litellm_file();
    let dir = scratch_dir("whole");
    let out = dir.join("litellm.toml");
    let report = json(&[
        "catalog",
        "import-litellm",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--diff",
        "--json",
    ]);
    let summary = &report["summary"];
    let number = |value: &serde_json::Value| value.as_u64().unwrap();
    let sum =
        |map: &serde_json::Value| -> u64 { map.as_object().unwrap().values().map(number).sum() };
    let text = std::fs::read_to_string(&file).unwrap();
    let source: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let entries_read = number(&summary["entries_read"]);
    assert_eq!(entries_read, source.len() as u64, "{version}");
    assert_eq!(
        number(&summary["imported"])
            + number(&summary["aliases"])
            + sum(&summary["other_modes"])
            + sum(&summary["skipped"]),
        entries_read,
        "{version}: the summary does not account for every entry: {summary}"
    );
    // Recounted here: a model of another mode has a provider and a mode other than chat;
    // an alias counts as its target.
    let other_mode = |key: &str| {
        source.get(key).is_some_and(|e| {
            key != "sample_spec"
                && e["litellm_provider"].is_string()
                && e["mode"].is_string()
                && e["mode"] != "chat"
        })
    };
    let other_modes = source
        .iter()
        .filter(|(key, e)| match e["alias_of"].as_str() {
            Some(target) => other_mode(target),
            None => other_mode(key),
        })
        .count() as u64;
    assert_eq!(sum(&summary["other_modes"]), other_modes, "{version}");
    let chat = source.values().filter(|e| e["mode"] == "chat").count() as u64;
    assert!(number(&summary["imported"]) > 0 && number(&summary["imported"]) <= chat);

    // The overlay loads as --catalog loads it, and every price is the file's, exactly.
    let overlay = std::fs::read_to_string(&out).unwrap();
    let mut catalog = Catalog::embedded().unwrap();
    catalog.overlay(out.to_str().unwrap(), &overlay).unwrap();
    let imported = report["entries"].as_array().unwrap();
    assert_eq!(imported.len() as u64, number(&summary["imported"]));
    for entry in imported {
        let key = entry["litellm_key"].as_str().unwrap();
        let id = entry["id"].as_str().unwrap();
        let model = catalog.api_model(id).unwrap();
        let original = &source[key];
        let checks = [
            ("input_cost_per_token", Some(model.input_usd_per_mtok)),
            ("output_cost_per_token", Some(model.output_usd_per_mtok)),
            (
                "cache_creation_input_token_cost",
                model.cache_write_usd_per_mtok,
            ),
            (
                "cache_creation_input_token_cost_above_1hr",
                model.cache_write_1h_usd_per_mtok,
            ),
            ("cache_read_input_token_cost", model.cache_read_usd_per_mtok),
        ];
        match &model.long_context {
            Some(long) => {
                assert_eq!(long.threshold_input_tokens, 200_000);
                for (field, price) in [
                    (
                        "input_cost_per_token_above_200k_tokens",
                        long.input_usd_per_mtok,
                    ),
                    (
                        "output_cost_per_token_above_200k_tokens",
                        long.output_usd_per_mtok,
                    ),
                ] {
                    if let Some(expected) = micro_via_f64(original, field) {
                        assert_eq!(price.micro_usd(), expected, "{version}: `{key}` {field}");
                    }
                }
            }
            None => assert!(
                original
                    .get("input_cost_per_token_above_200k_tokens")
                    .is_none(),
                "{version}: `{key}` lost its long-context price"
            ),
        }
        for (field, imported_price) in checks {
            assert_eq!(
                imported_price.map(|price| price.micro_usd()),
                micro_via_f64(original, field),
                "{version}: `{key}` ({id}) {field}"
            );
        }
    }

    // Known entries, to the micro-dollar: Haiku 4.5 is $1 in, $5 out, $1.25 and $2 cache
    // writes (5-minute, 1-hour), $0.10 reads, 50% off in batches (Anthropic's pricing page).
    let haiku = catalog.api_model("claude-haiku-4.5").unwrap();
    assert_eq!(haiku.input_usd_per_mtok.micro_usd(), 1_000_000, "{version}");
    assert_eq!(haiku.output_usd_per_mtok.micro_usd(), 5_000_000);
    assert_eq!(
        haiku.cache_write_usd_per_mtok.unwrap().micro_usd(),
        1_250_000
    );
    assert_eq!(
        haiku.cache_write_1h_usd_per_mtok.unwrap().micro_usd(),
        2_000_000
    );
    assert_eq!(haiku.cache_read_usd_per_mtok.unwrap().micro_usd(), 100_000);
    assert_eq!(haiku.batch_discount, 0.5);
    assert!(haiku.source.contains("`claude-haiku-4-5`"));
    // The diff accounts for each of the embedded catalog's API models once: changed,
    // unchanged, or missing from the file.
    let diff = &report["diff"];
    let mut changed: Vec<&str> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["id"].as_str().unwrap())
        .collect();
    changed.dedup();
    let embedded = Catalog::embedded().unwrap().api_models.len();
    assert_eq!(
        changed.len()
            + diff["unchanged"].as_array().unwrap().len()
            + diff["missing"].as_array().unwrap().len(),
        embedded,
        "{diff}"
    );
}
