//! Every WGSL module parses, validates and translates to SPIR-V with naga — no GPU needed, so
//! shaders that lavapipe cannot run (cooperative matrices) are still checked in CI.

use hourglass::gpu::Kernel;

/// `kernel`'s module, parsed and validated with every capability.
fn validated(kernel: Kernel) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(kernel.source())
        .unwrap_or_else(|e| panic!("{kernel:?}: {}", e.emit_to_string(kernel.source())));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{kernel:?}: {e:?}"));
    (module, info)
}

/// The SPIR-V of `kernel`'s entry point specialized with `constants`. naga's SPIR-V writer
/// panics on some cooperative-matrix code (`Expression [N] is not cached!`,
/// ../shared/gpu/README.md); the panic is caught to name the specialization (`what`).
fn spirv(
    kernel: Kernel,
    (module, info): &(naga::Module, naga::valid::ModuleInfo),
    constants: &naga::back::PipelineConstants,
    options: &naga::back::spv::Options,
    what: &str,
) -> Vec<u32> {
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((naga::ShaderStage::Compute, kernel.entry())),
        constants,
    )
    .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    std::panic::catch_unwind(|| {
        naga::back::spv::write_vec(
            &module,
            &info,
            options,
            Some(&naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: kernel.entry().into(),
            }),
        )
    })
    .unwrap_or_else(|_| panic!("{what}: the SPIR-V writer panicked"))
    .unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

#[test]
fn every_kernel_compiles_to_spirv() {
    for kernel in Kernel::ALL {
        spirv(
            kernel,
            &validated(kernel),
            &Default::default(),
            &Default::default(),
            &format!("{kernel:?}"),
        );
    }
}

/// `Kernel::MatmulCoop` opens with its `enable` directives and really uses cooperative matrices.
#[test]
fn coop_matmul_source_uses_cooperative_matrices() {
    let source = Kernel::MatmulCoop.source();
    assert!(
        source.starts_with("enable f16;\nenable wgpu_cooperative_matrix;\n"),
        "matmul_coop.wgsl must come first and open with its enable directives"
    );
    assert!(source.contains("coopMultiplyAdd("));
}

const OP_COOPERATIVE_MATRIX_MUL_ADD_KHR: u32 = 4459;

/// How many instructions of SPIR-V `words` have `opcode`.
fn count_opcode(words: &[u32], opcode: u32) -> usize {
    // The header is five words; each instruction's first word is (word count << 16) | opcode.
    let mut i = 5;
    let mut n = 0;
    while i < words.len() {
        let count = (words[i] >> 16) as usize;
        assert!(count > 0, "malformed SPIR-V at word {i}");
        n += usize::from(words[i] & 0xffff == opcode);
        i += count;
    }
    n
}

/// SPIR-V options as wgpu-hal's Vulkan backend passes them on a Vulkan 1.3 device (the H100):
/// SPIR-V 1.6, clamped indices, no workgroup-memory zeroing (the kernel cache turns it off).
/// Bindings keep their WGSL numbers (`fake_missing_bindings`) instead of wgpu's binding map.
fn vulkan_like_options() -> naga::back::spv::Options<'static> {
    naga::back::spv::Options {
        lang_version: (1, 6),
        flags: naga::back::spv::WriterFlags::empty(),
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: naga::proc::BoundsCheckPolicy::Restrict,
            buffer: naga::proc::BoundsCheckPolicy::Restrict,
            image_load: naga::proc::BoundsCheckPolicy::Restrict,
            binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
        },
        zero_initialize_workgroup_memory: naga::back::spv::ZeroInitializeWorkgroupMemoryMode::None,
        ..Default::default()
    }
}

/// Every specialization the executor can ask of a matmul kernel under mixed precision, with a
/// name for messages: both transposes, every epilogue, each operand loss-scaled (never both)
/// and the activations identity, ReLU and leaky ReLU (`Activation::code` 0, 1, 2).
fn mixed_precision_matmul_constants() -> Vec<(String, naga::back::PipelineConstants)> {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let mut all = Vec::new();
    for trans_a in [false, true] {
        for trans_b in [false, true] {
            for epilogue in 0..=4u32 {
                for (scale_a, scale_b) in [(false, false), (true, false), (false, true)] {
                    for act in 0..=2u32 {
                        let name = format!(
                            "TRANS_A={trans_a} TRANS_B={trans_b} EPILOGUE={epilogue} \
                             SCALE_A={scale_a} SCALE_B={scale_b} ACT={act}"
                        );
                        let mut constants = naga::back::PipelineConstants::default();
                        constants.insert("TRANS_A".into(), flag(trans_a));
                        constants.insert("TRANS_B".into(), flag(trans_b));
                        constants.insert("EPILOGUE".into(), f64::from(epilogue));
                        constants.insert("HALF".into(), 1.0);
                        constants.insert("SCALE_A".into(), flag(scale_a));
                        constants.insert("SCALE_B".into(), flag(scale_b));
                        constants.insert("ACT".into(), f64::from(act));
                        all.push((name, constants));
                    }
                }
            }
        }
    }
    all
}

/// Every mixed-precision specialization of the matmul kernels specializes, validates and
/// translates to SPIR-V, with naga's default options and with wgpu's Vulkan ones; only
/// `MatmulCoop` multiplies on cooperative matrices (its four accumulators' multiply-adds).
#[test]
fn matmul_specializations_compile_to_spirv() {
    let options = [naga::back::spv::Options::default(), vulkan_like_options()];
    let specializations = mixed_precision_matmul_constants();
    assert_eq!(specializations.len(), 2 * 2 * 5 * 3 * 3);
    for kernel in [
        Kernel::Matmul,
        Kernel::MatmulSmall,
        Kernel::MatmulLarge,
        Kernel::MatmulCoop,
    ] {
        let validated = validated(kernel);
        let expected_mul_adds = if kernel == Kernel::MatmulCoop { 4 } else { 0 };
        for (name, constants) in &specializations {
            let what = format!("{kernel:?} {name}");
            for options in &options {
                let words = spirv(kernel, &validated, constants, options, &what);
                assert_eq!(
                    count_opcode(&words, OP_COOPERATIVE_MATRIX_MUL_ADD_KHR),
                    expected_mul_adds,
                    "{what}: cooperative multiply-adds"
                );
            }
        }
    }
}

/// Every specialization the executor asks of the conv kernels: each product mode with every
/// epilogue, and the fold and reductions with their flags (Activation codes 0–4).
#[test]
fn conv_specializations_compile_to_spirv() {
    let constants = |pairs: &[(&str, f64)]| {
        let mut c = naga::back::PipelineConstants::default();
        for (name, value) in pairs {
            c.insert((*name).into(), *value);
        }
        c
    };
    for kernel in [Kernel::Conv2d, Kernel::Conv2dSmall] {
        let module = validated(kernel);
        for mode in [0.0, 2.0, 3.0] {
            for epilogue in 0..=4 {
                for act in 0..=4 {
                    let what = format!("{kernel:?} MODE={mode} EPILOGUE={epilogue} ACT={act}");
                    let c = constants(&[
                        ("MODE", mode),
                        ("EPILOGUE", f64::from(epilogue)),
                        ("ACT", f64::from(act)),
                    ]);
                    spirv(kernel, &module, &c, &vulkan_like_options(), &what);
                }
            }
        }
    }
    let module = validated(Kernel::Col2im);
    for epilogue in 0..=4 {
        for act in 0..=4 {
            let c = constants(&[("EPILOGUE", f64::from(epilogue)), ("ACT", f64::from(act))]);
            spirv(
                Kernel::Col2im,
                &module,
                &c,
                &vulkan_like_options(),
                "col2im",
            );
        }
    }
    for kernel in [Kernel::ConvWeightGradSum, Kernel::ChannelSum] {
        let module = validated(kernel);
        for accumulate in [0.0, 1.0] {
            let c = constants(&[("ACCUMULATE", accumulate)]);
            spirv(
                kernel,
                &module,
                &c,
                &vulkan_like_options(),
                &format!("{kernel:?}"),
            );
        }
    }
}
