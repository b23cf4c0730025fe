//! Bring your own wgpu device: an application creates its instance, adapter, device and queue,
//! hands them to Hourglass with `GpuContext::from_wgpu`, trains, and reads the codes out of
//! the wgpu buffer Hourglass returns with its own command encoder, as a renderer would.
//!
//! Like every GPU test, these fail when there is no adapter in CI (`CI` set) and elsewhere
//! unless `HOURGLASS_SKIP_GPU_TESTS=1`, which skips them (lavapipe will do).

mod common;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::random;
use hourglass::gpu::{DeviceMatrix, GpuContext};
use hourglass::train::FitOptions;
use hourglass::{Activation, Dataset, Device, Error, ModelSpec, TrainConfig, Trainer};

/// The application's side: its device and queue, and how many errors reached its own
/// uncaptured-error handler.
struct App {
    device: wgpu::Device,
    queue: wgpu::Queue,
    errors: Arc<AtomicUsize>,
}

/// Creates the application's device with `limits`, as an application would, on the first
/// adapter wgpu lists (hardware first). `None` only when skipping is allowed (see
/// `common::gpu`).
fn app_device(limits: wgpu::Limits) -> Option<App> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
    });
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters.sort_by_key(|a| match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    });
    let Some(adapter) = adapters.into_iter().next() else {
        let skip = std::env::var("HOURGLASS_SKIP_GPU_TESTS").is_ok_and(|v| v == "1")
            && std::env::var("CI").is_err();
        if skip {
            eprintln!("skipping a GPU test: no adapter");
            return None;
        }
        panic!("this test needs a GPU adapter (lavapipe will do)");
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("the application's device"),
        required_limits: limits,
        ..Default::default()
    }))
    .expect("the application's device");
    let errors = Arc::new(AtomicUsize::new(0));
    let count = errors.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        eprintln!("the application's handler: {e}");
        count.fetch_add(1, Ordering::SeqCst);
    }));
    Some(App {
        device,
        queue,
        errors,
    })
}

impl App {
    /// Copies `m` into a staging buffer with the application's own command encoder and reads
    /// it: what a program that hands the codes to its next pass would see.
    fn read(&self, m: &DeviceMatrix) -> Vec<f32> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("the application's staging"),
            size: m.byte_len().max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("the application's copy"),
            });
        encoder.copy_buffer_to_buffer(&m.buffer, m.offset, &staging, 0, m.byte_len());
        self.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
        rx.recv().expect("callback").expect("mapped");
        let values = bytemuck::cast_slice::<u8, f32>(&slice.get_mapped_range().expect("range"))
            [..m.rows * m.cols]
            .to_vec();
        staging.unmap();
        values
    }

    /// A buffer of the application's holding `values` after `pad` bytes of something else.
    fn upload(&self, values: &[f32], pad: u64) -> wgpu::Buffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("the application's rows"),
            size: pad + values.len() as u64 * 4,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue
            .write_buffer(&buffer, pad, bytemuck::cast_slice(values));
        buffer
    }
}

fn spec() -> ModelSpec {
    ModelSpec::builder()
        .encoder([12, 8, 3])
        .activation(Activation::Tanh)
        .build()
        .expect("spec")
}

/// 300 rows: more than one 256-row chunk of the forward pass, the last one partial.
fn data() -> Dataset {
    Dataset::new(300, 12, random(300 * 12, 0.0, 1.0, 31)).expect("data")
}

fn config() -> TrainConfig {
    TrainConfig {
        seed: 4,
        ..TrainConfig::new(20, 1e-2)
    }
}

#[test]
fn hourglass_trains_and_encodes_on_the_applications_device_and_leaves_codes_there() {
    // The least Hourglass asks for: enough for this model.
    let Some(app) = app_device(GpuContext::minimum_limits()) else {
        return;
    };
    let ctx = GpuContext::from_wgpu(app.device.clone(), app.queue.clone()).expect("context");
    assert!(ctx.is_external());
    let device = Device::Gpu(ctx);
    let data = data();
    let mut trainer = Trainer::new(&spec(), &config(), &data, &device, None).expect("trainer");
    let summary = trainer
        .fit(&FitOptions::epochs(2), |_| ControlFlow::Continue(()))
        .expect("fit");
    assert_eq!(trainer.step(), 30);
    let losses: Vec<f64> = summary.epochs.iter().map(|e| e.train.total()).collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");

    let mut model = trainer.autoencoder().expect("model");
    let want = model.encode(&data).expect("encode on the host");
    assert_eq!((want.rows, want.cols), (300, 3));

    // Host rows in, codes left on the device.
    let codes = model.encode_to_device(&data).expect("encode to device");
    assert_eq!((codes.rows, codes.cols, codes.offset), (300, 3, 0));
    assert_eq!(codes.row_stride(), 12);
    assert_eq!(codes.byte_len(), 300 * 3 * 4);
    assert!(codes.buffer.usage().contains(
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::VERTEX
    ));
    assert_eq!(
        app.read(&codes),
        want.values,
        "codes read by the application"
    );

    // Rows already in one of the application's buffers, 256 bytes in: device to device.
    let rows = DeviceMatrix {
        buffer: app.upload(&data.values, 256),
        offset: 256,
        rows: data.rows,
        cols: data.cols,
    };
    let codes2 = model.encode_on_device(&rows).expect("encode on device");
    assert_eq!(
        app.read(&codes2),
        want.values,
        "codes of rows on the device"
    );
    // The first call's buffer is the application's to keep: the second did not touch it.
    assert_eq!(app.read(&codes), want.values);

    // The same training on a device Hourglass opens itself gives the same parameters.
    if let Some(own) = common::gpu()
        && own.adapter.name == app.device.adapter_info().name
    {
        let mut t =
            Trainer::new(&spec(), &config(), &data, &Device::Gpu(own), None).expect("trainer");
        t.train_steps(30, false).expect("train");
        assert_eq!(t.parameters().expect("p"), trainer.parameters().expect("p"));
    }
    assert_eq!(
        app.errors.load(Ordering::SeqCst),
        0,
        "nothing reached the app's handler"
    );
    // Hourglass left the application's handler in place: the application's own mistake
    // still reaches it.
    let _bad = app.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("a mistake of the application's"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    assert_eq!(
        app.errors.load(Ordering::SeqCst),
        1,
        "the app's handler is its own"
    );
}

#[test]
fn a_device_below_the_minimum_limits_is_refused_naming_the_limit() {
    let Some(app) = app_device(wgpu::Limits::downlevel_defaults()) else {
        return;
    };
    let err = GpuContext::from_wgpu(app.device.clone(), app.queue.clone())
        .err()
        .expect("refused")
        .to_string();
    let need = GpuContext::minimum_limits().max_storage_buffers_per_shader_stage;
    assert!(
        err.contains(&format!(
            "max_storage_buffers_per_shader_stage is 4, needs {need}"
        )),
        "{err}"
    );
    assert!(
        err.contains("minimum_limits"),
        "says what to request: {err}"
    );
}

#[test]
fn hourglass_errors_on_the_applications_device_come_back_as_results() {
    let Some(app) = app_device(wgpu::Limits::default()) else {
        return;
    };
    let device =
        Device::Gpu(GpuContext::from_wgpu(app.device.clone(), app.queue.clone()).expect("context"));
    let data = data();
    let mut trainer = Trainer::new(&spec(), &config(), &data, &device, None).expect("trainer");
    trainer.train_steps(3, false).expect("train");
    let mut model = trainer.autoencoder().expect("model");

    // Rows in a buffer without COPY_SRC: refused before anything is recorded.
    let no_copy = app.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("storage only"),
        size: data.values.len() as u64 * 4,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let err = model
        .encode_on_device(&DeviceMatrix {
            buffer: no_copy,
            offset: 0,
            rows: data.rows,
            cols: data.cols,
        })
        .expect_err("no COPY_SRC");
    assert!(err.to_string().contains("COPY_SRC"), "{err}");

    // Rows in a buffer the application destroyed: wgpu's validation error at the submission
    // is Hourglass's result, and the application's handler never hears of it.
    let gone = DeviceMatrix {
        buffer: app.upload(&data.values, 0),
        offset: 0,
        rows: data.rows,
        cols: data.cols,
    };
    gone.buffer.destroy();
    match model.encode_on_device(&gone) {
        Err(Error::Gpu(msg)) => assert!(msg.contains("destroyed"), "{msg}"),
        Err(e) => panic!("expected a GPU error, got {e}"),
        Ok(_) => panic!("a destroyed buffer was accepted"),
    }
    assert_eq!(app.errors.load(Ordering::SeqCst), 0, "caught by Hourglass");
    // The context is usable after the error.
    assert_eq!(
        app.read(&model.encode_to_device(&data).expect("encode")),
        model.encode(&data).expect("encode").values
    );

    // A destroyed device: the next read-back fails with an error, not a panic.
    app.device.destroy();
    let result = trainer.train_steps(2, true);
    assert!(
        matches!(result, Err(Error::Gpu(_))),
        "a destroyed device cannot train: {:?}",
        result.map(|_| ())
    );
    assert_eq!(app.errors.load(Ordering::SeqCst), 0);
}
