//! Every WGSL module parses, validates and translates to SPIR-V with naga — no GPU needed, so
//! shaders that lavapipe cannot run (cooperative matrices) are still checked in CI.

use hourglass::gpu::Kernel;

#[test]
fn every_kernel_compiles_to_spirv() {
    for kernel in Kernel::ALL {
        let module = naga::front::wgsl::parse_str(kernel.source())
            .unwrap_or_else(|e| panic!("{kernel:?}: {}", e.emit_to_string(kernel.source())));
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{kernel:?}: {e:?}"));
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((naga::ShaderStage::Compute, kernel.entry())),
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("{kernel:?}: {e:?}"));
        naga::back::spv::write_vec(
            &module,
            &info,
            &naga::back::spv::Options::default(),
            Some(&naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: kernel.entry().into(),
            }),
        )
        .unwrap_or_else(|e| panic!("{kernel:?}: {e:?}"));
    }
}
