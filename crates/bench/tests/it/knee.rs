//! `bench --sweep` against the sim's capacity model finds the analytic knee.
//!
//! The sim (see `sim::CapacityModel`): ttft 10 ms, step(B) = 4 + 0.1875 × B ms, at
//! most M = 32 running, O = 10 output tokens. step(32) = 10 ms, so a request holds
//! its slot S(32) = 10 + 9 × 10 = 100 ms and the most it serves is X_max = 32 / 0.1
//! = 320 requests/s. The TPOT SLO of 12 ms allows B* = (12 − 4) / 0.1875 ≈ 42.7 > M
//! running, so M binds: the knee is X_max, TPOT never passes step(M) = 10 ms, and
//! past the knee requests queue for a slot and TTFT grows by about (λ/X_max − 1)
//! seconds per second of the level.

use std::time::Duration;

use bench::{Load, SweepSettings};
use costfloor_core::measured::Slo;
use sim::SimConfig;

fn capacity_sim() -> SimConfig {
    SimConfig {
        ttft: Duration::from_millis(10),
        base_step_ms: Some(4.0),
        per_sequence_step_ms: 0.1875,
        max_running: Some(32),
        default_output_tokens: 1000,
        ..SimConfig::default()
    }
}

const OUTPUT_TOKENS: u32 = 10;
const SLO: Slo = Slo {
    ttft_ms: 250.0,
    tpot_ms: 12.0,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_finds_the_analytic_knee_within_ten_percent() {
    let config = capacity_sim();
    let model = config.capacity_model().unwrap();
    let knee = model.capacity_rate(OUTPUT_TOKENS, SLO.tpot_ms);
    assert!((knee - 320.0).abs() < 1e-9, "{knee}");
    assert_eq!(model.max_throughput(OUTPUT_TOKENS), Some(knee));
    let sim = sim::start(config).await.unwrap();

    let mut plan = crate::plan(
        &sim.base_url(),
        Load::Sweep(SweepSettings {
            steps: 4,
            ..SweepSettings::default()
        }),
    );
    plan.output_tokens = OUTPUT_TOKENS;
    plan.slo = SLO;
    plan.duration = Duration::from_secs(5);
    let run = crate::run(plan).await.unwrap();
    let m = &run.measurement;

    // The saturation run holds 256 streams on 32 slots: it completes about X_max,
    // with TPOT at step(32) = 10 ms, and each request waits for 7 others' service
    // (224 / 32 × 100 ms = 700 ms), far past the TTFT SLO.
    let saturation = &m.levels[0];
    assert_eq!(saturation.mode, "concurrency");
    assert!(
        (saturation.requests_per_s / knee - 1.0).abs() < 0.1,
        "{saturation:?}"
    );
    assert!(
        (saturation.tpot_ms.p50 / 10.0 - 1.0).abs() < 0.1,
        "{saturation:?}"
    );
    assert!(!saturation.meets_slo, "{saturation:?}");

    let capacity = m.capacity.expect("a level met the SLO");
    let found = capacity.requests_per_s;
    assert!(
        (found / knee - 1.0).abs() <= 0.10,
        "capacity {found:.1} req/s, knee {knee:.1}: {:#?}",
        m.levels
    );
    assert_eq!(m.levels[capacity.level].mode, "rate");
    assert_eq!(m.shape.output_tokens_mean, f64::from(OUTPUT_TOKENS));
    assert_eq!(m.shape.input_tokens_mean, 50.0);
    assert_eq!(m.shape.input_calibration, "tokenize");
    for level in &m.levels {
        assert_eq!(level.failed, 0, "{level:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_past_the_knee_queue_and_miss_the_ttft_slo() {
    // 0.5 × X_max runs at B = λ × S(B) ≈ 160 × 0.067 ≈ 11 running: no queue, TTFT =
    // 10 ms. 1.3 × X_max adds 96 requests/s to the queue: after 4 s the last wait
    // about 1.2 s, so p99 TTFT is far above 250 ms.
    let sim = sim::start(capacity_sim()).await.unwrap();
    let mut plan = crate::plan(&sim.base_url(), Load::Rates(vec![160.0, 416.0]));
    plan.output_tokens = OUTPUT_TOKENS;
    plan.slo = SLO;
    plan.duration = Duration::from_secs(4);
    let run = crate::run(plan).await.unwrap();
    let (below, above) = (&run.measurement.levels[0], &run.measurement.levels[1]);
    assert!(below.meets_slo && below.ttft_ms.p99 < 50.0, "{below:?}");
    assert!(!above.meets_slo && above.ttft_ms.p99 > 500.0, "{above:?}");
    // Poisson at 160/s over 4 s: 640 expected, σ ≈ 25; ±15% is six σ.
    let sent = (below.completed + below.failed) as f64;
    assert!((sent / 640.0 - 1.0).abs() < 0.15, "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_tpot_is_the_step_at_that_batch() {
    // No slot limit: C streams run at B = C, so TPOT = step(C) = 4 + 0.1875 × C ms
    // (4.75 ms at 4, 10 ms at 32) and throughput C / S(C) (4 / 52.75 ms ≈ 75.8/s,
    // 32 / 100 ms = 320/s), less the client's share of each request.
    let sim = sim::start(SimConfig {
        max_running: None,
        ..capacity_sim()
    })
    .await
    .unwrap();
    let mut plan = crate::plan(&sim.base_url(), Load::Concurrencies(vec![4, 32]));
    plan.output_tokens = OUTPUT_TOKENS;
    let run = crate::run(plan).await.unwrap();
    for (level, step_ms, rate) in [
        (&run.measurement.levels[0], 4.75, 4.0 / 0.05275),
        (&run.measurement.levels[1], 10.0, 320.0),
    ] {
        assert!((level.tpot_ms.p50 / step_ms - 1.0).abs() < 0.1, "{level:?}");
        assert!((level.requests_per_s / rate - 1.0).abs() < 0.1, "{level:?}");
    }
}
