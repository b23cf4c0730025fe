//! Metal, DX12 and GL without the hardware: every kernel, with every specialization the executor
//! can request (`Kernel::specializations`), is specialized, validated and written by naga's MSL,
//! HLSL and GLSL back ends (the ones wgpu's Metal, DX12 and GL backends use), the same way
//! tests/shaders.rs writes SPIR-V for Vulkan. Any error fails the test, naming the kernel, the
//! specialization and the target.
//!
//! One kernel cannot be written everywhere: `MatmulCoop` (f16 cooperative matrices) translates
//! to MSL but not to HLSL or GLSL, whose naga writers have no cooperative-matrix types. The
//! executor knows (`gpu::cooperative_matrix_translates_to`) and takes the f32-tile kernels
//! with `HALF` there instead; the last tests show both halves.

use hourglass::gpu::{Kernel, cooperative_matrix_translates_to};
use naga::back::PipelineConstants;

type Validated = (naga::Module, naga::valid::ModuleInfo);

fn validated(kernel: Kernel) -> Validated {
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

/// The module of `kernel` with `constants` applied, for its entry point.
fn specialized(kernel: Kernel, v: &Validated, constants: &[(&str, f64)]) -> Validated {
    let constants: PipelineConstants = constants.iter().map(|(k, x)| (k.to_string(), *x)).collect();
    let (m, i) = naga::back::pipeline_constants::process_overrides(
        &v.0,
        &v.1,
        Some((naga::ShaderStage::Compute, kernel.entry())),
        &constants,
    )
    .unwrap_or_else(|e| panic!("{kernel:?} {constants:?}: {e:?}"));
    (m.into_owned(), i.into_owned())
}

/// A writer's panic (naga's HLSL and GLSL writers panic on cooperative matrices) as an error.
fn caught(
    f: impl FnOnce() -> Result<String, String> + std::panic::UnwindSafe,
) -> Result<String, String> {
    std::panic::catch_unwind(f).unwrap_or_else(|p| {
        Err(p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .map_or("the writer panicked".into(), |s| {
                format!("the writer panicked: {s}")
            }))
    })
}

/// MSL as wgpu's Metal backend writes it on macOS 12+ (MSL 2.4) and on Metal 3 devices.
fn msl(version: (u8, u8)) -> impl Fn(Kernel, &Validated) -> Result<String, String> {
    move |kernel, (module, info)| {
        let options = naga::back::msl::Options {
            lang_version: version,
            zero_initialize_workgroup_memory: false,
            ..Default::default()
        };
        let pipeline = naga::back::msl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, kernel.entry().into())),
            ..Default::default()
        };
        let (module, info) = (module.clone(), info.clone());
        caught(move || {
            naga::back::msl::write_string(&module, &info, &options, &pipeline)
                .map(|(s, _)| s)
                .map_err(|e| format!("{e:?}"))
        })
    }
}

/// HLSL for DXC (shader model 6.2, f16 types) and for FXC (5.1), wgpu's DX12 compilers.
fn hlsl(
    model: naga::back::hlsl::ShaderModel,
) -> impl Fn(Kernel, &Validated) -> Result<String, String> {
    move |kernel, (module, info)| {
        let options = naga::back::hlsl::Options {
            shader_model: model,
            zero_initialize_workgroup_memory: false,
            ..Default::default()
        };
        let pipeline = naga::back::hlsl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, kernel.entry().into())),
        };
        let (module, info) = (module.clone(), info.clone());
        caught(move || {
            let mut out = String::new();
            naga::back::hlsl::Writer::new(&mut out, &options, &pipeline)
                .write(&module, &info, None)
                .map_err(|e| format!("{e:?}"))?;
            Ok(out)
        })
    }
}

/// GLSL as wgpu's GL backend writes it: desktop GL 4.5 (llvmpipe, what CI runs) and GLES 3.1.
fn glsl(
    version: naga::back::glsl::Version,
) -> impl Fn(Kernel, &Validated) -> Result<String, String> {
    move |kernel, (module, info)| {
        let options = naga::back::glsl::Options {
            version,
            zero_initialize_workgroup_memory: false,
            ..Default::default()
        };
        let pipeline = naga::back::glsl::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: kernel.entry().into(),
            multiview: None,
        };
        let (module, info) = (module.clone(), info.clone());
        caught(move || {
            let mut out = String::new();
            naga::back::glsl::Writer::new(
                &mut out,
                &module,
                &info,
                &options,
                &pipeline,
                naga::proc::BoundsCheckPolicies::default(),
            )
            .and_then(|mut w| w.write())
            .map_err(|e| format!("{e:?}"))?;
            Ok(out)
        })
    }
}

/// Writes every specialization of every kernel (but `skip`) with each of `targets`; fails
/// with every error found. Returns how many translations were made.
fn translate_all(
    targets: &[(&str, &dyn Fn(Kernel, &Validated) -> Result<String, String>)],
    skip: &[Kernel],
) -> usize {
    let mut errors = Vec::new();
    let mut made = 0;
    for kernel in Kernel::ALL.into_iter().filter(|k| !skip.contains(k)) {
        let v = validated(kernel);
        for constants in kernel.specializations() {
            let s = specialized(kernel, &v, &constants);
            for (name, write) in targets {
                match write(kernel, &s) {
                    Ok(text) if !text.is_empty() => made += 1,
                    Ok(_) => errors.push(format!("{name} {kernel:?} {constants:?}: empty output")),
                    Err(e) => errors.push(format!("{name} {kernel:?} {constants:?}: {e}")),
                }
                if errors.len() > 20 {
                    break;
                }
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} failures:\n{}",
        errors.len(),
        errors.join("\n")
    );
    made
}

fn total(skip: &[Kernel]) -> usize {
    Kernel::ALL
        .into_iter()
        .filter(|k| !skip.contains(k))
        .map(|k| k.specializations().len())
        .sum()
}

#[test]
fn every_kernel_and_specialization_translates_to_msl() {
    let (v24, v30) = (msl((2, 4)), msl((3, 0)));
    let made = translate_all(&[("MSL 2.4", &v24), ("MSL 3.0", &v30)], &[]);
    assert_eq!(made, 2 * total(&[]));
}

#[test]
fn every_kernel_and_specialization_translates_to_hlsl() {
    use naga::back::hlsl::ShaderModel;
    let (dxc, fxc) = (hlsl(ShaderModel::V6_2), hlsl(ShaderModel::V5_1));
    let skip = [Kernel::MatmulCoop];
    let made = translate_all(&[("HLSL SM 6.2", &dxc), ("HLSL SM 5.1", &fxc)], &skip);
    assert_eq!(made, 2 * total(&skip));
}

#[test]
fn every_kernel_and_specialization_translates_to_glsl() {
    use naga::back::glsl::Version;
    let (desktop, es) = (
        glsl(Version::Desktop(450)),
        glsl(Version::Embedded {
            version: 310,
            is_webgl: false,
        }),
    );
    let skip = [Kernel::MatmulCoop];
    let made = translate_all(&[("GLSL 450", &desktop), ("GLSL ES 310", &es)], &skip);
    assert_eq!(made, 2 * total(&skip));
}

/// The cooperative-matrix kernel cannot be written for DX12 or GL, and the executor knows: it
/// offers f16 matrix units (and so takes `MatmulCoop`) only on Vulkan and Metal.
#[test]
fn coop_matmul_cannot_be_written_for_hlsl_or_glsl_and_the_executor_falls_back() {
    let v = validated(Kernel::MatmulCoop);
    let constants = &Kernel::MatmulCoop.specializations()[0];
    let s = specialized(Kernel::MatmulCoop, &v, constants);
    let hlsl = hlsl(naga::back::hlsl::ShaderModel::V6_2)(Kernel::MatmulCoop, &s);
    let glsl = glsl(naga::back::glsl::Version::Desktop(450))(Kernel::MatmulCoop, &s);
    assert!(
        hlsl.is_err(),
        "naga now writes cooperative matrices to HLSL: allow DX12"
    );
    assert!(
        glsl.is_err(),
        "naga now writes cooperative matrices to GLSL: allow GL"
    );
    let msl = msl((3, 0))(Kernel::MatmulCoop, &s).expect("MSL has simdgroup matrices");
    assert!(
        msl.contains("simdgroup"),
        "the MSL multiplies on simdgroup matrices"
    );
    assert!(cooperative_matrix_translates_to(wgpu::Backend::Vulkan));
    assert!(cooperative_matrix_translates_to(wgpu::Backend::Metal));
    assert!(!cooperative_matrix_translates_to(wgpu::Backend::Dx12));
    assert!(!cooperative_matrix_translates_to(wgpu::Backend::Gl));
}

mod common;

/// The executor asks only for listed specializations: training every variant (f32 and mixed
/// precision, Adam, AdamW and SGD, both losses, clipping) and encoding compiles nothing the
/// lists above do not cover, so the translations above are of everything that can run.
#[test]
fn the_executor_requests_only_listed_specializations() {
    use hourglass::graph::Precision;
    use hourglass::model::{Activation, Loss, ModelSpec, Noise, Variant};
    use hourglass::optim::OptimizerConfig;
    use hourglass::train::{TrainConfig, Trainer};
    use hourglass::{Dataset, Device};
    let Some(ctx) = common::gpu() else { return };
    let data = Dataset::new(20, 9, common::random(20 * 9, 0.0, 1.0, 7)).expect("data");
    let variants = [
        Variant::Plain,
        Variant::Sparse {
            lambda: 0.1,
            target: None,
        },
        Variant::Sparse {
            lambda: 0.1,
            target: Some(0.1),
        },
        Variant::Denoising {
            noise: Noise::Gaussian { sigma: 0.1 },
        },
        Variant::Denoising {
            noise: Noise::SaltPepper { nu: 0.1 },
        },
        Variant::Contractive {
            lambda: 0.1,
            projections: None,
        },
        Variant::Contractive {
            lambda: 0.1,
            projections: Some(2),
        },
        Variant::Vae {
            beta: 1.0,
            samples: 1,
        },
    ];
    let mut adamw = OptimizerConfig::adam(1e-3);
    adamw.kind = hourglass::optim::OptimizerKind::Adamw;
    adamw.weight_decay = 0.01;
    for (i, variant) in variants.into_iter().enumerate() {
        let mut spec = ModelSpec::mirrored(&[9, 5, 3]);
        spec.activation = Activation::ALL[i % 5];
        if matches!(
            variant,
            Variant::Sparse {
                target: Some(_),
                ..
            }
        ) {
            spec.code_activation = Activation::Sigmoid;
        }
        spec.variant = variant;
        if i % 2 == 1 {
            spec.loss = Loss::Mse;
            spec.output_activation = Activation::Identity;
        }
        let optimizer = [
            OptimizerConfig::adam(1e-3),
            adamw,
            OptimizerConfig::sgd(1e-2, 0.9),
        ][i % 3];
        for mixed in [false, true] {
            let config = TrainConfig {
                optimizer,
                clip_grad_norm: (i % 2 == 0).then_some(1.0),
                precision: if mixed {
                    Precision::Mixed
                } else {
                    Precision::F32
                },
                emulate_mixed: mixed,
                ..TrainConfig::new(8, 1e-3)
            };
            let mut t = Trainer::new(&spec, &config, &data, &Device::Gpu(ctx.clone()), None)
                .unwrap_or_else(|e| panic!("{spec:?}: {e}"));
            t.train_steps(3, true).expect("steps");
            t.autoencoder()
                .expect("model")
                .encode(&data)
                .expect("encode");
        }
    }
    assert_eq!(ctx.unlisted_specializations(), Vec::<String>::new());
}

/// Every kernel fits wgpu's downlevel limits that `GpuContext::minimum_limits` keeps (what a
/// GLES 3.1 or older GPU guarantees): at most 256 invocations per workgroup, at most
/// 16,352 bytes of workgroup memory, so no kernel needs a larger adapter than the minimum.
/// The one exception, the cooperative-matrix matmul, declares `COOP_WORKGROUP_BYTES`, and the
/// context offers it only on devices whose limit holds that (context.rs's unit test).
#[test]
fn every_kernel_fits_the_downlevel_workgroup_limits() {
    let limits = hourglass::gpu::GpuContext::minimum_limits();
    let mut over = Vec::new();
    for kernel in Kernel::ALL {
        let v = validated(kernel);
        for constants in kernel.specializations() {
            let (module, info) = specialized(kernel, &v, &constants);
            let (index, ep) = module
                .entry_points
                .iter()
                .enumerate()
                .find(|(_, e)| e.name == kernel.entry())
                .expect("the entry point");
            let [x, y, z] = ep.workgroup_size;
            assert!(
                x * y * z <= limits.max_compute_invocations_per_workgroup
                    && x <= limits.max_compute_workgroup_size_x
                    && y <= limits.max_compute_workgroup_size_y
                    && z <= limits.max_compute_workgroup_size_z,
                "{kernel:?}: workgroup {x}×{y}×{z}"
            );
            assert_eq!(
                x * y * z,
                kernel.threads(),
                "{kernel:?}: the cost model's threads"
            );
            let mut layouter = naga::proc::Layouter::default();
            layouter.update(module.to_ctx()).expect("layout");
            let ep_info = info.get_entry_point(index);
            let shared: u32 = module
                .global_variables
                .iter()
                .filter(|(h, g)| {
                    g.space == naga::AddressSpace::WorkGroup && !ep_info[*h].is_empty()
                })
                .map(|(_, g)| layouter[g.ty].size)
                .sum();
            if kernel == Kernel::MatmulCoop {
                // Over the downlevel limit: the adapter is asked (f16 matrix units need it).
                assert_eq!(shared, hourglass::gpu::COOP_WORKGROUP_BYTES, "{kernel:?}");
                assert!(shared > limits.max_compute_workgroup_storage_size);
            } else if shared > limits.max_compute_workgroup_storage_size {
                over.push(format!("{kernel:?} {constants:?}: {shared} bytes"));
            }
        }
    }
    over.dedup_by(|a, b| a.split(' ').next() == b.split(' ').next());
    assert!(
        over.is_empty(),
        "over the downlevel workgroup memory:\n{}",
        over.join("\n")
    );
}
