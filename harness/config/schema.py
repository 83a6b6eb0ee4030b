"""Typed schemas of every Hydra config group, registered in Hydra's ConfigStore: each default lives here, once.

The YAML files under ``configs/`` select a schema (``defaults: [<schema>]``) and set only what differs from it,
so a mistyped key or a value of the wrong type (``board.clock_hz=abc``) is refused while the config is composed,
before any work starts. Code reads the composed config without defaults of its own.

Groups: ``board`` (:class:`BoardSchema` with :class:`TimerSchema`), ``method`` (one schema per search method),
``experiment`` (one per experiment), ``profile`` (:class:`ProfileSchema`, also inside the Free Bits experiment),
``data`` (:class:`DataSchema`), and the ``train`` block (:class:`TrainSchema`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# ------------------------------------------------------------------------------------------ board and timer


@dataclass
class MemRegionSchema:
    base: int = MISSING
    size: int = MISSING


@dataclass
class TimerSchema:
    """What the firmware's tick counter measures: ``count = ticks * count_per_tick`` in ``unit``."""

    source: str = MISSING  # qemu-icount | qemu-cycles | dwt-cycles | systick
    hz: int = MISSING
    unit: str = "ticks"
    count_per_tick: float = MISSING
    model: str = ""  # qemu-cycles: "<timing profile>/<model version>" (counts of two models never mix)


@dataclass
class DriverSchema:
    """How the board is reached: ``qemu`` (machine/cpu), ``serial`` (port, flasher, probe) or ``labgrid`` (a place
    of a labgrid board farm: place, coordinator, flasher)."""

    type: str = MISSING  # qemu | serial | labgrid
    machine: str | None = None
    cpu: str | None = None
    extra_args: list[str] = field(default_factory=list)
    port: str | None = None
    baud: int = 115200
    flasher: str | None = None  # pyocd | pio
    target: str | None = None  # pyOCD target name
    probe: str | None = None  # probe unique id when several are attached (auto: discovery picks it)
    link: str = "serial"  # serial (the protocol on `port`) | rtt (SEGGER RTT through the debug probe)
    boot_timeout_s: float = 10.0
    command_timeout_s: float = 60.0
    # type labgrid (a board of a labgrid farm, harness.boards.labgrid_board; flasher gdb | openocd):
    place: str | None = None  # the labgrid place (its name or a unique part of it)
    coordinator: str | None = None  # host:port of the labgrid coordinator (null: $LG_COORDINATOR or :20408)
    reserve: bool = True  # queue for the place with a reservation before acquiring it (fair between users)
    acquire_timeout_s: float = 600.0  # how long to wait for the place when other users hold it
    openocd_config: list[str] = field(default_factory=list)  # flasher openocd: OpenOCD config files of the board


@dataclass
class UartSchema:
    type: str = MISSING
    base: int = MISSING
    baud: int = 115200
    tx_pin: str | None = None  # boards whose UART pins are routed by software (nRF52 UARTE)
    rx_pin: str | None = None


@dataclass
class UsbIdSchema:
    id: str = MISSING  # VID:PID, lower-case hex
    what: str = ""
    bootloader: bool = False  # the board's bootloader: identifies the board, never the protocol's port


@dataclass
class DiscoverySchema:
    """How ``tinyhil boards`` recognises a real board's attached devices (harness.boards.discovery)."""

    pyocd_targets: list[str] = field(default_factory=list)
    probe_products: list[str] = field(default_factory=list)
    serial_usb: list[UsbIdSchema] = field(default_factory=list)
    external_probe: bool = False  # the board has no on-board probe (an SWD probe is attached separately)
    hint: str = ""  # appended to "no probe / no port" errors: this board's other ways in


@dataclass
class BoardSchema:
    name: str = MISSING
    description: str = ""
    core: str = MISSING
    cpu_flags: list[str] = MISSING
    clock_hz: int = MISSING
    flash: MemRegionSchema = field(default_factory=MemRegionSchema)
    sram: MemRegionSchema = field(default_factory=MemRegionSchema)
    linker_script: str = MISSING
    platformio_board: str | None = None  # default: the board's name
    uart: UartSchema = field(default_factory=UartSchema)
    timer: TimerSchema = field(default_factory=TimerSchema)
    driver: DriverSchema = field(default_factory=DriverSchema)
    discovery: DiscoverySchema = field(default_factory=DiscoverySchema)
    # An emulated board can stand for a real chip by default: `timer=` and `timing=`, when not given, mean these
    # (qemu-mps2-an500: qemu-cycles under stm32h743); an explicit timer=qemu-icount counts instructions instead.
    default_timer: str | None = None
    default_timing: str | None = None


# ------------------------------------------------------------------------------------------ profile and data


@dataclass
class ProfileSchema:
    """How a board's latency table is measured (``tinyhil profile``, and the Free Bits loop's first step)."""

    table_dir: str = "results/lut"  # the table is <table_dir>/<board name>.parquet and .csv
    a_bits: list[int] = field(default_factory=lambda: [2, 4, 8])  # input-activation precisions to measure
    w_bits: list[int] = field(default_factory=lambda: [2, 4, 8])  # weight precisions
    o_bits: list[int] = field(default_factory=lambda: [2, 4, 8])  # output precisions (producer narrows)
    input_bits: int | None = 8  # the network input's precision (null: the first layer at every a_bits)
    output_bits: int | None = 8  # the logits' precision (null: every o_bits)
    repeats: int = 3  # random inputs per image; the row's count is their median (min/max kept)
    workers: int = 0  # images measured in parallel, one emulator each (0: one per available core)
    executor: str = "local"  # local: a pool of `workers` processes here | ray: images sharded over a Ray cluster
    ray_address: str | None = None  # executor=ray: host:port or auto (a running cluster); null: a local Ray
    max_layers: int = 200  # layers per batch image (the firmware's table holds 256)
    max_macs: float = 3.0e7  # MACs per batch image: bounds one inference's emulation time
    build_flags: list[str] = field(default_factory=list)  # extra compiler flags (part of the target)
    require_bit_exact: bool = True  # a layer that differs from the integer reference fails the run


@dataclass
class DataSchema:
    """An offline data set (``configs/data``): subset sizes, split and normalisation."""

    name: str = MISSING
    n_train: int | None = None  # null: all
    n_test: int | None = None
    seed: int = 0
    test_fraction: float | None = None  # sets without a fixed split: fraction held out (stratified)
    split_seed: int | None = None
    mean: float = 0.5
    std: float = 0.5
    augment: bool = False  # random shift (+ flip)
    flip: bool = True


@dataclass
class TrainSchema:
    """Training hyper-parameters (float training and QAT)."""

    epochs: int = 2  # used when phases is null
    phases: list[Any] | None = None  # list of {resolution, epochs, n_train}
    batch_size: int = 128
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 0.003
    weight_decay: float = 0.0001
    warmup: float = 0.05  # fraction of the steps spent warming the learning rate up
    label_smoothing: float = 0.0
    seed: int = 0
    threads: int = 2
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = 100
    eval_batch_size: int = 256


@dataclass
class QatSchema:
    """Short quantization-aware fine-tuning at the final precisions."""

    epochs: int = 1
    n_train: int | None = 5000  # training images (null: all)
    n_test: int = 500  # test images for the before/after top-1 it logs
    lr: float = 0.0005
    weight_decay: float = 0.0
    warmup: float = 0.0
    batch_size: int = 128
    log_every: int = 50


@dataclass
class TrackingSchema:
    """Optional experiment tracking (``tracking=mlflow``): each run's config, summary keys and result files in a
    local MLflow file store (no server)."""

    name: str = "mlflow"
    store: str | None = None  # the file store's folder (null: mlruns/ inside the run folder)
    experiment: str | None = None  # MLflow experiment name (null: tinyhil-<command>)


# ------------------------------------------------------------------------------------------ methods


@dataclass
class UniformMethod:
    """Every conv/linear layer at the same (a_bits, w_bits)."""

    name: str = "uniform"
    a_bits: int = 8
    w_bits: int = 8
    input_bits: int = 8  # the layer reading the image reads it at this precision


@dataclass
class BitopsMethod:
    """Integer linear programme over (layer, bit pair): the most bits within a BitOPs/latency budget."""

    name: str = "bitops"
    objective: str = "bits"  # bits | bitops | latency
    bitops_frac: float | None = 0.25  # at most this fraction of int8's BitOPs
    latency_frac: float | None = None  # or: at most this fraction of int8's predicted count (needs the table)
    min_mean_bits: float | None = None
    flash_bytes: int | None = None
    sram_bytes: int | None = None
    out_bits_rule: str = "consumer"  # consumer: o_bits = what the next layer reads | 8
    bits: list[int] = field(default_factory=lambda: [2, 4, 8])
    input_bits: int = 8  # the image arrives as int8
    output_bits: int = 8  # logits are int8
    solver: str = "ilp"  # ilp (HiGHS) | greedy
    time_limit: float = 30.0


@dataclass
class FileMethod:
    """A saved precision configuration (JSON or YAML), e.g. a previous run's final_config.json."""

    name: str = "file"
    path: str | None = None


@dataclass
class QuantuneMethod:
    """QuantuneV2: rank layers by the noise they add, keep the k most sensitive at ``high``."""

    name: str = "quantune"
    k: int = 4
    high: Any = 8  # an int (a = w), [a_bits, w_bits] or {a_bits, w_bits}
    low: Any = 4
    input_bits: int | None = 8  # layers reading the image read it at 8 bits; null: like the rest
    probe: Any = None  # precision of the quantized pass; null = `low`
    rule: str = "dsqnr"  # dsqnr (ties within tie_db by MSE) | zscore (weighted z-scores)
    tie_db: float = 0.1
    weights: dict[str, float] = field(default_factory=lambda: {"dsqnr": 1.0, "mse": 1.0, "wsqnr": 1.0})
    sqnr_cap_db: float = 100.0  # SQNR of an exactly reproduced tensor (keeps dSQNR finite)
    n_calib: int = 64  # calibration images for the two passes and the activation ranges
    chunk_size: int | None = None  # images per chunk (null: all at once)
    ranking: str | None = None  # a ranking.csv from `tinyhil sensitivity` to use instead of the passes


@dataclass
class QuantMcuMethod:
    """QuantMCU: value-driven per-patch mixed precision for patch-based inference (VDPC + VDQS)."""

    name: str = "quantmcu"
    split: str = "auto"  # patch-stage split: layer name or index, or auto
    n: str = "auto"  # patches per side, or auto
    max_mac_overhead: float = 0.3
    n_calib: int = 16  # calibration images VDPC and VDQS look at
    # VDPC, per channel c of a checked map: a value is an outlier when |x - mu_c| > phi * sigma_c (rule=sigma)
    # or above the percentile-th percentile of |x - mu_c| (rule=percentile); center=zero uses |x| instead
    phi: float = 3.0
    rule: str = "sigma"  # sigma | percentile
    percentile: float = 99.9
    center: str = "mean"  # mean (deviation from the channel's mean) | zero (|x|, the paper's literal reading)
    maps: str = "output"  # output (the branch's output grain) | input (its input window) | branch | first
    min_fraction: float = 0.5  # outlier patch: outlier values on more than this fraction of the images
    # VDQS: S = -lam * Omega + (1 - lam) * Phi, both normalised to the patch branch's 8-bit totals
    lam: float = 0.5  # the paper's lambda
    bits: list[int] = field(default_factory=lambda: [8, 4, 2])  # one step at a time: 8 -> 4 -> 2
    range_mode: str = "patch"  # patch (MSE clip per patch) | tensor (per feature map) | minmax
    scope: str = "stage"  # stage (patch branches, the paper) | network (also the rest, shared)
    # SRAM for the firmware's arena + result tables + scratch, judged by its arena planner: board (its SRAM less
    # runtime and stack, the build's fit check) | null | bytes
    memory_budget: Any = "board"


@dataclass
class BayesBitsMethod:
    """Bayesian Bits (the Free Bits paper's stage 1): gated residual quantizers over {2, 4, 8} bits per layer and
    activation group, trained with QAT and ``lam`` times a BitOPs (the paper) or latency (the measured table)
    regulariser; a gate is on when P(z > 0) > 0.5 after training (harness/search/bayesbits.py)."""

    name: str = "bayesbits"
    lam: float = 0.05  # regulariser strength (the regulariser is 1 at uniform 8 bits)
    regulariser: str = "bitops"  # bitops (the paper) | latency (expected count from the board's table)
    epochs: int = 3
    n_train: int | None = 2000  # training images per epoch (null: all)
    batch_size: int = 64
    lr: float = 0.0001  # weights
    gate_lr: float = 0.2  # log_alpha of the gates (Adam: about this far per step)
    gate_init: float = 3.0  # initial log_alpha: P(z > 0) = 0.99, every quantizer starts at 8 bits
    n_calib: int = 128  # calibration images for the activation ranges
    input_bits: int = 8  # the image arrives as int8
    out_bits_rule: str = "consumer"  # latency regulariser: o_bits = what the consumers read | 8
    seed: int | None = None  # null: the run's seed
    threads: int = 2  # torch threads while training


# ------------------------------------------------------------------------------------------ experiments


@dataclass
class SmokeExperiment:
    """A small random CNN through the whole board pipeline, checked bit-exactly layer by layer."""

    #: the config groups this experiment reads: overriding another one is refused (it would do nothing)
    uses: ClassVar[tuple[str, ...]] = ("board", "timer", "timing")  # the smoke network is its own (experiment.model)

    name: str = "smoke"
    entry: str = "harness.experiments.smoke:run"
    source: str = "torch"  # torch: a random-weight torch module, quantized and exported | ir: a random int net
    model: dict[str, Any] = field(
        default_factory=lambda: {
            "_target_": "harness.models.tiny_cnn.TinyCNN", "name": "smoke-cnn", "channels": 16, "stem": 8,
        }
    )  # fmt: skip
    n_inputs: int = 2  # random input images sent over serial
    resolution: int = 16  # input H = W
    channels: int = 3
    width: int = 8  # base channel count (source=ir)
    classes: int = 10


@dataclass
class Int8Experiment:
    """The uniform 8-bit integer model's top-1 on the device beside float and fake-quant."""

    #: the config groups this experiment reads: overriding another one is refused (it would do nothing)
    uses: ClassVar[tuple[str, ...]] = ("board", "model", "data", "method", "timer", "timing")

    name: str = "int8"
    entry: str = "harness.experiments.int8:run"
    n_eval: int = 200  # test images evaluated on the device
    n_calib: int = 256  # calibration images for activation ranges
    check_reference: bool = True  # device predictions must equal the host integer reference's


@dataclass
class FreebitsExperiment:
    """The closed loop: profile, int8 baseline, start, measure-and-refine rounds, QAT, device top-1."""

    #: the config groups this experiment reads: overriding another one is refused (it would do nothing)
    uses: ClassVar[tuple[str, ...]] = ("board", "model", "data", "method", "timer", "timing")

    name: str = "freebits"
    entry: str = "harness.experiments.freebits:run"
    max_rounds: int = 4  # rounds measured at most
    min_gain: float = 0.0  # relative improvement of the measured count a round must bring to go on
    pricing: str = "full"  # full: price a raise by everything it changes | paper: the layer's own row only
    out_bits_rule: str = "consumer"  # consumer: o_bits = what the next layer reads | 8: the paper's o = 8
    tie_break: str = "more_bits"
    n_measure: int = 1  # images per round (counts barely depend on the data)
    n_eval: int = 100  # test images evaluated on the device (int8 and final)
    n_eval_host: int = 1000  # test images for the host fake-quant top-1
    n_calib: int = 256  # calibration images for the activation ranges
    qat: QatSchema = field(default_factory=QatSchema)
    profile: ProfileSchema = field(default_factory=ProfileSchema)


@dataclass
class ParetoPointSchema:
    """One point of the Free Bits Pareto experiment: a start, the refiner in the loop or not, fine-tuning."""

    method: str = MISSING  # pareto.csv's method column: freebits | bayesbits | uniform | bitops-ilp | ...
    start: dict[str, Any] = field(default_factory=dict)  # a method config: {name: bayesbits, lam: 0.05, ...}
    refine: bool = True  # the Free Bits refiner in the closed loop on the board; false: the start as it is
    finetune: bool = True  # QAT (the experiment's qat block) at the final precisions before top-1
    label: str | None = None  # the point's row and folder name (null: the method and the start's options)


def _pareto_points() -> list[ParetoPointSchema]:
    bb = {"name": "bayesbits"}
    lat = {**bb, "regulariser": "latency"}
    uniform = [
        ParetoPointSchema("uniform", {"name": "uniform", "a_bits": b, "w_bits": b}, False, label=f"uniform-a{b}w{b}")
        for b in (8, 4, 2)
    ]
    return [
        *uniform,
        ParetoPointSchema("bitops-ilp", {"name": "bitops"}, False, label="bitops-ilp-0.25"),
        ParetoPointSchema("bayesbits", {**bb, "lam": 0.05}, False, label="bayesbits-bitops-0.05"),
        ParetoPointSchema("freebits", {**bb, "lam": 0.05}, True, label="freebits-bitops-0.05"),
        ParetoPointSchema("freebits", {**bb, "lam": 0.2}, True, label="freebits-bitops-0.2"),
        ParetoPointSchema("freebits-latency", {**lat, "lam": 0.05}, True, label="freebits-latency-0.05"),
        ParetoPointSchema("freebits-latency", {**lat, "lam": 0.2}, True, label="freebits-latency-0.2"),
    ]


@dataclass
class FreebitsParetoExperiment(FreebitsExperiment):
    """The latency-accuracy Pareto front on the board: each point a start (Bayesian Bits at several regulariser
    strengths, uniform 8/4/2 bits, the BitOPs ILP), the Free Bits refiner in the closed loop or not, QAT at the
    final precisions, the measured count and device top-1; one latency table shared by every point."""

    #: the config groups this experiment reads (the points name their own start methods, not `method`)
    uses: ClassVar[tuple[str, ...]] = ("board", "model", "data", "timer", "timing")

    name: str = "freebits-pareto"
    entry: str = "harness.experiments.freebits_pareto:run"
    points: list[ParetoPointSchema] = field(default_factory=_pareto_points)
    n_eval_device: int = 1000  # device test images for every point on the front (the int8 baseline: n_eval)
    # null: every point gets n_eval_device images; N: every point first gets N, then the front's get n_eval_device
    n_eval_screen: int | None = None
    jobs: int = 1  # points run at once, each in its own process (1: one after another, here)
    only: list[str] = field(default_factory=list)  # run only these labels (shards of a Hydra multirun)


@dataclass
class KernelsExperiment:
    """Count per MAC of every kernel on the benchmark layer shapes, at every (a, w) pair and the int8 loop."""

    #: the config groups this experiment reads: overriding another one is refused (it would do nothing)
    uses: ClassVar[tuple[str, ...]] = ("board", "timer", "timing")

    name: str = "kernels"
    entry: str = "harness.experiments.bench_kernels:run"
    layers: list[str] = field(default_factory=list)  # names from bench_kernels.LAYERS; empty = all
    pairs: list[list[int]] = field(
        default_factory=lambda: [[8, 8], [8, 4], [8, 2], [4, 8], [4, 4], [4, 2], [2, 8], [2, 4], [2, 2]]
    )
    ref: bool = True  # also measure th_<op>_ref (the plain int8 loops) in the same images
    jobs: int = 2  # images built and run at once
    relu_inputs: bool = False  # 4/2-bit inputs with the zero point at the bottom of the range (post-ReLU)
    o_bits: list[int] = field(default_factory=lambda: [8, 4, 2])  # output precisions of every pair (8 always)


@dataclass
class TableOptimumExperiment:
    """The network-level figure of the kernels: the latency table's fastest configuration vs uniform int8."""

    name: str = "table-optimum"
    entry: str = "harness.experiments.table_optimum:run"
    n_measure: int = 1  # images per deployment (counts barely depend on the data)
    n_calib: int = 64  # calibration images for the activation ranges
    # the same two configurations measured again in cycles (timer=qemu-cycles): board or board:timing
    also: list[str] = field(default_factory=lambda: ["qemu-mps2-an386", "qemu-mps2-an500:stm32h743"])
    profile: ProfileSchema = field(default_factory=ProfileSchema)


@dataclass
class PatchFinetuneSchema(QatSchema):
    """Quantization-aware fine-tuning of a QuantMCU configuration through the patch-based computation, every
    patch's precisions and ranges fixed (harness.search.quantmcu.finetune)."""

    epochs: int = 0  # 0: no fine-tuning (the paper's search is training-free)
    threads: int = 1  # torch threads: one is fastest on a busy machine
    baseline: bool = True  # also fine-tune the 8-bit patch-based model the same way (accuracy at equal training)


@dataclass
class QuantMcuExperiment:
    """QuantMCU end to end against 8-bit patch-based inference (MCUNetV2)."""

    #: the config groups this experiment reads: overriding another one is refused (it would do nothing)
    uses: ClassVar[tuple[str, ...]] = ("board", "model", "data", "method", "timer", "timing")

    name: str = "quantmcu"
    entry: str = "harness.experiments.quantmcu:run"
    n_eval: int = 200  # test images for the host top-1 (integer reference, patch-based)
    n_calib: int = 256  # calibration images for the 8-bit activation ranges
    n_device: int = 20  # test images run on the board (each model)
    device_baseline: bool = True  # also run the 8-bit patch-based model on the board
    device_baseline_finetuned: bool = True  # and, with finetune.baseline, the fine-tuned 8-bit one
    finetune: PatchFinetuneSchema = field(default_factory=PatchFinetuneSchema)


@dataclass
class QuantMcuSweepExperiment(QuantMcuExperiment):
    """QuantMCU settings swept on one model and one 8-bit baseline: BitOPs, measured count, device top-1."""

    name: str = "quantmcu-sweep"
    entry: str = "harness.experiments.quantmcu:run_sweep"
    # each point: method overrides (phi, lam, bits, maps, center, rule, percentile, min_fraction, range_mode,
    # scope); the plan (split, n) is shared
    points: list[Any] = field(
        default_factory=lambda: [
            {"phi": 3.0, "lam": 0.5},
            {"phi": 1000.0, "lam": 0.5},
            {"phi": 1000.0, "lam": 0.1},
            {"phi": 1000.0, "lam": 0.1, "bits": [8, 4]},
        ]
    )
    n_device: int = 200
    finetune: PatchFinetuneSchema = field(default_factory=lambda: PatchFinetuneSchema(epochs=1))
    comparable_pts: float = 1.0  # "comparable accuracy": top-1 within this many points of 8-bit patch-based


@dataclass
class QuantuneExperiment:
    """QuantuneV2 against the one-layer-at-a-time ranking, and top-1 vs BitOPs of top-k assignments."""

    #: the config groups this experiment reads: overriding another one is refused (it would do nothing)
    uses: ClassVar[tuple[str, ...]] = ("model", "data", "method")

    name: str = "quantune"
    entry: str = "harness.experiments.sensitivity:run"
    baseline: bool = True  # run the n + 1 evaluations
    sweep: bool = True  # ranking quality: top-1 of the top-k assignments of each ranking, for every k in ks
    # "all": k = 0..n (n: the layers whose bits can change); or a list (k beyond n dropped)
    ks: Any = "all"
    uniform: list[int] = field(default_factory=lambda: [8, 4])  # uniform a = w precisions to compare with
    baseline_topk: bool = True  # also the top-k assignments of the baseline ranking
    n_random: int = 3  # random rankings (seeds 0..n_random-1 past `seed`): the floor a ranking must beat
    n_eval: int = 500  # test images per evaluation
    tolerance_pts: float = 1.0  # "equal accuracy": mean top-1 over the ks within this many points


@dataclass
class ReliabilityExperiment:
    """Hostile serial peers: floods, stalls, a board dying mid-line, inconsistent replies; each must end in a
    clear error within its deadline."""

    #: the config groups this experiment reads: overriding another one is refused (it would do nothing)
    uses: ClassVar[tuple[str, ...]] = ("board",)

    name: str = "reliability"
    entry: str = "harness.experiments.bench_reliability:run"
    scenarios: list[str] = field(default_factory=list)  # names from harness.transport.hostile; empty = all
    tolerance_s: float = 0.5  # a scenario may end at most this long after its deadline
    qemu: bool = True  # also the real-QEMU scenarios (needs a QEMU board and the cross compiler)
    throughput_lines: int = 20000  # lines the link-throughput probe reads


@dataclass
class TimingExperiment:
    """Validation of the cycle model: the TRM's documented sequences, the M7 rules, the kernels' hottest loops
    against llvm-mca, and the plugin's cost against plain -icount."""

    #: the config groups this experiment reads: overriding another one is refused (it would do nothing)
    uses: ClassVar[tuple[str, ...]] = ()  # its boards, timers and network are fixed by the validation itself

    name: str = "timing"
    entry: str = "harness.experiments.timing_bench:run"
    network: str = "mbv2-w0.35"  # the closed loop's network (configs/model), random weights, int8
    reps: int = 5  # repetitions of each timing (the minimum counts: the host is shared)
    inferences: int = 3  # inferences per repetition
    top_loops: int = 12  # hottest kernel loops compared with llvm-mca, per core and network
    # Stated tolerance of the llvm-mca comparison per loop: LLVM's models are a cross-check, not the source
    # (its M4 model gives LDRD/LDM one cycle where the TRM says 1+N, unpaired loads one cycle, MACs latency 2).
    mca_tolerance_pct: dict[str, float] = field(default_factory=lambda: {"m4": 35.0, "m7": 50.0})


@dataclass
class ScalingExperiment:
    """Profile scaling: one model's latency table measured serially, by a local pool of workers and through a local
    Ray, each from a cold build cache; wall time, speed-up and whether the tables are identical."""

    name: str = "scaling"
    entry: str = "harness.experiments.bench_scaling:run"
    model: str = "mbv2-w0.35"  # configs/model name
    workers: list[int] = field(default_factory=lambda: [1, 2])  # local pool sizes (1: serial, the baseline)
    ray: bool = True  # also through a local Ray (a head started on this machine), with the largest pool size
    ray_address: str | None = None  # or a running cluster's head (host:port)
    # A subset of the table: every (a, w, o) triple of mbv2-w0.35 is 792 entries, too long to profile three times
    # on a shared two-core machine; the 4/8-bit pairs at o = 8 (132 entries) keep each profile to minutes.
    a_bits: list[int] = field(default_factory=lambda: [4, 8])
    w_bits: list[int] = field(default_factory=lambda: [4, 8])
    o_bits: list[int] = field(default_factory=lambda: [8])
    repeats: int = 1
    max_macs: float = 4.0e6  # MACs per image: several images, so there is work to share


#: (group, name, schema) of every schema; a YAML file selects one with ``defaults: [/schema/<group>/<name>]``.
SCHEMAS: tuple[tuple[str, str, type], ...] = (
    ("board", "board", BoardSchema),
    ("data", "data", DataSchema),
    ("profile", "profile", ProfileSchema),
    ("train", "train", TrainSchema),
    ("tracking", "mlflow", TrackingSchema),
    ("method", "uniform", UniformMethod),
    ("method", "bitops", BitopsMethod),
    ("method", "file", FileMethod),
    ("method", "quantune", QuantuneMethod),
    ("method", "quantmcu", QuantMcuMethod),
    ("method", "bayesbits", BayesBitsMethod),
    ("experiment", "smoke", SmokeExperiment),
    ("experiment", "int8", Int8Experiment),
    ("experiment", "freebits", FreebitsExperiment),
    ("experiment", "freebits-pareto", FreebitsParetoExperiment),
    ("experiment", "kernels", KernelsExperiment),
    ("experiment", "table-optimum", TableOptimumExperiment),
    ("experiment", "quantmcu", QuantMcuExperiment),
    ("experiment", "quantmcu-sweep", QuantMcuSweepExperiment),
    ("experiment", "quantune", QuantuneExperiment),
    ("experiment", "reliability", ReliabilityExperiment),
    ("experiment", "timing", TimingExperiment),
    ("experiment", "scaling", ScalingExperiment),
)


def register() -> None:
    """Store every schema in Hydra's ConfigStore under ``schema/<group>/<name>`` (idempotent)."""
    cs = ConfigStore.instance()
    for group, name, node in SCHEMAS:
        cs.store(group=f"schema/{group}", name=name, node=node)


def method_defaults(name: str) -> dict[str, Any]:
    """The defaults of search method ``name`` as a plain dict (for callers that pass plain mappings)."""
    for group, n, node in SCHEMAS:
        if group == "method" and n == name:
            return asdict(node())
    raise KeyError(name)


def experiment_schema(name: str) -> type | None:
    """The schema dataclass of experiment ``name`` (None if it has none)."""
    return next((node for group, n, node in SCHEMAS if group == "experiment" and n == name), None)
