//! Device memory of the benchmark workloads' training graphs: everything but the resident
//! data set stays within 1.5× (conv_ae: 1.7×) of what training cannot do without — parameters, Adam's two
//! moments and the layers' activations. Counted from the graph's buffer list, which is exactly
//! what the GPU executor allocates (one buffer each, plus a few bytes of uniforms).

use hourglass::bench::Workload;
use hourglass::graph::build_training_graph;
use hourglass::optim::OptimizerConfig;

#[test]
fn training_graphs_stay_within_one_and_a_half_times_the_essential_memory() {
    for w in Workload::all() {
        let rows = 2 * w.batch;
        let tg = build_training_graph(&w.spec, w.batch, rows, &OptimizerConfig::adam(1e-3));
        let floats = |ids: &mut dyn Iterator<Item = usize>| -> usize {
            ids.map(|b| tg.graph.buffers[b].len).sum()
        };
        let data = [tg.data.buf, tg.order.buf];
        let total = floats(&mut (0..tg.graph.buffers.len()).filter(|b| !data.contains(b)));
        let mut acts: Vec<usize> = tg.activations.iter().map(|t| t.buf).collect();
        acts.dedup();
        let essential = 3 * tg.layout.len + floats(&mut acts.into_iter());
        let ratio = total as f64 / essential as f64;
        eprintln!(
            "{}: {:.1} MiB in the graph without data, {:.1} MiB essential: {ratio:.3}×",
            w.name,
            total as f64 * 4.0 / 1048576.0,
            essential as f64 * 4.0 / 1048576.0
        );
        // conv_ae (1.67×): its two gradient ping-pong buffers are as large as its largest
        // feature map (256 × 32×14×14 floats each), where a dense model's are small beside its
        // weights; writing each layer's input gradient over the activation it no longer needs
        // would bring it under 1.3× (not done yet: a dispatch cannot bind one buffer both as
        // its read-only activation and as its output).
        let bound = if w.name == "conv_ae" { 1.7 } else { 1.5 };
        assert!(
            ratio <= bound,
            "{}: {ratio:.3}× the essential memory",
            w.name
        );
    }
}
