//! `hourglass train` as one rank of an `mpirun` / `srun` job (feature `mpi`): which rank this
//! process is and on which device it trains, the start-up check that every rank was given the
//! same run, the one decision per event all ranks follow (rank 0's), and the end of the whole job
//! when one rank fails. Without the feature, or started without a launcher, there is one rank
//! and nothing here does anything.
//!
//! The launcher's environment is read here only (the library takes typed options): Open MPI's
//! `OMPI_COMM_WORLD_*`, MPICH / Intel MPI's `PMI_*` / `MPI_LOCAL*`, Slurm's `SLURM_*`.

use std::ops::ControlFlow;
use std::sync::Arc;

use hourglass::data::Dataset;
use hourglass::distributed::{Communicator, SingleProcess, differing_ranks, digest, digest_f32};
use hourglass::gpu::list_adapters_on;
use hourglass::model::ModelSpec;
use hourglass::train::{Device, DeviceChoice, FitEvent, Trainer};
use hourglass::{Error, Result};

use crate::Ui;

/// The ranks of this run, and this process's place among those on its machine.
pub struct World {
    comm: Arc<dyn Communicator>,
    /// This rank's index among the ranks on its machine, and how many there are.
    local: (usize, usize),
}

/// What every rank must agree on before training: the resolved flags, the data's identity
/// (source, path, shape) with a digest of 64 of its rows, the validation data's shape, the model.
pub fn run_digest(
    args: &crate::train::TrainArgs,
    identity: &str,
    train: &Dataset,
    val: Option<&Dataset>,
    spec: &ModelSpec,
) -> String {
    let stride = (train.rows / 64).max(1);
    let rows: Vec<f32> = (0..train.rows)
        .step_by(stride)
        .flat_map(|r| train.row(r).iter().copied())
        .collect();
    format!(
        "{args:?}\n{identity}\n{} x {} rows {:016x}\nval {:?}\n{spec:?}",
        train.rows,
        train.cols,
        digest_f32(&rows),
        val.map(|v| (v.rows, v.cols)),
    )
}

/// `2 ranks: per step 12.3 ms gradient, 1.2 ms reduction of 4.3 MB, 0.8 ms update (rank 0),
/// 2.00 submissions and 1.00 gradient read-backs`; with buckets, `… 1.2 ms reduction of 4.3 MB
/// in 4 buckets (9.6 ms reducing in all, overlapped with the backward pass), …`: the reduction
/// is then what is left after the backward pass.
pub fn describe_stats(world: &World, s: &hourglass::train::ParallelStats) -> String {
    let per = |t: f64| 1e3 * t / s.steps.max(1) as f64;
    let buckets = if s.buckets > 1 {
        format!(
            " in {} buckets ({:.2} ms reducing in all, overlapped with the backward pass)",
            s.buckets,
            per(s.reduce_busy_s)
        )
    } else {
        String::new()
    };
    format!(
        "{} ranks: per step {:.2} ms gradient, {:.2} ms reduction of {:.2} MB{buckets}, {:.2} ms \
         update (rank 0's times; the reduction includes waiting for the slowest rank), {:.2} \
         submissions and {:.2} gradient read-backs",
        world.comm.size(),
        per(s.gradient_s),
        per(s.reduce_s),
        s.bytes_per_step as f64 / 1e6,
        per(s.update_s),
        s.submissions as f64 / s.steps.max(1) as f64,
        s.gradient_reads as f64 / s.steps.max(1) as f64,
    )
}

/// Test hook of the command line only: ranks other than 0 panic at the first loss read at or
/// past this step (the tests' deterministic fault in the middle of a run).
fn panic_at_step() -> Option<u64> {
    std::env::var("HOURGLASS_PANIC_AT_STEP")
        .ok()
        .and_then(|s| s.parse().ok())
}

/// An error every rank meets at the same point with the same message (the loss is the same
/// reduced value on all of them), which rank 0 reports alone.
fn is_shared(e: &Error) -> bool {
    matches!(e, Error::NonFinite { .. })
}

/// The first of `names` that is set to a number (its leading digits: Slurm writes
/// `SLURM_STEP_TASKS_PER_NODE` as `4(x2)`).
#[cfg(feature = "mpi")]
fn env_number(names: &[&str]) -> Option<usize> {
    names.iter().find_map(|n| {
        let v = std::env::var(n).ok()?;
        let digits: String = v.trim().chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// Started by a launcher with more than one rank.
#[cfg(feature = "mpi")]
fn launched() -> bool {
    // SLURM_STEP_NUM_TASKS, not SLURM_NTASKS: the latter is also set in a batch script outside
    // any `srun`, where this is one process.
    env_number(&[
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_SIZE",
        "SLURM_STEP_NUM_TASKS",
    ])
    .is_some_and(|n| n > 1)
}

impl World {
    /// The job this process belongs to: MPI's world when built with the feature and started by
    /// `mpirun` / `srun` with several ranks, else one rank.
    pub fn start() -> Result<World> {
        #[cfg(feature = "mpi")]
        if launched() {
            let comm: Arc<dyn Communicator> =
                Arc::new(hourglass::distributed::MpiCommunicator::initialize()?);
            let local_rank = env_number(&[
                "OMPI_COMM_WORLD_LOCAL_RANK",
                "MPI_LOCALRANKID",
                "SLURM_LOCALID",
            ])
            .unwrap_or(0);
            let local_size = env_number(&[
                "OMPI_COMM_WORLD_LOCAL_SIZE",
                "MPI_LOCALNRANKS",
                "SLURM_STEP_TASKS_PER_NODE",
            ])
            .unwrap_or(1)
            .max(1);
            let world = World {
                comm,
                local: (local_rank, local_size),
            };
            world.abort_on_panic();
            world.share_cores();
            return Ok(world);
        }
        Ok(World {
            comm: Arc::new(SingleProcess),
            local: (0, 1),
        })
    }

    /// More than one rank.
    pub fn is_parallel(&self) -> bool {
        self.comm.size() > 1
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// Rank 0: the one that writes the run folder and prints.
    pub fn is_root(&self) -> bool {
        self.comm.rank() == 0
    }

    /// The communicator, for the trainer.
    pub fn communicator(&self) -> Arc<dyn Communicator> {
        self.comm.clone()
    }

    /// `rank 1 of 4 on node07`, for messages.
    pub fn who(&self) -> String {
        format!(
            "rank {} of {} on {}",
            self.comm.rank(),
            self.comm.size(),
            self.comm.host()
        )
    }

    /// `, on each of 4 ranks (data parallel)` after the device, or nothing in one process.
    pub fn describe(&self) -> String {
        if self.is_parallel() {
            format!(", on each of {} ranks (data parallel)", self.comm.size())
        } else {
            String::new()
        }
    }

    /// Rank 0 prints; the others only errors.
    pub fn ui(&self, ui: Ui) -> Ui {
        Ui {
            quiet: ui.quiet || !self.is_root(),
        }
    }

    /// A panic on any rank ends the job with its message (never a hang in a collective).
    #[cfg(feature = "mpi")]
    fn abort_on_panic(&self) {
        // Weak: the hook must not keep MPI from being finalized when the world is dropped.
        let (comm, who) = (Arc::downgrade(&self.comm), self.who());
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            if let Some(comm) = comm.upgrade() {
                errln!("error: {who}: panicked ({info}); ending the job");
                comm.abort(101);
            }
        }));
    }

    /// Without `RAYON_NUM_THREADS`, the CPU executor of each rank takes `cores / local ranks`
    /// threads, so the ranks of one machine do not oversubscribe it.
    #[cfg(feature = "mpi")]
    fn share_cores(&self) {
        if std::env::var_os("RAYON_NUM_THREADS").is_some() {
            return;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cores / self.local.1).max(1);
        // Fails only if the pool already exists, and then it is already sized.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }

    /// The device of `--device` for this rank, with the GPU options of its flags
    /// (`--backend`, `WGPU_BACKEND`, `--adapter`, the cache folder, ...): on a GPU, adapter
    /// `--adapter` if given, else hardware adapter `local rank mod hardware adapters` of the
    /// chosen backends (any adapter where there is no hardware one), so the ranks of one
    /// machine spread over its GPUs.
    pub fn open_device(&self, arg: &crate::source::DeviceArg, ui: Ui) -> Result<Device> {
        if !self.is_parallel() {
            return arg.open(ui, "training");
        }
        let choice = DeviceChoice::parse(&arg.device)
            .map_err(|e| crate::gpu_options::flag_error("--device", e))?;
        let mut options = arg.gpu.options()?;
        if choice != DeviceChoice::Cpu && options.adapter.is_none() {
            // The machine's hardware GPUs; `gpu` takes every adapter where there is none
            // (lavapipe), `auto` then trains on the CPU. A software rasterizer beside eight
            // GPUs is no ninth device.
            let all = list_adapters_on(options.backends);
            let hardware: Vec<usize> = all
                .iter()
                .filter(|a| a.is_hardware())
                .map(|a| a.index)
                .collect();
            let pool = if hardware.is_empty() && choice == DeviceChoice::Gpu {
                all.iter().map(|a| a.index).collect()
            } else {
                hardware
            };
            if !pool.is_empty() {
                options.adapter = Some(pool[self.local.0 % pool.len()]);
            }
        }
        let (device, note) = Device::open_with(choice, &options, "training")?;
        if let Some(note) = note {
            ui.note(&crate::gpu_options::reword_note(&note));
        }
        Ok(device)
    }

    /// Refuses to start unless every rank resolved the same run (`what`: the resolved flags,
    /// the data's identity and shape, the model): one line from each rank that differs, and the
    /// same error on all of them.
    pub fn check_same_run(&self, what: &str) -> Result<()> {
        if !self.is_parallel() {
            return Ok(());
        }
        match differing_ranks(&*self.comm, digest(what.as_bytes()))? {
            None => Ok(()),
            Some(ranks) => {
                if ranks.contains(&self.comm.rank()) {
                    errln!(
                        "error: {}: its flags, data or model differ from rank 0's",
                        self.who()
                    );
                }
                Err(Error::Config(format!(
                    "ranks {ranks:?} were not started with the same run as rank 0 (flags, data \
                     file and shape, model): every rank of `mpirun` must get the same command \
                     and see the same files"
                )))
            }
        }
    }

    /// Every rank's parameters are rank 0's, bit for bit (a digest each; one small collective).
    pub fn check_parameters(&self, trainer: &mut Trainer) -> Result<()> {
        if !self.is_parallel() {
            return Ok(());
        }
        let params = trainer.parameters()?;
        match differing_ranks(&*self.comm, digest_f32(&params.arena))? {
            None => Ok(()),
            Some(ranks) => Err(Error::Distributed(format!(
                "at step {}, ranks {ranks:?} hold parameters different from rank 0's: the \
                 ranks diverged (different devices or libraries?)",
                trainer.step()
            ))),
        }
    }

    /// The decision every rank takes after an event: rank 0's `flow` (broadcast), with the
    /// parameters compared at every checkpoint.
    pub fn agree(
        &self,
        trainer: &mut Trainer,
        event: &FitEvent<'_>,
        flow: ControlFlow<()>,
    ) -> ControlFlow<()> {
        if !self.is_parallel() {
            return flow;
        }
        let mut byte = [u8::from(flow.is_break())];
        if let Err(e) = self.comm.broadcast(&mut byte, 0) {
            self.fail(&e);
        }
        if matches!(event, FitEvent::Checkpoint { .. })
            && let Err(e) = self.check_parameters(trainer)
        {
            self.fail(&e);
        }
        if byte[0] == 0 {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }

    /// Prints `error: rank r of n on host: what happened` and ends every rank of the job.
    pub fn fail(&self, e: &Error) -> ! {
        errln!("error: {}: {e}; ending the job", self.who());
        self.comm.abort(match e {
            Error::Gpu(_) | Error::NonFinite { .. } | Error::Distributed(_) => 1,
            _ => 2,
        })
    }

    /// How a rank's `hourglass train` ends: as in one process, except that a failure that is
    /// this rank's alone ends the whole job (the others would wait for it forever), and that
    /// ranks other than 0 leave the report of an error all ranks share to rank 0.
    pub fn finish(self, result: Result<()>, shared_failure: bool) -> Result<()> {
        match result {
            Err(e) if self.is_parallel() && !(shared_failure || is_shared(&e)) => self.fail(&e),
            Err(e) if self.is_parallel() && !self.is_root() => {
                let code = match e {
                    Error::Gpu(_) | Error::NonFinite { .. } => 1,
                    _ => 2,
                };
                drop(self);
                std::process::exit(code)
            }
            other => other,
        }
    }

    /// The loop of a rank other than 0: the same steps, events and decisions as rank 0's
    /// [`crate::fit::fit`], writing nothing.
    pub fn follow(
        &self,
        trainer: &mut Trainer,
        options: &hourglass::train::FitOptions<'_>,
    ) -> Result<()> {
        // A signal (mpirun passes Ctrl-C on as SIGTERM to every rank) must not end this rank
        // before rank 0 has saved: rank 0 decides, and this rank stops with it.
        crate::fit::catch_interrupts(Ui { quiet: true });
        let panic_at = panic_at_step();
        trainer.fit_with(options, |trainer, event| {
            if let (Some(at), FitEvent::Report { step, .. }) = (panic_at, event)
                && *step >= at
            {
                panic!("HOURGLASS_PANIC_AT_STEP={at}: the test's panic at step {step}");
            }
            self.agree(trainer, event, ControlFlow::Continue(()))
        })?;
        self.check_parameters(trainer)
    }
}
