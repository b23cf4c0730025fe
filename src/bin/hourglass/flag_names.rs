//! Library errors name the library's settings (`loss = bce`, `drop_last`, `clip_grad_norm`);
//! the command line reports them with its flags. This room is the one table from the former to
//! the latter, applied to every error the CLI prints (`output::exit_code`).

/// `(library wording, command-line wording)`, applied in order.
const FLAGS: &[(&str, &str)] = &[
    ("(loss = bce)", "(--loss bce)"),
    (
        "(output_activation = sigmoid)",
        "(--output-activation sigmoid)",
    ),
    ("(code_activation = sigmoid)", "(--code-activation sigmoid)"),
    (
        "use loss = mse with output_activation = identity, or Normalize::Unit to scale each feature",
        "use --loss mse --output-activation identity, or --normalize unit to scale each feature",
    ),
    (
        "contractive projections must",
        "--jacobian-projections must",
    ),
    ("VAE samples must", "--vae-samples must"),
    ("unknown on_nonfinite policy '", "unknown --on-nonfinite '"),
    (
        "clip_grad_norm must be positive",
        "--clip-grad-norm must be positive",
    ),
    (
        "so drop_last leaves no whole batch to train on; turn drop_last off to train",
        "so drop_last (--drop-last) leaves no whole batch to train on; leave it out to train",
    ),
    ("the CSV header setting must be", "--csv-header must be"),
    (
        "give a batch size (the global batch) of at least",
        "give --batch-size (the global batch) of at least",
    ),
    ("(use precision = f32)", "(use --precision f32)"),
    ("(a sparsity target)", "(--sparsity-target)"),
    ("with gradient accumulation", "with --accumulate above 1"),
    (
        "the accumulation count must be at least 1",
        "--accumulate must be at least 1",
    ),
    (
        "lower the accumulation count or the batch size",
        "lower --accumulate or --batch-size",
    ),
    ("bench batch ", "--batch "),
    (
        "(list_adapters_on lists them)",
        "(`hourglass info --backend B` lists them)",
    ),
    // Predictive sparse decomposition (model::psd, train, infer::psd).
    ("PSD (variant = psd)", "--variant psd"),
    ("(variant = psd)", "(--variant psd)"),
    ("(encoder = IN,CODE)", "(--encoder IN,CODE)"),
    ("got encoder = ", "got --encoder "),
    ("(decoder = ", "(--decoder "),
    ("got decoder = ", "got --decoder "),
    ("(tied = true)", "(--tied)"),
    (
        "squared error: loss must be",
        "squared error: --loss must be",
    ),
    (
        "output_activation must be identity",
        "--output-activation must be identity",
    ),
    (
        "code_activation must be tanh",
        "--code-activation must be tanh",
    ),
    ("λ (sparsity) must", "λ (--sparsity) must"),
    ("γ (prediction) must", "γ (--prediction) must"),
    ("inference_steps must", "--inference-steps must"),
    ("inference_steps = ", "--inference-steps "),
    ("leave out precision = mixed", "leave out --precision mixed"),
    ("infer runs the sparse-code", "--infer runs the sparse-code"),
    ("encode it without infer", "leave out --infer"),
    // The GPU's buffer limits (gpu::executor, gpu::conv).
    (
        "use a smaller batch_size or model",
        "use a smaller --batch-size or model",
    ),
    ("or device = cpu", "or --device cpu"),
    (" device = cpu (", " --device cpu ("),
    // Conv models (model::spec) and the bundled dataset's loader (data::fashion).
    ("(e.g. encoder = ", "(e.g. --encoder "),
    (
        "(jacobian_projections = K, e.g. 8)",
        "(--jacobian-projections K, e.g. 8)",
    ),
    (
        "give their folder as the data directory",
        "pass --data-dir DIR",
    ),
];

/// `message` with the library's setting names replaced by the command line's flags.
pub fn in_cli_terms(message: &str) -> String {
    FLAGS
        .iter()
        .fold(message.to_string(), |m, (lib, cli)| m.replace(lib, cli))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hourglass::model::{Activation, Loss, ModelSpec, Variant};

    /// Each library message of the table, produced by the library itself, comes out in flags.
    #[test]
    fn library_messages_come_out_with_their_flags() {
        let mut spec = ModelSpec::mirrored(&[4, 2]);
        spec.loss = Loss::Bce;
        spec.output_activation = Activation::Identity;
        let e = spec.validate().unwrap_err().to_string();
        assert!(!e.contains("--"), "the library names no flag: {e}");
        assert!(
            in_cli_terms(&e)
                .contains("(--loss bce) needs a sigmoid output (--output-activation sigmoid)"),
            "{e}"
        );
        let mut vae = ModelSpec::mirrored(&[4, 2]);
        vae.variant = Variant::Vae {
            beta: 1.0,
            samples: 0,
        };
        let e = vae.validate().unwrap_err().to_string();
        assert!(
            in_cli_terms(&e).contains("--vae-samples must be at least 1"),
            "{e}"
        );
        let e = hourglass::train::NonFinitePolicy::parse("never")
            .unwrap_err()
            .to_string();
        assert!(
            in_cli_terms(&e).contains("unknown --on-nonfinite 'never'"),
            "{e}"
        );
        let e = hourglass::data::csv::CsvHeader::parse("maybe")
            .unwrap_err()
            .to_string();
        assert!(
            in_cli_terms(&e).contains("--csv-header must be yes, no or auto"),
            "{e}"
        );
        // Every PSD refusal, as the library words it and as the command line prints it.
        let cli = |spec: &ModelSpec| {
            let e = spec.validate().unwrap_err().to_string();
            assert!(!e.contains("--"), "the library names no flag: {e}");
            in_cli_terms(&e)
        };
        let mut tied = ModelSpec::psd(6, 4, 0.1, 1.0, 10);
        tied.tied = true;
        assert!(cli(&tied).contains("--variant psd cannot tie weights (--tied)"));
        let mut deep = ModelSpec::psd(6, 4, 0.1, 1.0, 10);
        deep.encoder = vec![6, 5, 4];
        assert!(cli(&deep).contains(
            "--variant psd takes exactly one code layer (--encoder IN,CODE), got --encoder 6,5,4"
        ));
        let mut decoder = ModelSpec::psd(6, 4, 0.1, 1.0, 10);
        decoder.decoder = vec![4, 5, 6];
        assert!(cli(&decoder).contains("(--decoder 4,6), got --decoder 4,5,6"));
        let mut bce = ModelSpec::psd(6, 4, 0.1, 1.0, 10);
        bce.loss = Loss::Bce;
        assert!(cli(&bce).contains("squared error: --loss must be mse, got bce"));
        let mut code = ModelSpec::psd(6, 4, 0.1, 1.0, 10);
        code.code_activation = Activation::Relu;
        assert!(cli(&code).contains("--code-activation must be tanh, got relu"));
        let e = cli(&ModelSpec::psd(6, 4, -0.5, 1.0, 10));
        assert!(
            e.contains("the sparsity weight λ (--sparsity) must be ≥ 0"),
            "{e}"
        );
        let e = cli(&ModelSpec::psd(6, 4, 0.1, -1.0, 10));
        assert!(
            e.contains("the prediction weight γ (--prediction) must be ≥ 0"),
            "{e}"
        );
        let e = cli(&ModelSpec::psd(6, 4, 0.1, 1.0, 0));
        assert!(e.contains("--inference-steps must be at least 1"), "{e}");
        let e = cli(&ModelSpec::psd(6, 4, 0.1, 1.0, 10_001));
        assert!(e.contains("--inference-steps 10001 is more than"), "{e}");
        let data = hourglass::Dataset::new(5, 4, vec![0.5; 20]).unwrap();
        // The trainer's refusals of gradient accumulation.
        let refused = |accumulate| {
            let config = hourglass::TrainConfig {
                accumulate,
                ..hourglass::TrainConfig::new(2, 1e-3)
            };
            let spec = ModelSpec::mirrored(&[4, 2]);
            hourglass::Trainer::new(&spec, &config, &data, &hourglass::Device::Cpu, None)
                .err()
                .unwrap()
                .to_string()
        };
        let e = refused(0);
        assert!(!e.contains("--"), "the library names no flag: {e}");
        assert!(
            in_cli_terms(&e).contains("--accumulate must be at least 1"),
            "{e}"
        );
        let e = refused(3);
        assert!(
            in_cli_terms(&e).ends_with("lower --accumulate or --batch-size"),
            "{e}"
        );
        let e = hourglass::model::BCE_RANGE_HINT;
        assert!(
            in_cli_terms(e)
                .starts_with("use --loss mse --output-activation identity, or --normalize unit")
        );
    }
}
