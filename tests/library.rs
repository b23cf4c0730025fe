//! The library's public API as an application uses it: the spec builder, `Trainer::fit` with
//! its callback and early stop, and checkpoints saved and loaded through `Autoencoder`. All on
//! the CPU, so these run without a GPU.

mod common;

use std::ops::ControlFlow;

use common::random;
use hourglass::model::{Noise, Parameters, Variant};
use hourglass::train::{EarlyStop, FitEvent, FitOptions};
use hourglass::{
    Activation, Autoencoder, Dataset, Device, Error, Loss, ModelSpec, TrainConfig, Trainer,
};

/// 96 rows of 10 features: 6 steps per epoch at batch 16.
fn data() -> Dataset {
    Dataset::new(96, 10, random(960, 0.0, 1.0, 21)).expect("data")
}

fn spec() -> ModelSpec {
    ModelSpec::builder()
        .encoder([10, 6, 3])
        .activation(Activation::Tanh)
        .build()
        .expect("a valid spec")
}

fn config() -> TrainConfig {
    TrainConfig {
        seed: 9,
        ..TrainConfig::new(16, 1e-2)
    }
}

fn trainer() -> Trainer {
    Trainer::new(&spec(), &config(), &data(), &Device::Cpu, None).expect("trainer")
}

/// The parameters of a fresh [`trainer`] after `steps` plain steps: what a fit that reads,
/// calls back or stops along the way must still end with.
fn params_after(steps: u64) -> Parameters {
    let mut t = trainer();
    t.train_steps(steps, false).expect("train");
    t.parameters().expect("parameters")
}

/// The events of a fit as short strings: `R<step>` for a read, `E<epoch>@<step>` for an epoch
/// (`*` when it is a new best), `C<step>` for a checkpoint.
fn describe(event: &FitEvent) -> String {
    match event {
        FitEvent::Report { step, epoch, .. } => format!("R{step}/{epoch}"),
        FitEvent::Epoch(e) => format!("E{}@{}", e.epoch, e.step),
        FitEvent::Checkpoint { step } => format!("C{step}"),
    }
}

#[test]
fn the_builder_fills_in_defaults_and_takes_every_setting() {
    let plain = ModelSpec::builder()
        .encoder([784, 256, 32])
        .build()
        .expect("valid");
    assert_eq!(plain, ModelSpec::mirrored(&[784, 256, 32]));

    let mse = ModelSpec::builder()
        .encoder(vec![20, 8])
        .output_activation(Activation::Identity)
        .build()
        .expect("valid");
    assert_eq!(mse.loss, Loss::Mse, "an identity output defaults to MSE");

    let custom = ModelSpec::builder()
        .encoder([12, 8, 4])
        .decoder([4, 6, 9, 12])
        .activation(Activation::LeakyRelu)
        .code_activation(Activation::Sigmoid)
        .output_activation(Activation::Identity)
        .loss(Loss::Mse)
        .variant(Variant::Sparse {
            lambda: 0.1,
            target: Some(0.05),
        })
        .build()
        .expect("valid");
    assert_eq!(custom.decoder, [4, 6, 9, 12]);
    assert_eq!(custom.activation, Activation::LeakyRelu);
    assert_eq!(custom.code_activation, Activation::Sigmoid);
    assert_eq!(custom.output_activation, Activation::Identity);
    assert_eq!(custom.loss, Loss::Mse);
    assert!(!custom.tied);

    let tied = ModelSpec::builder()
        .encoder([12, 8, 4])
        .tied(true)
        .variant(Variant::Denoising {
            noise: Noise::Gaussian { sigma: 0.1 },
        })
        .build()
        .expect("valid");
    assert!(tied.tied);
    let vae = ModelSpec::builder()
        .encoder([12, 8, 2])
        .variant(Variant::Vae {
            beta: 0.5,
            samples: 2,
        })
        .build()
        .expect("valid");
    assert_eq!(vae.code_dim(), 2);
    // What the builder makes round-trips through the checkpoint JSON.
    assert_eq!(ModelSpec::from_json(&vae.to_json()).expect("json"), vae);
}

#[test]
fn the_builder_refuses_invalid_specs_and_says_why() {
    let cases: Vec<(hourglass::SpecBuilder, &str)> = vec![
        (ModelSpec::builder(), "encoder sizes"),
        (
            ModelSpec::builder().encoder([784]),
            "at least an input and a code",
        ),
        (ModelSpec::builder().encoder([784, 0, 32]), "positive"),
        (
            ModelSpec::builder().encoder([784, 32]).decoder([16, 784]),
            "start at the code size 32",
        ),
        (
            ModelSpec::builder().encoder([784, 32]).decoder([32, 700]),
            "end at the input size 784",
        ),
        (
            ModelSpec::builder()
                .encoder([784, 32])
                .output_activation(Activation::Identity)
                .loss(Loss::Bce),
            "needs a sigmoid output",
        ),
        (
            ModelSpec::builder()
                .encoder([784, 32])
                .output_activation(Activation::Tanh),
            "sigmoid or identity",
        ),
        (
            ModelSpec::builder()
                .encoder([784, 64, 32])
                .decoder([32, 784])
                .tied(true),
            "mirrored decoder",
        ),
        (
            ModelSpec::builder()
                .encoder([784, 64, 32])
                .tied(true)
                .variant(Variant::Vae {
                    beta: 1.0,
                    samples: 1,
                }),
            "cannot tie",
        ),
        (
            ModelSpec::builder()
                .encoder([784, 32])
                .variant(Variant::Sparse {
                    lambda: 0.1,
                    target: Some(0.05),
                }),
            "sigmoid code",
        ),
        (
            ModelSpec::builder()
                .encoder([784, 32])
                .variant(Variant::Denoising {
                    noise: Noise::Mask { nu: 1.0 },
                }),
            "[0, 1)",
        ),
        (
            ModelSpec::builder()
                .encoder([784, 32])
                .variant(Variant::Vae {
                    beta: -1.0,
                    samples: 1,
                }),
            "β must be ≥ 0",
        ),
    ];
    for (builder, expected) in cases {
        let what = format!("{builder:?}");
        match builder.build() {
            Err(Error::Config(msg)) => {
                assert!(msg.contains(expected), "{what}: '{msg}' lacks '{expected}'")
            }
            other => panic!("{what}: expected a configuration error, got {other:?}"),
        }
    }
}

#[test]
fn fit_with_checkpoints_lends_the_trainer_and_continues_a_resumed_best() {
    let mut trainer = trainer();
    let mut seen = Vec::new();
    let mut saved = Vec::new();
    let options = FitOptions::epochs(2).report_every(4).checkpoint_every(5);
    let summary = trainer
        .fit_with(&options, |t, event| {
            seen.push(describe(event));
            if let FitEvent::Checkpoint { step } = event {
                assert_eq!(t.step(), *step, "the trainer stands at the checkpoint");
                saved.push(t.state().expect("state").step);
            }
            ControlFlow::Continue(())
        })
        .expect("fit");
    // Reads every 4 steps and at epoch ends (6, 12), checkpoints at 5 and 10, none at the end.
    assert_eq!(
        seen,
        [
            "R4/1", "C5", "R6/1", "E1@6", "R8/2", "C10", "R12/2", "E2@12"
        ]
    );
    assert_eq!(saved, [5, 10]);
    assert!(summary.epochs[0].improved);

    // Checkpoint boundaries never change the result.
    assert_eq!(params_after(12), trainer.parameters().expect("p"));

    // A resumed run's earlier best: an epoch counts as improved only below it.
    for (best_so_far, improves) in [(-1.0, false), (f64::MAX, true)] {
        let summary = self::trainer()
            .fit(&FitOptions::epochs(1).best_so_far(best_so_far), |_| {
                ControlFlow::Continue(())
            })
            .expect("fit");
        assert_eq!(
            summary.epochs[0].improved, improves,
            "best so far {best_so_far}"
        );
        assert_eq!(
            summary.best.is_some(),
            improves,
            "best so far {best_so_far}"
        );
    }
}

#[test]
fn fit_calls_back_with_every_read_then_each_epoch_in_order() {
    let mut trainer = trainer();
    let mut seen = Vec::new();
    let mut totals: Vec<Vec<f64>> = vec![Vec::new()];
    let summary = trainer
        .fit(&FitOptions::epochs(3).report_every(4), |event| {
            seen.push(describe(event));
            match event {
                FitEvent::Report { loss, .. } => {
                    totals.last_mut().expect("an epoch").push(loss.total())
                }
                FitEvent::Epoch(_) => totals.push(Vec::new()),
                FitEvent::Checkpoint { .. } => panic!("no checkpoints were asked for"),
            }
            ControlFlow::Continue(())
        })
        .expect("fit");
    // Reads every 4 steps and at each epoch's end (6, 12, 18).
    assert_eq!(
        seen,
        [
            "R4/1", "R6/1", "E1@6", "R8/2", "R12/2", "E2@12", "R16/3", "R18/3", "E3@18"
        ]
    );
    assert!(!summary.stopped);
    assert_eq!(trainer.step(), 18);
    assert_eq!(summary.epochs.len(), 3);
    for (e, reads) in summary.epochs.iter().zip(&totals) {
        let mean = reads.iter().sum::<f64>() / reads.len() as f64;
        assert!(
            (e.train.total() - mean).abs() <= 1e-12 * mean.abs(),
            "epoch {}: {} is not the mean of its reads {reads:?}",
            e.epoch,
            e.train.total()
        );
        assert_eq!(e.val, None);
        assert!(e.samples_per_sec > 0.0 && e.lr == 1e-2);
    }
    let best = summary.best.as_ref().expect("a best epoch");
    let lowest = summary
        .epochs
        .iter()
        .min_by(|a, b| a.monitored().total_cmp(&b.monitored()))
        .expect("epochs");
    assert_eq!((best.epoch, best.loss), (lowest.epoch, lowest.monitored()));

    // Reading and calling back never change the result: the same 18 steps in one call.
    assert_eq!(params_after(18), trainer.parameters().expect("p"));
    // The best epoch's parameters are those at its step.
    assert_eq!(params_after(best.step), best.params);
}

#[test]
fn fit_validates_each_epoch_and_monitors_the_validation_loss() {
    let val = Dataset::new(30, 10, random(300, 0.0, 1.0, 22)).expect("val");
    let mut trainer = trainer();
    let summary = trainer
        .fit(&FitOptions::steps(14).validation(&val), |_| {
            ControlFlow::Continue(())
        })
        .expect("fit");
    // 14 steps: two full epochs and a partial third.
    let steps: Vec<u64> = summary.epochs.iter().map(|e| e.step).collect();
    assert_eq!(steps, [6, 12, 14]);
    let params = trainer.parameters().expect("params");
    let want = hourglass::infer::evaluate(&spec(), &params, &val, &Device::Cpu, config().seed)
        .expect("evaluate");
    let last = summary.epochs.last().expect("epochs");
    assert_eq!(last.val.as_ref(), Some(&want));
    assert_eq!(last.monitored(), want.total());

    let wrong = Dataset::new(3, 7, vec![0.0; 21]).expect("data");
    let err = trainer
        .fit(&FitOptions::epochs(4).validation(&wrong), |_| {
            ControlFlow::Continue(())
        })
        .expect_err("validation data of the wrong width");
    assert!(err.to_string().contains("features"), "{err}");
    assert_eq!(trainer.step(), 14, "refused before training");
}

#[test]
fn a_callback_stops_fit_exactly_where_it_says_and_fit_continues_from_there() {
    // Stop at the end of epoch 2.
    let mut trainer = trainer();
    let summary = trainer
        .fit(&FitOptions::epochs(5), |event| match event {
            FitEvent::Epoch(e) if e.epoch == 2 => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .expect("fit");
    assert!(summary.stopped);
    assert_eq!(summary.epochs.len(), 2);
    assert_eq!(trainer.step(), 12);

    // Stop at a read in the middle of an epoch: no summary for that epoch.
    let mut trainer = self::trainer();
    let mut seen = Vec::new();
    let summary = trainer
        .fit(&FitOptions::epochs(5).report_every(2), |event| {
            seen.push(describe(event));
            match event {
                FitEvent::Report { step: 8, .. } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        })
        .expect("fit");
    assert_eq!(seen, ["R2/1", "R4/1", "R6/1", "E1@6", "R8/2"]);
    assert_eq!((trainer.step(), summary.epochs.len()), (8, 1));

    // Fitting again continues to the same end as one uninterrupted run, bit for bit.
    let rest = trainer
        .fit(&FitOptions::epochs(3), |_| ControlFlow::Continue(()))
        .expect("fit");
    assert_eq!(trainer.step(), 18);
    let epochs: Vec<u64> = rest.epochs.iter().map(|e| e.epoch).collect();
    assert_eq!(epochs, [2, 3]);
    let mut straight = self::trainer();
    straight
        .fit(&FitOptions::epochs(3), |_| ControlFlow::Continue(()))
        .expect("fit");
    assert_eq!(
        straight.parameters().expect("p"),
        trainer.parameters().expect("p")
    );
    // A run already at its end does nothing.
    let none = trainer
        .fit(&FitOptions::epochs(3), |_| panic!("no events"))
        .expect("fit");
    assert_eq!(none.epochs.len(), 0);
}

#[test]
fn early_stop_ends_fit_after_patience_epochs_without_a_new_best() {
    // A rate so small that the parameters move by ~1e-30 (nothing, next to f32's rounding of
    // the loss), and a fixed order: every epoch's loss equals the first's, so no epoch after
    // the first is a new best.
    let frozen = TrainConfig {
        shuffle: false,
        ..TrainConfig::new(16, 1e-30)
    };
    let mut trainer = Trainer::new(&spec(), &frozen, &data(), &Device::Cpu, None).expect("t");
    let mut stop = EarlyStop::new(2);
    let summary = trainer
        .fit(&FitOptions::epochs(10), |e| stop.observe(e))
        .expect("fit");
    let losses: Vec<f64> = summary.epochs.iter().map(|e| e.monitored()).collect();
    assert!(losses.windows(2).all(|w| w[0] == w[1]), "{losses:?}");
    // Epoch 1 is the best; epochs 2 and 3 are not better: stop after epoch 3.
    assert!(summary.stopped);
    assert_eq!(summary.epochs.len(), 3);
    assert_eq!(trainer.step(), 18);
    assert_eq!(summary.best.as_ref().map(|b| b.epoch), Some(1));
    assert_eq!(stop.since_best(), 2);
}

#[test]
fn a_model_saved_through_the_library_loads_back_identical() {
    let mut trainer = trainer();
    trainer
        .fit(&FitOptions::epochs(2), |_| ControlFlow::Continue(()))
        .expect("fit");
    let mut model = trainer.autoencoder().expect("model");
    let dir = std::env::temp_dir().join(format!("hourglass-library-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("model.safetensors");
    model.save(&path).expect("save");

    let mut loaded = Autoencoder::load(&path, Device::Cpu).expect("load");
    assert_eq!(loaded.spec(), model.spec());
    assert_eq!(loaded.parameters(), model.parameters());
    assert_eq!(
        loaded.parameters(),
        &trainer.parameters().expect("params"),
        "the trainer's parameters"
    );
    let rows = data();
    assert_eq!(
        loaded.encode(&rows).expect("encode"),
        model.encode(&rows).expect("encode")
    );
    assert_eq!(
        loaded.reconstruct(&rows).expect("reconstruct"),
        model.reconstruct(&rows).expect("reconstruct")
    );
    // The file is an ordinary checkpoint, with PyTorch's names.
    let (spec, params) = hourglass::io::checkpoint::load(&path).expect("checkpoint");
    assert_eq!(&spec, model.spec());
    assert!(params.get("encoder.0.weight").is_some());
    // A missing file is an I/O error naming it.
    let missing = dir.join("missing.safetensors");
    match Autoencoder::load(&missing, Device::Cpu) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        Err(e) => panic!("expected an I/O error, got {e}"),
        Ok(_) => panic!("expected an I/O error, got a model"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn encoding_into_a_gpu_buffer_on_the_cpu_device_is_a_clear_error() {
    let mut model = trainer().autoencoder().expect("model");
    let err = model
        .encode_to_device(&data())
        .expect_err("no GPU buffer on the CPU");
    assert!(err.to_string().contains("needs a GPU device"), "{err}");
}

#[test]
fn an_evaluator_built_once_scores_any_parameters_like_evaluate() {
    use hourglass::infer::{Evaluator, evaluate};
    let (spec, data) = (spec(), data());
    let mut t = trainer();
    let before = t.parameters().expect("p");
    t.train_steps(10, false).expect("train");
    let after = t.parameters().expect("p");
    // The evaluator keeps its graphs and data; evaluate builds them anew each call.
    let mut evaluator = Evaluator::new(&spec, &data, &Device::Cpu, 3).expect("evaluator");
    for params in [&before, &after, &before] {
        let once = evaluate(&spec, params, &data, &Device::Cpu, 3).expect("evaluate");
        assert_eq!(evaluator.evaluate(params).expect("reused"), once);
    }
    let other = ModelSpec::mirrored(&[spec.input_dim(), 3]);
    let wrong = hourglass::model::Parameters::init(&other, 1);
    let e = evaluator.evaluate(&wrong).unwrap_err().to_string();
    assert!(e.contains("do not fit"), "{e}");
}
