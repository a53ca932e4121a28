//! Data parallelism over several devices with Burn's collective all-reduce.
//!
//! [`CollectiveDataParallel`] is a Burn [`SupervisedLearningStrategy`]: one
//! worker thread per device, each holding a full replica of the model, its
//! own copy of the optimizer and its share of every epoch's batches. After
//! each backward pass the workers sum their gradients with
//! `burn::collective::all_reduce` (Burn's `collective` feature; no hand-made
//! reduction) and divide by the number of workers, so every replica's
//! ternary optimizer sees the same gradient, draws the same counter-hash
//! rounding noise and makes the same trit, memory and scale-code update. The
//! replicas therefore stay bit-identical; the strategy checks this after
//! every epoch (and, with `ARBITOR_DP_CHECK_STEPS=k`, after each of the first
//! k optimizer steps) by exchanging a digest of every parameter of every
//! replica, and stops the run naming the first parameter that differs.
//!
//! Burn's own `ddp` strategy needs `DistributedBackend`, which Burn 0.21
//! implements for the CubeCL backends only (and its feature makes
//! `Autodiff<Flex>` lose `AutodiffBackend`), so the CPU backend could not
//! train at all in a build with it. The collective route works on every
//! backend: two workers on the one CPU device in the tests, one per GPU on a
//! CUDA machine.
//!
//! On CUDA, cubecl copies between GPUs with NCCL on a stream of its own, and
//! nothing orders that stream before a later in-place write to, or reuse of,
//! the buffer it reads. The first version (burn-collective's `Mean`, which
//! divides in place right after the broadcast) diverged after one step on two
//! H200s. So the exchange sums (no in-place op inside burn-collective), keeps
//! its inputs alive, and waits for the transfers
//! ([`TernaryBackend::sync_transfers`]) before dividing or freeing anything.
//!
//! Stopping is collective too: before each step the workers all-reduce a
//! "continue" flag (this worker has a batch and nobody asked to stop), and
//! before each update a second flag (nobody's loss guard tripped), so a NaN
//! loss on one worker, or a device whose share ran out, stops every worker at
//! the same step, with no replica applying that step, instead of leaving the
//! others waiting in an all-reduce.

use std::{
    collections::HashSet,
    marker::PhantomData,
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use burn_ternary::TernaryBackend;

use burn::{
    collective::{self, AllReduceStrategy, CollectiveConfig, PeerId, ReduceOperation},
    data::dataloader::{split::split_dataloader, Progress},
    module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId},
    optim::{GradientsAccumulator, GradientsParams},
    tensor::{
        backend::{AutodiffBackend, Backend},
        Bool, Int, Tensor, TensorData, TensorPrimitive,
    },
    train::{
        EventProcessorTraining, InferenceStep, Interrupter, Learner, LearnerEvent,
        LearningCheckpointer, LearningComponentsTypes, SupervisedLearningStrategy,
        SupervisedTrainingEventProcessor, TrainLoader, TrainingBackend, TrainingComponents,
        TrainingItem, TrainingModel, ValidLoader,
    },
};

type Inner<LC> = <TrainingBackend<LC> as AutodiffBackend>::InnerBackend;
type Device<LC> = burn::tensor::Device<TrainingBackend<LC>>;

/// Data-parallel training over `devices` with Burn's collective all-reduce;
/// see the [module docs](self).
///
/// Passed to `SupervisedTraining::with_training_strategy` as
/// `TrainingStrategy::Custom(Arc::new(CollectiveDataParallel::new(devices)))`.
/// Each device gets an equal share of the training batches (Burn's
/// `split_dataloader`), so one optimizer step consumes `devices.len()`
/// batches; the learning-rate schedule advances once per batch consumed, as
/// in Burn's own data-parallel strategies. Validation, metrics and
/// checkpoints run on the first device.
pub struct CollectiveDataParallel<LC: LearningComponentsTypes> {
    devices: Vec<Device<LC>>,
}

impl<LC: LearningComponentsTypes> CollectiveDataParallel<LC> {
    /// A strategy over `devices` (at least one; the first is the main device).
    ///
    /// # Panics
    /// If `devices` is empty.
    pub fn new(devices: Vec<Device<LC>>) -> Self {
        assert!(
            !devices.is_empty(),
            "CollectiveDataParallel needs at least one device"
        );
        Self { devices }
    }
}

/// What every worker shares.
struct Shared<LC: LearningComponentsTypes> {
    peers: usize,
    num_epochs: usize,
    starting_epoch: usize,
    grad_accumulation: usize,
    interrupter: Interrupter,
    processor: Arc<Mutex<SupervisedTrainingEventProcessor<LC>>>,
    /// Also compare the replicas after the first this many optimizer steps
    /// (`ARBITOR_DP_CHECK_STEPS`, a diagnostic; 0 by default).
    check_steps: usize,
}

/// The main worker's extras: validation and checkpoints.
struct MainDuties<LC: LearningComponentsTypes> {
    valid: ValidLoader<LC>,
    checkpointer: Option<LearningCheckpointer<LC>>,
    event_store: Arc<burn::train::metric::store::EventStoreClient>,
}

impl<LC> SupervisedLearningStrategy<LC> for CollectiveDataParallel<LC>
where
    LC: LearningComponentsTypes + Send + 'static,
    Learner<LC>: Send,
    Inner<LC>: TernaryBackend,
{
    fn fit(
        &self,
        components: TrainingComponents<LC>,
        learner: Learner<LC>,
        dataloader_train: TrainLoader<LC>,
        dataloader_valid: ValidLoader<LC>,
        starting_epoch: usize,
    ) -> (TrainingModel<LC>, SupervisedTrainingEventProcessor<LC>) {
        let peers = self.devices.len();
        let mut loaders = split_dataloader(dataloader_train, &self.devices);
        let shared = Arc::new(Shared::<LC> {
            peers,
            num_epochs: components.num_epochs,
            starting_epoch,
            grad_accumulation: components.grad_accumulation.unwrap_or(1).max(1),
            interrupter: components.interrupter.clone(),
            processor: Arc::new(Mutex::new(components.event_processor)),
            check_steps: std::env::var("ARBITOR_DP_CHECK_STEPS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        });
        let mut main = Some(MainDuties::<LC> {
            valid: dataloader_valid.to_device(&self.devices[0]),
            checkpointer: components.checkpointer,
            event_store: components.event_store,
        });
        let handles: Vec<JoinHandle<TrainingModel<LC>>> = self
            .devices
            .iter()
            .enumerate()
            .map(|(rank, device)| {
                let worker = Worker::<LC> {
                    rank,
                    device: device.clone(),
                    learner: learner.clone(),
                    loader: loaders.remove(0),
                    main: if rank == 0 { main.take() } else { None },
                    shared: shared.clone(),
                    steps: 0,
                };
                std::thread::Builder::new()
                    .name(format!("data-parallel-{rank}"))
                    .spawn(move || worker.run())
                    .expect("cannot spawn a data-parallel worker thread")
            })
            .collect();
        let mut models: Vec<TrainingModel<LC>> = handles
            .into_iter()
            .enumerate()
            .map(|(rank, handle)| {
                handle.join().unwrap_or_else(|_| {
                    panic!("data-parallel worker {rank} panicked (see its message above)")
                })
            })
            .collect();
        let model = models.swap_remove(0);
        // The initial tensors the workers' replicas were copied from stay
        // alive until now, so no copy ever reads a reused buffer.
        drop((models, learner));
        let shared = Arc::into_inner(shared).expect("every worker has finished");
        let processor = Arc::into_inner(shared.processor)
            .expect("every worker has finished")
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (model, processor)
    }
}

struct Worker<LC: LearningComponentsTypes> {
    rank: usize,
    device: Device<LC>,
    learner: Learner<LC>,
    loader: TrainLoader<LC>,
    main: Option<MainDuties<LC>>,
    shared: Arc<Shared<LC>>,
    /// Optimizer steps taken by this worker.
    steps: usize,
}

impl<LC: LearningComponentsTypes> Worker<LC>
where
    Inner<LC>: TernaryBackend,
{
    fn run(mut self) -> TrainingModel<LC> {
        let peer = PeerId::from(self.rank);
        let config = CollectiveConfig::default()
            .with_num_devices(self.shared.peers)
            // Reduce on one device and broadcast the one result: every replica
            // receives the very same bits.
            .with_local_all_reduce_strategy(AllReduceStrategy::Centralized);
        collective::register::<Inner<LC>>(peer, self.device.clone(), config)
            .unwrap_or_else(|e| panic!("device {}: collective register failed: {e:?}", self.rank));
        self.fork();
        if self.shared.check_steps > 0 {
            self.check_replicas(peer, "after the copy to the devices");
        }
        for epoch in self.shared.starting_epoch..=self.shared.num_epochs {
            let global = Progress {
                items_processed: epoch,
                items_total: self.shared.num_epochs,
            };
            let stopped = self.train_epoch(peer, &global);
            let digest = self.check_replicas(peer, &format!("after epoch {epoch}"));
            if self.rank == 0 {
                eprintln!(
                    "data parallel: {} replicas bit-identical after epoch {epoch} (state digest {digest:016x})",
                    self.shared.peers
                );
            }
            if stopped {
                break;
            }
            if let Some(main) = &mut self.main {
                validate::<LC>(
                    &self.learner.model(),
                    &main.valid,
                    &global,
                    &self.shared.processor,
                    &self.shared.interrupter,
                );
                if let Some(checkpointer) = &mut main.checkpointer {
                    checkpointer.checkpoint(&self.learner, epoch, &main.event_store);
                }
            }
        }
        collective::finish_collective::<Inner<LC>>(peer)
            .unwrap_or_else(|e| panic!("device {}: collective finish failed: {e:?}", self.rank));
        self.learner.model()
    }

    /// One epoch of this worker's share; true if the run was interrupted.
    fn train_epoch(&mut self, peer: PeerId, global: &Progress) -> bool {
        let peers = self.shared.peers;
        let mut iterator = self.loader.iter();
        let mut accumulator = GradientsAccumulator::new();
        let mut accumulated = 0;
        let mut iteration = 0;
        loop {
            let item = iterator.next();
            let go = item.is_some() && !self.shared.interrupter.should_stop();
            if !self.all_agree(peer, go) {
                break;
            }
            let item = item.expect("every worker has a batch when all agree to go on");
            for _ in 0..peers {
                iteration += 1;
                self.learner.lr_step();
            }
            let mut progress = iterator.progress();
            progress.items_processed *= peers;
            progress.items_total *= peers;
            let output = self.learner.train_step(item);
            accumulator.accumulate(&self.learner.model(), output.grads);
            accumulated += 1;
            if accumulated >= self.shared.grad_accumulation {
                accumulated = 0;
                // `None`: a worker's loss guard tripped on this step; no
                // replica applies it, and the stop vote ends the epoch.
                if let Some(grads) = self.average(peer, accumulator.grads()) {
                    self.learner.optimizer_step(grads);
                    self.steps += 1;
                    if self.steps <= self.shared.check_steps {
                        self.check_replicas(peer, &format!("after optimizer step {}", self.steps));
                    }
                }
            }
            let item = TrainingItem::new(
                output.item,
                progress,
                global.clone(),
                Some(iteration),
                Some(self.learner.lr_current()),
            );
            self.processor()
                .process_train(LearnerEvent::ProcessedItem(item));
        }
        if self.main.is_some() {
            self.processor()
                .process_train(LearnerEvent::EndEpoch(global.items_processed));
        }
        self.shared.interrupter.should_stop()
    }

    /// Moves this worker's replica to its device.
    fn fork(&mut self) {
        self.learner.fork(&self.device);
        Inner::<LC>::sync_transfers(&self.device);
    }

    /// Compares every parameter of every replica with replica 0's, through
    /// the collective; panics naming `when` and the first parameter that
    /// differs. Returns the digest of the whole replica.
    fn check_replicas(&self, peer: PeerId, when: &str) -> u64 {
        let model = self.learner.model();
        let mut visitor = ParamDigests::default();
        model.visit(&mut visitor);
        let params = visitor.digests.len();
        // 16-bit pieces of each digest, in this worker's slot: exact in f32.
        let mut slots = vec![0.0f32; self.shared.peers * params * 4];
        for (i, (_, d)) in visitor.digests.iter().enumerate() {
            for piece in 0..4 {
                slots[(self.rank * params + i) * 4 + piece] = ((d >> (16 * piece)) & 0xffff) as f32;
            }
        }
        let all = self.sum_on_host(peer, slots);
        let digest_of = |rank: usize, i: usize| -> u64 {
            (0..4).fold(0u64, |acc, piece| {
                acc | ((all[(rank * params + i) * 4 + piece] as u64) << (16 * piece))
            })
        };
        for rank in 1..self.shared.peers {
            for (i, (what, _)) in visitor.digests.iter().enumerate() {
                assert_eq!(
                    digest_of(0, i),
                    digest_of(rank, i),
                    "data parallel: {when}, parameter {i} ({what}) of the replica on device {rank} \
                     differs from the one on device 0"
                );
            }
        }
        visitor.combined()
    }

    /// All-reduces this worker's vote: true only if every worker votes to go on.
    fn all_agree(&self, peer: PeerId, go: bool) -> bool {
        self.sum_on_host(peer, vec![if go { 0.0 } else { 1.0 }])[0] == 0.0
    }

    /// Element-wise sum of `values` over all workers, read back to the host.
    fn sum_on_host(&self, peer: PeerId, values: Vec<f32>) -> Vec<f32> {
        let n = values.len();
        let local = Tensor::<Inner<LC>, 1>::from_data(TensorData::new(values, [n]), &self.device);
        let sum = collective::all_reduce::<Inner<LC>>(
            peer,
            local.clone().into_primitive().tensor(),
            ReduceOperation::Sum,
        )
        .unwrap_or_else(|e| panic!("device {}: all-reduce of votes failed: {e:?}", self.rank));
        let sum = Tensor::<Inner<LC>, 1>::from_primitive(TensorPrimitive::Float(sum))
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("an f32 vector");
        Inner::<LC>::sync_transfers(&self.device);
        drop(local);
        sum
    }

    /// The mean of every worker's gradients, or `None` if any worker asked to
    /// stop during this step.
    ///
    /// Workers may hold gradients for different parameters (a loss guard
    /// that returned an empty gradient, a branch a batch did not reach), and
    /// Burn's collective pairs tensors by call order, so the workers first
    /// agree on which parameters have a gradient somewhere and of what shape
    /// (one small all-reduce, which also carries the stop vote); a worker
    /// without one contributes zeros.
    fn average(&self, peer: PeerId, grads: GradientsParams) -> Option<GradientsParams> {
        let model = self.learner.model();
        let mut probe = GradShapes::<Inner<LC>> {
            grads: &grads,
            seen: HashSet::new(),
            shapes: Vec::new(),
            _inner: PhantomData,
        };
        model.visit(&mut probe);
        let mut votes = vec![if self.shared.interrupter.should_stop() {
            1.0
        } else {
            0.0
        }];
        for shape in &probe.shapes {
            let mut entry = [0.0f32; 1 + MAX_RANK];
            if let Some(dims) = shape {
                entry[0] = 1.0;
                for (slot, dim) in entry[1..].iter_mut().zip(dims) {
                    *slot = *dim as f32;
                }
            }
            votes.extend(entry);
        }
        let totals = self.sum_on_host(peer, votes);
        if totals[0] > 0.0 {
            return None;
        }
        let agreed = totals[1..]
            .chunks(1 + MAX_RANK)
            .map(|entry| {
                let holders = entry[0];
                (holders > 0.0).then(|| entry[1..].iter().map(|d| (d / holders) as usize).collect())
            })
            .collect();
        let mut reducer = GradReducer::<Inner<LC>> {
            peer,
            rank: self.rank,
            device: self.device.clone(),
            grads,
            out: GradientsParams::new(),
            seen: HashSet::new(),
            agreed,
            next: 0,
            held: Vec::new(),
        };
        model.visit(&mut reducer);
        // Only now may the buffers the exchange read or wrote be reused.
        Inner::<LC>::sync_transfers(&self.device);
        drop(reducer.held);
        let mut mean = GradientsParams::new();
        let mut divider = DivideGrads::<Inner<LC>> {
            sums: reducer.out,
            out: &mut mean,
            by: self.shared.peers as f32,
            seen: HashSet::new(),
            _inner: PhantomData,
        };
        model.visit(&mut divider);
        Some(mean)
    }

    fn processor(&self) -> std::sync::MutexGuard<'_, SupervisedTrainingEventProcessor<LC>> {
        self.shared
            .processor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn validate<LC: LearningComponentsTypes>(
    model: &TrainingModel<LC>,
    loader: &ValidLoader<LC>,
    global: &Progress,
    processor: &Mutex<SupervisedTrainingEventProcessor<LC>>,
    interrupter: &Interrupter,
) {
    let model = model.valid();
    let mut iterator = loader.iter();
    let mut iteration = 0;
    while let Some(item) = iterator.next() {
        iteration += 1;
        let progress = iterator.progress();
        let item = TrainingItem::new(
            model.step(item),
            progress,
            global.clone(),
            Some(iteration),
            None,
        );
        processor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .process_valid(LearnerEvent::ProcessedItem(item));
        if interrupter.should_stop() {
            break;
        }
    }
    processor
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .process_valid(LearnerEvent::EndEpoch(global.items_processed));
}

/// FNV-1a over the per-parameter digests of `module`, in visit order:
/// equal digests mean equal trits, update memory, scale codes and float
/// parameters (up to a 64-bit hash collision).
///
/// ```
/// use arbitor_train::data_parallel::digest;
/// use burn::backend::Flex;
/// use burn_ternary::nn::TernaryLinearConfig;
/// let device = Default::default();
/// let a = TernaryLinearConfig::new(64, 64).init::<Flex>(&device);
/// assert_eq!(digest(&a), digest(&a.clone()));
/// // Another random draw of the trits gives another digest.
/// let b = TernaryLinearConfig::new(64, 64).init::<Flex>(&device);
/// assert_ne!(digest(&a), digest(&b));
/// ```
pub fn digest<B: Backend, M: Module<B>>(module: &M) -> u64 {
    let mut visitor = ParamDigests::default();
    module.visit(&mut visitor);
    visitor.combined()
}

/// A 64-bit FNV-1a hash.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Highest parameter rank the gradient exchange handles.
const MAX_RANK: usize = 6;

/// First pass of [`Worker::average`]: the shape of this worker's gradient of
/// every float parameter, in visit order (each id once).
struct GradShapes<'a, I: Backend> {
    grads: &'a GradientsParams,
    seen: HashSet<ParamId>,
    shapes: Vec<Option<Vec<usize>>>,
    _inner: PhantomData<I>,
}

impl<B: AutodiffBackend<InnerBackend = I>, I: Backend> ModuleVisitor<B> for GradShapes<'_, I> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        assert!(D <= MAX_RANK, "parameters of rank {D} > {MAX_RANK}");
        if self.seen.insert(param.id) {
            let grad = self.grads.get::<I, D>(param.id);
            self.shapes.push(grad.map(|g| g.dims().to_vec()));
        }
    }
}

/// Second pass of [`Worker::average`]: all-reduces, in visit order, every
/// gradient that some worker holds (zeros where this one holds none).
struct GradReducer<I: Backend> {
    peer: PeerId,
    rank: usize,
    device: I::Device,
    grads: GradientsParams,
    out: GradientsParams,
    seen: HashSet<ParamId>,
    agreed: Vec<Option<Vec<usize>>>,
    next: usize,
    /// This worker's inputs to the exchange, kept until the transfers are synced.
    held: Vec<burn::tensor::ops::FloatTensor<I>>,
}

impl<B: AutodiffBackend<InnerBackend = I>, I: Backend> ModuleVisitor<B> for GradReducer<I> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.seen.insert(param.id) {
            return;
        }
        let agreed = self.agreed[self.next].take();
        self.next += 1;
        let Some(dims) = agreed else {
            return;
        };
        let grad = self.grads.remove::<I, D>(param.id).unwrap_or_else(|| {
            let mut shape = [0; D];
            shape.copy_from_slice(&dims[..D]);
            Tensor::zeros(shape, &self.device)
        });
        // Sum, not Mean: burn-collective divides a mean in place, which can
        // race with the copy of that same buffer to the other devices. The
        // input stays held here until the caller has synced the transfers.
        let sum = collective::all_reduce::<I>(
            self.peer,
            grad.clone().into_primitive().tensor(),
            ReduceOperation::Sum,
        )
        .unwrap_or_else(|e| panic!("device {}: gradient all-reduce failed: {e:?}", self.rank));
        self.held.push(grad.into_primitive().tensor());
        self.out.register::<I, D>(
            param.id,
            Tensor::from_primitive(TensorPrimitive::Float(sum)),
        );
    }
}

/// Third pass of [`Worker::average`], after the transfers are synced: the
/// summed gradients divided by the number of workers.
struct DivideGrads<'a, I: Backend> {
    sums: GradientsParams,
    out: &'a mut GradientsParams,
    by: f32,
    seen: HashSet<ParamId>,
    _inner: PhantomData<I>,
}

impl<B: AutodiffBackend<InnerBackend = I>, I: Backend> ModuleVisitor<B> for DivideGrads<'_, I> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.seen.insert(param.id)
            && let Some(sum) = self.sums.remove::<I, D>(param.id)
        {
            self.out.register::<I, D>(param.id, sum / self.by);
        }
    }
}

/// The digest of each parameter of a module, in visit order, with its kind
/// and shape for messages.
#[derive(Default)]
struct ParamDigests {
    digests: Vec<(String, u64)>,
}

impl ParamDigests {
    fn add(&mut self, kind: &str, data: TensorData) {
        let what = format!("{kind} {:?}", data.shape);
        let mut hash = Fnv::new();
        hash.bytes(what.as_bytes());
        hash.bytes(data.as_bytes());
        self.digests.push((what, hash.0));
    }

    /// One digest of the whole module, from the parameters' digests.
    fn combined(&self) -> u64 {
        let mut hash = Fnv::new();
        for (_, digest) in &self.digests {
            hash.bytes(&digest.to_le_bytes());
        }
        hash.0
    }
}

impl<B: Backend> ModuleVisitor<B> for ParamDigests {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.add("float", param.val().into_data());
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        self.add("int", param.val().into_data());
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        self.add("bool", param.val().into_data());
    }
}
