//! `costfloor eval` end to end: a dataset against two backends of a gateway config,
//! both served by a sim whose accuracy per model and task is known; the report must
//! recover those accuracies within its intervals and send each task to the right side,
//! a run killed by a signal must resume without asking any sample twice, and bad lines
//! must be refused with their line numbers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sim::quality::{AccuracyRule, QualityConfig};

use crate::costfloor;

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("costfloor-eval-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `count` samples of `task`, labelled yes/no, with a `choice` scorer.
fn samples(task: &str, count: usize, out: &mut String) {
    for i in 0..count {
        let expected = if i % 3 == 0 { "no" } else { "yes" };
        let line = json!({
            "id": format!("{task}-{i:03}"),
            "task": task,
            "prompt": format!("Question {i} of {task}: is this request about billing? Answer yes or no."),
            "max_tokens": 4,
            "expected": expected,
            "scorer": {"type": "choice", "choices": ["yes", "no"]},
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
}

/// The accuracies the sim answers with: (task, candidate p, baseline p).
const ACCURACY: [(&str, f64, f64); 3] = [
    ("easy", 0.95, 0.95),
    ("hard", 0.60, 0.95),
    ("small", 0.85, 0.95),
];

/// A sim answering `dataset`'s prompts with the accuracies of `accuracy`; the models in
/// `judges` act as its oracle judge.
async fn quality_sim(
    dataset: &Path,
    seed: u64,
    accuracy: Vec<AccuracyRule>,
    judges: &[&str],
    ttft: Duration,
) -> sim::SimHandle {
    let mut quality = QualityConfig {
        answers_file: dataset.to_path_buf(),
        seed,
        accuracy,
        judges: judges.iter().map(|j| j.to_string()).collect(),
        ..QualityConfig::default()
    };
    quality.load(Path::new("/")).unwrap();
    sim::start(sim::SimConfig {
        ttft,
        token_delay: Duration::ZERO,
        quality: Some(quality),
        ..sim::SimConfig::default()
    })
    .await
    .unwrap()
}

/// The candidate right on `candidate` of every task's samples, the baseline on `baseline`.
fn everywhere(candidate: f64, baseline: f64) -> Vec<AccuracyRule> {
    vec![
        AccuracyRule {
            model: "small-model".into(),
            task: None,
            p: candidate,
        },
        AccuracyRule {
            model: "claude-haiku-4-5".into(),
            task: None,
            p: baseline,
        },
    ]
}

async fn start_sim(dataset: &Path, ttft: Duration) -> sim::SimHandle {
    let mut accuracy = Vec::new();
    for (task, candidate, baseline) in ACCURACY {
        accuracy.push(AccuracyRule {
            model: "small-model".into(),
            task: Some(task.into()),
            p: candidate,
        });
        accuracy.push(AccuracyRule {
            model: "claude-haiku-4-5".into(),
            task: Some(task.into()),
            p: baseline,
        });
    }
    quality_sim(dataset, 11, accuracy, &[], ttft).await
}

/// A yes/no dataset of `tasks` (name, samples) in a fresh directory, a sim answering it
/// with [`ACCURACY`], and a gateway config pointing at the sim.
struct Labelled {
    dir: PathBuf,
    dataset: PathBuf,
    sim: sim::SimHandle,
    config: PathBuf,
}

async fn labelled(name: &str, tasks: &[(&str, usize)], ttft: Duration) -> Labelled {
    let dir = dir(name);
    let mut text = String::new();
    for &(task, count) in tasks {
        samples(task, count, &mut text);
    }
    let dataset = dir.join("dataset.jsonl");
    std::fs::write(&dataset, &text).unwrap();
    let sim = start_sim(&dataset, ttft).await;
    let config = gateway_config(&dir, &sim.base_url());
    Labelled {
        dir,
        dataset,
        sim,
        config,
    }
}

fn gateway_config(dir: &Path, sim_url: &str) -> PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            r#"[server]
ledger = "eval.db"

[[backend]]
name = "small"
type = "openai_compatible"
base_url = "{sim_url}/v1"
model = "small-model"
deployment = "llama-3.3-70b-4xa100"

[[backend]]
name = "haiku"
type = "anthropic"
base_url = "{sim_url}"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"

[[route]]
name = "everything"
targets = ["haiku"]
"#
        ),
    )
    .unwrap();
    path
}

/// `costfloor eval run` of `dataset` with the candidate `small` and the baseline `haiku`.
fn eval_run(config: &Path, dataset: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "eval",
        "run",
        "--config",
        config.to_str().unwrap(),
        "--dataset",
        dataset.to_str().unwrap(),
        "--candidate",
        "small",
        "--baseline",
        "haiku",
    ];
    args.extend_from_slice(extra);
    costfloor(&args)
}

fn run_id(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("run id: "))
        .unwrap_or_else(|| panic!("no run id in: {text}"))
        .to_string()
}

fn report_json(config: &Path, run: &str) -> Value {
    crate::json(&[
        "eval",
        "report",
        run,
        "--config",
        config.to_str().unwrap(),
        "--json",
    ])
}

fn task<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_recovers_known_accuracies_and_routes_each_task() {
    let Labelled {
        dir,
        dataset,
        sim,
        config,
    } = labelled(
        "recover",
        &[("easy", 150), ("hard", 150), ("small", 20)],
        Duration::from_millis(1),
    )
    .await;
    let out = eval_run(&config, &dataset, &["--concurrency", "16"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("estimated spend: up to $"), "{stderr}");
    assert!(stderr.contains("measured spend $"), "{stderr}");
    let run = run_id(&out.stdout);
    // Every sample once on each side: 2 × 320 requests at the sim.
    assert_eq!(sim.state().stats().requests_total, 640);
    let report = report_json(&config, &run);
    assert_eq!(report["status"], "complete");
    for (name, candidate, baseline) in ACCURACY {
        let t = task(&report, name);
        for (side, p) in [("candidate", candidate), ("baseline", baseline)] {
            let i = &t[side]["accuracy_interval"];
            let (low, high) = (i["low"].as_f64().unwrap(), i["high"].as_f64().unwrap());
            assert!(
                low <= p && p <= high,
                "{name} {side}: {p} outside {low}..{high}"
            );
        }
        // Paired counts add up to n, and the shared draws make the discordance one-sided.
        let paired = &t["paired"];
        let n = paired["n"].as_u64().unwrap();
        let sum: u64 = ["both_correct", "candidate_only", "baseline_only", "neither"]
            .iter()
            .map(|k| paired[*k].as_u64().unwrap())
            .sum();
        assert_eq!(sum, n);
        assert_eq!(paired["candidate_only"], 0, "{name}");
    }
    // The policy, from the configured accuracies with the default 5-point tolerance:
    // equal accuracy (no discordant pair in 150) fits; a 35-point gap does not; 20
    // samples cannot tell a 10-point gap from 5.
    assert_eq!(
        task(&report, "easy")["recommendation"]["decision"],
        "self_host"
    );
    assert_eq!(task(&report, "hard")["recommendation"]["decision"], "api");
    let small = task(&report, "small");
    assert_eq!(small["recommendation"]["decision"], "undecided");
    assert!(small["recommendation"]["more_samples"].as_u64().unwrap() > 0);
    assert_eq!(small["power"]["enough"], false);
    // McNemar on the hard task: 150 × 0.35 discordant pairs all one way is far past 0.05.
    assert!(
        task(&report, "hard")["paired"]["mcnemar_p"]
            .as_f64()
            .unwrap()
            < 1e-6
    );
    // Only the baseline costs money; the candidate is self-hosted.
    assert_eq!(report["overall"]["candidate"]["cost"]["nusd"], 0);
    assert!(
        report["overall"]["baseline"]["cost"]["nusd"]
            .as_i64()
            .unwrap()
            > 0
    );

    // The policy fragment, pasted ahead of the config's routes, passes `serve --check`.
    let policy = costfloor(&["eval", "policy", &run, "--config", config.to_str().unwrap()]);
    assert!(
        policy.status.success(),
        "{}",
        String::from_utf8_lossy(&policy.stderr)
    );
    let fragment = String::from_utf8(policy.stdout).unwrap();
    assert!(fragment.contains("tasks = [\"easy\"]"), "{fragment}");
    let base = std::fs::read_to_string(&config).unwrap();
    let (head, routes) = base.split_at(base.find("[[route]]").unwrap());
    let pasted = dir.join("pasted.toml");
    std::fs::write(&pasted, format!("{head}{fragment}\n{routes}")).unwrap();
    let check = costfloor(&["serve", "--check", "--config", pasted.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let table = String::from_utf8_lossy(&check.stdout);
    assert!(
        table.contains("eval-self-host") && table.contains("eval-api"),
        "{table}"
    );

    // `plan --eval`: the measured decisions replace the workload's guesses. `hard`
    // (30% of calls, api) and `small` (20%, undecided) stay on the API, as `eval policy`
    // routes them, so the hybrid's eligible share is `easy`'s 50%.
    let report_path = dir.join("report.json");
    std::fs::write(&report_path, serde_json::to_vec(&report).unwrap()).unwrap();
    let workload = dir.join("workload.toml");
    std::fs::write(
        &workload,
        "[[task]]\nname = \"easy\"\nshare = 0.5\nself_host = \"no\"\n\n[[task]]\nname = \"hard\"\nshare = 0.3\nself_host = \"yes\"\n\n[[task]]\nname = \"small\"\nshare = 0.2\n",
    )
    .unwrap();
    let plan = crate::json(&[
        "plan",
        "--workload",
        workload.to_str().unwrap(),
        "--eval",
        report_path.to_str().unwrap(),
        "--json",
    ]);
    let eligible = plan["hybrid"]["eligible_share"].as_f64().unwrap();
    assert!((eligible - 0.5).abs() < 1e-9, "eligible share {eligible}");
    let check = plan["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "quality gap")
        .unwrap();
    let measured = check["measured"].as_str().unwrap();
    assert!(
        measured.contains("easy: gap") && measured.contains("self_host"),
        "{measured}"
    );
    assert!(
        measured.contains("hard: gap +35.") || measured.contains("hard: gap +3"),
        "{measured}"
    );
    assert!(check["note"].as_str().unwrap().contains(&run), "{check}");
    let unmeasured = crate::input_error(&["plan", "--eval", workload.to_str().unwrap()]);
    assert!(
        unmeasured.contains("--eval") && unmeasured.contains("eval report"),
        "{unmeasured}"
    );

    // The text report names every task and the decisions.
    let text = costfloor(&["eval", "report", &run, "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("small: undecided") && text.contains("too small to tell"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn results_in(db: &Path, run: &str) -> usize {
    ledger::EvalStore::open(db)
        .unwrap()
        .results(run)
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_by_a_signal_resumes_without_asking_twice() {
    let Labelled {
        dir,
        dataset,
        sim,
        config,
    } = labelled(
        "resume",
        &[("easy", 60), ("hard", 60)],
        Duration::from_millis(25),
    )
    .await;
    let db = dir.join("eval.db");
    let child = Command::new(env!("CARGO_BIN_EXE_costfloor"))
        .args([
            "eval",
            "run",
            "--config",
            config.to_str().unwrap(),
            "--dataset",
            dataset.to_str().unwrap(),
            "--candidate",
            "small",
            "--baseline",
            "haiku",
            "--concurrency",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the run to be well under way, then interrupt it as Ctrl-C would.
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        assert!(Instant::now() < deadline, "the run never got going");
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !db.exists() {
            continue;
        }
        let store = ledger::EvalStore::open(&db).unwrap();
        if let Some(run) = store.run_ids().unwrap().first() {
            if store.results(run).unwrap().len() >= 40 {
                break run.clone();
            }
        }
    };
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    // 130, as for Ctrl-C, after the answers in flight were stored.
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped by a signal"), "{stderr}");
    let stored = results_in(&db, &run);
    assert!(
        (40..240).contains(&stored),
        "{stored} answers stored at the stop"
    );
    assert_eq!(report_json(&config, &run)["status"], "stopped");
    // Every answer the sim gave before the stop is stored: nothing was lost in flight.
    assert_eq!(sim.state().stats().requests_total as usize, stored);

    let out = costfloor(&[
        "eval",
        "run",
        "--config",
        config.to_str().unwrap(),
        "--resume",
        &run,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(results_in(&db, &run), 240);
    // No sample was asked twice: one request per sample and side in all.
    assert_eq!(sim.state().stats().requests_total, 240);
    let resumed = report_json(&config, &run);
    assert_eq!(resumed["status"], "complete");

    // The same run uninterrupted, into a fresh database, gives the same figures.
    let fresh = dir.join("fresh.db");
    let out = costfloor(&[
        "eval",
        "run",
        "--config",
        config.to_str().unwrap(),
        "--db",
        fresh.to_str().unwrap(),
        "--dataset",
        dataset.to_str().unwrap(),
        "--candidate",
        "small",
        "--baseline",
        "haiku",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whole = crate::json(&[
        "eval",
        "report",
        &run_id(&out.stdout),
        "--db",
        fresh.to_str().unwrap(),
        "--json",
    ]);
    for name in ["easy", "hard"] {
        for key in ["paired", "recommendation", "gap", "power"] {
            assert_eq!(
                task(&resumed, name)[key],
                task(&whole, name)[key],
                "{name} {key}"
            );
        }
        for side in ["candidate", "baseline"] {
            for key in ["correct", "scored", "accuracy_interval", "cost"] {
                assert_eq!(
                    task(&resumed, name)[side][key],
                    task(&whole, name)[side][key],
                    "{name} {side} {key}"
                );
            }
        }
    }

    // A cost cap stops the run before it would pass it, resumably: Haiku 4.5 at $1/MTok
    // in and $5/MTok out makes each baseline answer cost about $0.00004 (about 20 tokens
    // in, 4 out), so $0.0004 stops after about ten of the 120.
    let capped_db = dir.join("capped.db");
    let out = costfloor(&[
        "eval",
        "run",
        "--config",
        config.to_str().unwrap(),
        "--db",
        capped_db.to_str().unwrap(),
        "--dataset",
        dataset.to_str().unwrap(),
        "--candidate",
        "small",
        "--baseline",
        "haiku",
        "--max-cost-usd",
        "0.0004",
        "--concurrency",
        "1",
    ]);
    // 3: stopped at the cap, resumable.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let capped = run_id(&out.stdout);
    let report = crate::json(&[
        "eval",
        "report",
        &capped,
        "--db",
        capped_db.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(report["status"], "stopped");
    let spent = report["total_cost"]["nusd"].as_i64().unwrap();
    assert!(
        spent > 0 && spent <= 400_000,
        "spent {spent} nUSD against a cap of 400,000"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-cost-usd"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_lines_are_refused_with_their_line_numbers() {
    let dir = dir("bad");
    let lines = [
        r#"{"id": "ok-1", "task": "t", "prompt": "fine", "expected": "yes", "scorer": "exact"}"#,
        r#"{"id": "broken", "task": "t", "prompt": "no closing brace""#,
        r#"{"id": "unknown", "task": "t", "prompt": "p", "expected": "x", "scorer": "telepathy"}"#,
        r#"{"id": "regex", "task": "t", "prompt": "p", "scorer": {"type": "regex", "pattern": "a(b"}}"#,
        r#"{"id": "missing", "task": "t", "prompt": "p", "scorer": "exact"}"#,
    ];
    let dataset = dir.join("bad.jsonl");
    std::fs::write(&dataset, lines.join("\n")).unwrap();
    let config = gateway_config(&dir, "http://127.0.0.1:9");
    let db = dir.join("bad.db");
    let args = [
        "eval",
        "run",
        "--config",
        config.to_str().unwrap(),
        "--dataset",
        dataset.to_str().unwrap(),
        "--candidate",
        "small",
        "--baseline",
        "haiku",
        "--db",
        db.to_str().unwrap(),
    ];
    let stderr = crate::input_error(&args);
    assert!(stderr.contains("4 of 5 lines are invalid"), "{stderr}");
    assert!(stderr.contains("line 2: not valid JSON"), "{stderr}");
    assert!(
        stderr.contains("line 3:") && stderr.contains("telepathy") && stderr.contains("exact"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 4:") && stderr.contains("a(b"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5:") && stderr.contains("expected"),
        "{stderr}"
    );
    // --skip-invalid leaves the four out, says so, and runs the one good line (the
    // backends are unreachable here, so its answers fail, and are counted as failed).
    let mut skip = args.to_vec();
    skip.extend(["--skip-invalid", "--max-tries", "1"]);
    let out = costfloor(&skip);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipping 4 invalid lines (--skip-invalid)"),
        "{stderr}"
    );
    let run = run_id(&out.stdout);
    let report = crate::json(&[
        "eval",
        "report",
        &run,
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(report["samples_chosen"], 1);
    assert_eq!(report["overall"]["candidate"]["failed"], 1);
    // An unknown backend lists the valid ones.
    let good = dir.join("good.jsonl");
    std::fs::write(&good, lines[0]).unwrap();
    let stderr = crate::input_error(&[
        "eval",
        "run",
        "--config",
        config.to_str().unwrap(),
        "--dataset",
        good.to_str().unwrap(),
        "--candidate",
        "lama",
        "--baseline",
        "haiku",
        "--db",
        dir.join("b.db").to_str().unwrap(),
    ]);
    assert!(
        stderr.contains("--candidate: no backend named `lama`") && stderr.contains("small, haiku"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Open-ended samples graded by a judge backend, pairwise and on a scale. The sim's
/// judge model prefers the answer that is not its wrong answer, so the judged gap is
/// the share of samples only the baseline gets right: 0.95 − 0.60 = 0.35 on both tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_grades_open_ended_samples_pairwise_and_on_a_scale() {
    let dir = dir("judge");
    let mut text = String::new();
    for (task, mode) in [("open_pair", "pairwise"), ("open_scale", "scale")] {
        for i in 0..60 {
            let line = json!({
                "id": format!("{task}-{i:03}"),
                "task": task,
                "prompt": format!("Write one sentence about topic {i} for {task}."),
                "expected": format!("A good sentence about topic {i}."),
                "scorer": {"type": "judge", "mode": mode},
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
    }
    let dataset = dir.join("open.jsonl");
    std::fs::write(&dataset, &text).unwrap();
    let sim = quality_sim(
        &dataset,
        3,
        everywhere(0.60, 0.95),
        &["claude-sonnet-4-6"],
        Duration::from_millis(1),
    )
    .await;
    let config = gateway_config(&dir, &sim.base_url());
    let with_judge = std::fs::read_to_string(&config).unwrap().replace(
        "[[route]]",
        &format!(
            "[[backend]]\nname = \"judge\"\ntype = \"anthropic\"\nbase_url = \"{}\"\nmodel = \"claude-sonnet-4-6\"\nprice = \"claude-sonnet-4.6\"\n\n[[route]]",
            sim.base_url()
        ),
    );
    std::fs::write(&config, with_judge).unwrap();
    // Without a judge backend the run refuses to start and says why.
    let stderr = crate::input_error(&[
        "eval",
        "run",
        "--config",
        config.to_str().unwrap(),
        "--dataset",
        dataset.to_str().unwrap(),
        "--candidate",
        "small",
        "--baseline",
        "haiku",
    ]);
    assert!(
        stderr.contains("--judge") && stderr.contains("line 1"),
        "{stderr}"
    );
    let out = eval_run(
        &config,
        &dataset,
        &["--judge", "judge", "--concurrency", "8"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = run_id(&out.stdout);
    // 120 samples × 2 answers, then one pairwise verdict per open_pair sample and two
    // grades per open_scale sample.
    assert_eq!(sim.state().stats().requests_total, 240 + 60 + 120);
    let report = report_json(&config, &run);
    for name in ["open_pair", "open_scale"] {
        let t = task(&report, name);
        let judged = &t["judged"];
        assert_eq!(judged["n"], 60, "{name}");
        // The candidate never wins (shared draws: it is right only where the baseline is).
        assert_eq!(judged["wins"], 0, "{name}");
        let losses = judged["losses"].as_u64().unwrap();
        assert_eq!(judged["ties"].as_u64().unwrap() + losses, 60);
        let difference = judged["mean_difference"].as_f64().unwrap();
        assert!(
            (difference + losses as f64 / 60.0).abs() < 1e-9,
            "{name}: {difference}"
        );
        let interval = &judged["difference_interval"];
        assert!(
            interval["low"].as_f64().unwrap() <= difference
                && difference <= interval["high"].as_f64().unwrap()
        );
        // The configured gap, 0.35, lies in the bootstrap interval.
        assert!(
            interval["low"].as_f64().unwrap() <= -0.35
                && -0.35 <= interval["high"].as_f64().unwrap(),
            "{name}: {interval}"
        );
        assert_eq!(t["gap"]["basis"], "judge");
        assert_eq!(t["recommendation"]["decision"], "api", "{name}");
    }
    // Scale grades: 5 for a right answer, 1 for the wrong one.
    let scale = &task(&report, "open_scale")["judged"];
    let mean = scale["baseline_mean"].as_f64().unwrap();
    assert!((1.0..=5.0).contains(&mean));
    // The judge's cost is counted with the rest.
    let judge_cost = report["judge_cost"]["nusd"].as_i64().unwrap();
    assert!(judge_cost > 0);
    let sides = report["overall"]["candidate"]["cost"]["nusd"]
        .as_i64()
        .unwrap()
        + report["overall"]["baseline"]["cost"]["nusd"]
            .as_i64()
            .unwrap();
    assert_eq!(
        report["total_cost"]["nusd"].as_i64().unwrap(),
        sides + judge_cost
    );
    // The order each pairwise verdict was shown in is recorded with it.
    let store = ledger::EvalStore::open(dir.join("eval.db")).unwrap();
    let verdicts: Vec<_> = store
        .results(&run)
        .unwrap()
        .into_iter()
        .filter(|r| r.side == "judge")
        .collect();
    assert_eq!(verdicts.len(), 60);
    assert!(verdicts.iter().all(|r| r
        .detail
        .as_deref()
        .is_some_and(|d| d.starts_with("candidate="))));
    let shown_first = verdicts
        .iter()
        .filter(|r| r.detail.as_deref().unwrap().starts_with("candidate=A"))
        .count();
    assert!(
        (10..=50).contains(&shown_first),
        "{shown_first} of 60 shown first"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Shadow traffic scored: `serve` mirrors every request of a route to the reference
/// backend, and `eval shadow` reports agreement on a labelled task (the primary is
/// right on 60% of samples, the reference on 95%, on shared draws: they agree where
/// both are right, 60%) and a judge's grades on an open-ended one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_shadow_scores_the_pairs_serve_stored() {
    let dir = dir("shadow");
    let mut text = String::new();
    samples("classify", 80, &mut text);
    for i in 0..40 {
        let line = json!({"id": format!("open-{i:03}"), "task": "open",
            "prompt": format!("Describe item {i} in one sentence."), "expected": format!("Item {i} is fine.")});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let dataset = dir.join("traffic.jsonl");
    std::fs::write(&dataset, &text).unwrap();
    let sim = quality_sim(
        &dataset,
        5,
        everywhere(0.60, 0.95),
        &["claude-sonnet-4-6"],
        Duration::from_millis(1),
    )
    .await;
    let url = sim.base_url();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
ledger = "shadow.db"

[[backend]]
name = "small"
type = "openai_compatible"
base_url = "{url}/v1"
model = "small-model"
deployment = "llama-3.3-70b-4xa100"

[[backend]]
name = "haiku"
type = "anthropic"
base_url = "{url}"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"

[[backend]]
name = "judge"
type = "anthropic"
base_url = "{url}"
model = "claude-sonnet-4-6"
price = "claude-sonnet-4.6"

[[route]]
name = "self-hosted"
models = ["auto"]
targets = ["small"]
reference_api = "claude-haiku-4.5"
shadow = {{ backend = "haiku", sample = 1.0, monthly_cap_usd = 10, store_outputs = true }}
"#
        ),
    )
    .unwrap();
    let eval_toml = dir.join("eval.toml");
    std::fs::write(
        &eval_toml,
        "[task.classify]\nscorer = { type = \"choice\", choices = [\"yes\", \"no\"] }\n\n[task.open]\nscorer = { type = \"judge\", mode = \"pairwise\" }\n",
    )
    .unwrap();
    let served = crate::serve::serve(&config, &[]);
    let client = reqwest::Client::new();
    for line in text.lines() {
        let sample: Value = serde_json::from_str(line).unwrap();
        let body = json!({"model": "auto", "max_tokens": 16,
            "messages": [{"role": "user", "content": sample["prompt"]}],
            "metadata": {"task": sample["task"]}});
        let response = client
            .post(format!("{}/v1/chat/completions", served.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let db = dir.join("shadow.db");
    let deadline = Instant::now() + Duration::from_secs(15);
    while ledger::read_shadow_pairs(&db, &ledger::ReportFilter::default(), None)
        .map_or(0, |p| p.len())
        < 120
    {
        assert!(Instant::now() < deadline, "the shadow pairs never landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = crate::json(&[
        "eval",
        "shadow",
        "--config",
        config.to_str().unwrap(),
        "--eval-config",
        eval_toml.to_str().unwrap(),
        "--judge",
        "judge",
        "--json",
    ]);
    let tasks = report["tasks"].as_array().unwrap();
    let by = |name: &str| tasks.iter().find(|t| t["task"] == name).unwrap();
    let classify = by("classify");
    assert_eq!(classify["pairs"], 80);
    assert_eq!(classify["compared"], 80);
    let agreement = classify["agreement"].as_f64().unwrap();
    let interval = &classify["agreement_interval"];
    assert!(
        interval["low"].as_f64().unwrap() <= 0.60 && 0.60 <= interval["high"].as_f64().unwrap(),
        "{classify}"
    );
    assert!((agreement - classify["agreed"].as_f64().unwrap() / 80.0).abs() < 1e-12);
    // A 40-point disagreement is past the 5-point tolerance even at the interval's low end.
    assert_eq!(classify["flagged"], true);
    assert_eq!(classify["clearly_past"], true);
    let open = by("open");
    assert_eq!(open["judged"], 40);
    // The judge prefers the reference where only it is right (35% of draws), else ties.
    let mean = open["judged_mean_difference"].as_f64().unwrap();
    assert!(mean <= 0.0 && mean > -0.7, "{open}");
    assert!(open["judge_cost"]["nusd"].as_i64().unwrap() > 0);
    assert!((open["gap"].as_f64().unwrap() + mean).abs() < 1e-12);
    // The shadow spend is Haiku's price of the shadow tokens: nonzero, and the same as
    // the pairs hold.
    let pairs = ledger::read_shadow_pairs(&db, &ledger::ReportFilter::default(), None).unwrap();
    let spent: i64 = pairs.iter().map(|p| p.shadow_cost_nusd).sum();
    assert_eq!(report["shadow_cost"]["nusd"].as_i64().unwrap(), spent);
    assert!(pairs.iter().all(|p| p
        .prompt
        .as_deref()
        .is_some_and(|t| t.starts_with("[user] "))));
    // The text form names the flagged task.
    let text = costfloor(&[
        "eval",
        "shadow",
        "--db",
        db.to_str().unwrap(),
        "--eval-config",
        eval_toml.to_str().unwrap(),
        "--task",
        "classify",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("classify: 80 pairs") && text.contains("PAST THE TOLERANCE"),
        "{text}"
    );
    crate::serve::signal(&served.child, "TERM");
    crate::serve::wait_exit(served);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// 429 and 529 answers are waited out (their `retry-after`, else a doubling back-off)
/// and retried, and `--rpm` spaces the requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_backed_off_and_rpm_is_kept() {
    let Labelled {
        dir,
        dataset,
        sim,
        config,
    } = labelled("backoff", &[("easy", 10)], Duration::from_millis(1)).await;
    // Three 429s with retry-after 1 s, then two 529s (Anthropic's overloaded).
    let mut rate_limit = sim::FaultStep::new(sim::FaultKind::RateLimit);
    rate_limit.count = Some(3);
    rate_limit.retry_after_s = Some(1);
    let mut overloaded = sim::FaultStep::new(sim::FaultKind::Overloaded);
    overloaded.count = Some(2);
    sim.state().set_faults(sim::FaultPlan {
        steps: vec![rate_limit, overloaded],
    });
    let out = eval_run(&config, &dataset, &["--concurrency", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report_json(&config, &run_id(&out.stdout));
    let t = task(&report, "easy");
    assert_eq!(
        (
            t["candidate"]["failed"].as_u64(),
            t["baseline"]["failed"].as_u64()
        ),
        (Some(0), Some(0))
    );
    // 20 answers, and the 5 refused requests tried again: 25 at the sim.
    assert_eq!(sim.state().stats().requests_total, 25);

    // --rpm 600 is one request every 100 ms: 20 requests take at least 1.9 s, however
    // many run at once.
    let started = Instant::now();
    let out = eval_run(
        &config,
        &dataset,
        &[
            "--concurrency",
            "8",
            "--rpm",
            "600",
            "--db",
            dir.join("paced.db").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `eval run` and `eval report` with `--db postgres://…`: the answers go to the shared
/// database, the report reads them back, and a second run over the same database is a
/// run of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_runs_and_reports_on_postgres() {
    let Labelled {
        dir,
        dataset,
        sim: _sim,
        config,
    } = labelled("postgres", &[("easy", 12)], Duration::from_millis(1)).await;
    let url = ledger::testing::postgres_database();
    let done = eval_run(&config, &dataset, &["--db", &url]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let run = run_id(&done.stdout);
    let report = crate::json(&["eval", "report", &run, "--db", &url, "--json"]);
    assert_eq!(task(&report, "easy")["samples"], 12, "{report}");
    let stored = ledger::EvalStore::open(ledger::Location::parse(&url).unwrap())
        .unwrap()
        .results(&run)
        .unwrap();
    assert_eq!(
        stored.len(),
        24,
        "a candidate and a baseline answer per sample"
    );
    assert!(
        !dir.join("eval.db").exists(),
        "nothing went to the config's file"
    );
}
