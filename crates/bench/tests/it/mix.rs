//! A workload's task mix as the length distribution: each request draws a task by
//! share and takes its prompt and output lengths.

use bench::{LengthClass, Load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_follow_the_task_mix() {
    let sim = sim::start(sim::SimConfig {
        ttft: std::time::Duration::from_millis(1),
        token_delay: std::time::Duration::from_millis(1),
        default_output_tokens: 1000,
        ..sim::SimConfig::default()
    })
    .await
    .unwrap();
    let mut plan = crate::plan(&sim.base_url(), Load::Concurrencies(vec![8]));
    // 75% short (40 in, 4 out), 25% long (400 in, 40 out): share-weighted means of
    // 0.75 × 40 + 0.25 × 400 = 130 input and 0.75 × 4 + 0.25 × 40 = 13 output tokens.
    plan.mix = vec![
        LengthClass {
            name: "short".into(),
            share: 0.75,
            input_tokens: 40,
            output_tokens: 4,
        },
        LengthClass {
            name: "long".into(),
            share: 0.25,
            input_tokens: 400,
            output_tokens: 40,
        },
    ];
    let run = crate::run(plan).await.unwrap();
    let m = &run.measurement;
    assert_eq!(m.shape.input_tokens_target, 130.0);
    assert_eq!(m.shape.output_tokens_target, 13.0);
    let level = &m.levels[0];
    assert_eq!(level.failed, 0);
    let n = level.completed as f64;
    assert!(n >= 200.0, "{n} requests: too few to check the mix");
    // Output lengths are forced, so the mean is 4 + 36 × (share of long requests): with
    // n draws at p = 0.25 the share is within 4 standard deviations, 4 × √(p(1−p)/n).
    let long_share = (level.output_tokens as f64 / n - 4.0) / 36.0;
    let bound = 4.0 * (0.25f64 * 0.75 / n).sqrt();
    assert!(
        (long_share - 0.25).abs() < bound,
        "long share {long_share}, ±{bound}"
    );
    // Input lengths are calibrated to within a few tokens of each target.
    let input_mean = level.input_tokens as f64 / n;
    let expected = 40.0 + 360.0 * long_share;
    assert!(
        (input_mean - expected).abs() < 0.1 * expected,
        "{input_mean} vs {expected}"
    );
}

#[tokio::test]
async fn a_bad_task_names_itself() {
    let mut plan = crate::plan("http://127.0.0.1:9", Load::Concurrencies(vec![1]));
    plan.mix = vec![LengthClass {
        name: "extract".into(),
        share: 1.0,
        input_tokens: 0,
        output_tokens: 10,
    }];
    let err = crate::run(plan).await.unwrap_err().to_string();
    assert!(
        err.contains("task extract") && err.contains("input_tokens = 0"),
        "{err}"
    );
}
