"""Sizing of known models against figures computed by hand, each with its derivation.

Conventions (planning.sizing): weights = parameters x bytes per parameter; KV cache = sequences x
context x 2 (K, V) x layers x KV heads x head dim x KV bytes; overhead = int(0.10 x weights);
usable = int(0.90 x memory). GiB = 2**30 bytes; an H100's 81920 MiB = 85,899,345,920 bytes.
Architectures (catalog, from each model's config.json): Llama 3.1 8B 32 layers, 32 heads, 8 KV
heads, head dim 128; Llama 3.1 70B 80 layers, 64 heads, 8 KV heads, 128; Mixtral 8x7B 32 layers,
32 heads, 8 KV heads, 128; Qwen2.5 72B 80 layers, 64 heads, 8 KV heads, 128.
"""

from __future__ import annotations

import pytest

from inferstack import catalog
from inferstack.catalog import GIB, MIB
from inferstack.planning import sizing
from inferstack.spec.models import Model

H100 = 81920 * MIB  # 85,899,345,920 bytes


def model(parameters, precision="bf16", context_length=8192, **extra) -> Model:
    return Model.model_validate(
        {
            "parameters": parameters,
            "precision": precision,
            "context_length": context_length,
            "source": "s3://acme-models/m",
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("name", "m", "weights", "kv", "overhead"),
    [
        # Llama 3.1 8B, bf16, 8k: 8,030,261,248 x 2 = 16,060,522,496; KV per token 2x32x8x128x2 =
        # 131,072 B (128 KiB), x 8192 = 1,073,741,824 (1 GiB); overhead int(1,606,052,249.6).
        ("llama-3-1-8b", model(8_030_261_248), 16_060_522_496, 1_073_741_824, 1_606_052_249),
        # fp8 weights (1 byte) and fp8 KV cache (1 byte): 8,030,261,248; 65,536 B/token x 8192 = 536,870,912.
        (
            "llama-3-1-8b",
            model(8_030_261_248, "fp8", kv_cache_precision="fp8"),
            8_030_261_248,
            536_870_912,
            803_026_124,
        ),
        # 128k context, 4 sequences in bf16: 4 x 131,072 tokens x 131,072 B = 68,719,476,736 (64 GiB).
        (
            "llama-3-1-8b",
            model(8_030_261_248, context_length=131072, concurrency=4),
            16_060_522_496,
            64 * GIB,
            1_606_052_249,
        ),
        # Llama 3.1 70B, bf16, 8k: 70,553,706,496 x 2 = 141,107,412,992; KV 2x80x8x128x2 = 327,680 B/token
        # (320 KiB) x 8192 = 2,684,354,560 (2.5 GiB); overhead int(14,110,741,299.2).
        ("llama-3-1-70b", model(70_553_706_496), 141_107_412_992, 2_684_354_560, 14_110_741_299),
        # 70B int4: 70,553,706,496 x 0.5 = 35,276,853,248; 32k context: 327,680 x 32,768 = 10,737,418,240 (10 GiB).
        ("llama-3-1-70b", model(70_553_706_496, "int4", 32768), 35_276_853_248, 10 * GIB, 3_527_685_324),
        # Mixtral 8x7B as '46.7B' = 46,700,000,000 x 2 = 93,400,000,000; KV 2x32x8x128x2 = 131,072 B/token
        # x 32,768 = 4,294,967,296 (4 GiB); overhead 9,340,000,000.
        ("mixtral-8x7b", model("46.7B", context_length=32768), 93_400_000_000, 4 * GIB, 9_340_000_000),
        # Qwen2.5 72B as '72.7B' = 72,700,000,000 x 2 = 145,400,000,000; KV 327,680 B/token x 32,768 =
        # 10 GiB; overhead 14,540,000,000.
        ("qwen2-5-72b", model("72.7B", context_length=32768), 145_400_000_000, 10 * GIB, 14_540_000_000),
        # the same in fp8 with an fp8 KV cache and 8 sequences: 72,700,000,000; 163,840 B x 32,768 x 8 = 40 GiB.
        (
            "qwen2-5-72b",
            model("72.7B", "fp8", 32768, kv_cache_precision="fp8", concurrency=8),
            72_700_000_000,
            40 * GIB,
            7_270_000_000,
        ),
    ],
)
def test_footprint_of_known_models(name, m, weights, kv, overhead):
    fp = sizing.footprint(name, m)
    assert (fp.weights_bytes, fp.kv_cache_bytes, fp.overhead_bytes) == (weights, kv, overhead)
    assert fp.total_bytes == weights + kv + overhead


def test_the_catalog_names_a_model_whose_key_differs():
    m = model("72.7B", catalog_name="Qwen2.5-72B")
    assert sizing.architecture_of("chat", m).layers == 80
    assert sizing.architecture_of("chat", model("72.7B")) is None  # 'chat' is in no catalog


@pytest.mark.parametrize(
    ("name", "m", "degree"),
    [
        # 70B bf16 8k: 157,902,508,851 B. One H100 holds int(0.9 x 85,899,345,920) = 77,309,411,328;
        # two 154,618,822,656 (short); three 231,928,233,984 would hold it, but 3 does not divide
        # the 64 attention heads (nor 8 KV heads): 4.
        ("llama-3-1-70b", model(70_553_706_496), 4),
        # 70B fp8 8k: 70,553,706,496 + 2,684,354,560 + 7,055,370,649 = 80,293,431,705 > 77,309,411,328: 2.
        ("llama-3-1-70b", model(70_553_706_496, "fp8"), 2),
        # 8B bf16 8k: 18,740,316,569 <= 77,309,411,328: 1.
        ("llama-3-1-8b", model(8_030_261_248), 1),
        # Mixtral bf16 32k: 107,034,967,296 B: 2 H100s (154,618,822,656).
        ("mixtral-8x7b", model("46.7B", context_length=32768), 2),
        # Qwen 72B bf16 32k: 170,677,418,240 B: 3 would hold 231.9e9 but 3 does not divide 64: 4.
        ("qwen2-5-72b", model("72.7B", context_length=32768), 4),
    ],
)
def test_tensor_parallel_degree_on_h100(name, m, degree):
    arch = sizing.architecture_of(name, m)
    assert sizing.tensor_parallel_degree(sizing.footprint(name, m), arch, H100, 8) == degree


def test_no_degree_within_one_node():
    # 405B bf16 = 809,300,623,360 B of weights alone; 8 H100s hold 618,475,290,624.
    m = model(404_650_311_680)
    fp = sizing.footprint("llama-3-1-405b", m)
    assert sizing.tensor_parallel_degree(fp, sizing.architecture_of("llama-3-1-405b", m), H100, 8) is None


@pytest.mark.parametrize(
    ("heads", "kv_heads", "degree", "refused"),
    [
        (64, 8, 4, False),
        (64, 8, 3, True),  # does not divide the heads
        (64, 8, 16, False),  # 16 ranks, KV heads replicated twice
        (40, 8, 5, True),  # divides 40 heads but neither divides nor is a multiple of 8 KV heads
        (32, 32, 8, False),
        (28, 4, 7, True),  # Qwen2.5-7B shape: 7 divides 28 heads, not 4 KV heads
    ],
)
def test_tensor_parallel_refusal(heads, kv_heads, degree, refused):
    arch = catalog.ModelArchitecture("x", 1, kv_heads, 128, 1, heads)
    assert (sizing.tensor_parallel_refusal(arch, degree) is not None) is refused


def test_throughput_estimate_of_llama_8b_on_one_h100():
    """Hand-computed from the formula, at 1000 prompt + 250 output tokens:
    room = 77,309,411,328 - 16,060,522,496 - 1,606,052,249 = 59,642,836,583 B; per sequence
    131,072 x 1,250 = 163,840,000 B -> 364 sequences, capped at 256.
    KV read per step = 256 x (1000 + 125) x 131,072 = 37,748,736,000 B; step =
    (16,060,522,496 + 37,748,736,000) / (3350e9 x 0.7) = 0.0229464 s -> 256 / step = 11,156.4 tokens/s.
    Prefill = 989.5e12 x 0.35 / (2 x 8,030,261,248) = 21,563.7 tokens/s."""
    perf = catalog.accelerator_performance()["H100"]
    assert (perf.memory_gbps, perf.tflops_16bit) == (3350, 989.5)
    cap = sizing.replica_capacity("llama-3-1-8b", model(8_030_261_248), H100, 1, perf, 1000, 250)
    assert cap.concurrent_sequences == 256
    assert cap.output_tokens_per_second == pytest.approx(11156.4, abs=0.1)
    assert cap.prefill_tokens_per_second == pytest.approx(21563.7, abs=0.1)
    assert cap.estimated and "estimate on H100" in cap.formula


def test_measured_figures_replace_the_estimate():
    perf = catalog.accelerator_performance()["H100"]
    cap = sizing.replica_capacity(
        "llama-3-1-8b",
        model(8_030_261_248),
        H100,
        1,
        perf,
        1000,
        250,
        stated_sequences=64,
        stated_output_tokens_per_second=3000,
    )
    assert (cap.concurrent_sequences, cap.output_tokens_per_second, cap.estimated) == (64, 3000, False)


def test_a_mixture_of_experts_decodes_at_its_active_parameters():
    """Mixtral reads its active experts' weights each step, not all 46.7B: at one sequence of
    4096 + 0 tokens on 2 H100s (85% tensor-parallel efficiency), the step is
    (active x 2 + 1 x 4096 x 131,072) / (2 x 0.85 x 3350e9 x 0.7)."""
    arch = catalog.model_architectures()["mixtral-8x7b"]
    assert arch.active_parameters < arch.parameters / 3
    perf = catalog.accelerator_performance()["H100"]
    cap = sizing.replica_capacity(
        "mixtral-8x7b", model("46.7B", context_length=32768), 2 * H100, 2, perf, 4096, 1, stated_sequences=1
    )
    step = (arch.active_parameters * 2 + 4096.5 * 131_072) / (2 * 0.85 * 3350e9 * 0.7)
    assert cap.output_tokens_per_second == pytest.approx(1 / step, rel=1e-9)


def test_replicas_for_a_peak():
    """64 sequences, 1600 output tokens/s (25 per sequence), 20,000 prefill tokens/s, a request of
    1000 + 250 tokens: its latency is 1000 / 20,000 + 250 / 25 = 10.05 s, so the slots allow
    64 / 10.05 = 6.37 requests/s; but the replica's compute allows 1 / (1000 / 20,000 + 250 / 1600)
    = 1 / 0.20625 = 4.848 requests/s, the bound. A slot is held 64 / 4.848 = 13.2 -> 14 s; a replica
    serves 4.848 x 3600 = 17,454.5 requests/hour; 50,000 at 70% need ceil(50,000 / 12,218.2) =
    ceil(4.09) = 5 (the old per-slot prefill said 11 s and 4)."""
    cap = sizing.ReplicaCapacity(64, 1600.0, 20000.0, False, "")
    assert sizing.latency_seconds(cap, 1000, 250) == pytest.approx(10.05)
    assert sizing.requests_per_second(cap, 1000, 250) == pytest.approx(1 / 0.20625)
    assert sizing.service_seconds(cap, 1000, 250) == 14
    assert sizing.replicas_for(cap, 50_000, 1000, 250, 0.7) == 5


def test_prefill_is_shared_by_the_replica_not_given_to_every_slot():
    """A prefill-heavy profile: 8000 prompt + 50 output tokens, on a replica of 64 sequences,
    1600 output tokens/s (25 per sequence) and 20,000 prefill tokens/s.
    Per slot (the old arithmetic) a request holds a slot ceil(8000 / 20,000 + 50 / 25) = ceil(2.4)
    = 3 s: 64 / 3 = 21.3 requests/s, 170,667 output tokens/s... of a replica that decodes 1600.
    Shared: each request costs the replica 8000 / 20,000 + 50 / 1600 = 0.4 + 0.03125 = 0.43125 s of
    its compute, so 1 / 0.43125 = 2.3188 requests/s (the slots would allow 64 / 2.4 = 26.7), 115.9
    output tokens/s, 8,347.8 requests/hour; a slot is held 64 / 2.3188 = 27.6 -> 28 s. A peak of
    20,000 requests/hour at 70% needs ceil(20,000 / (8,347.8 x 0.7)) = ceil(3.42) = 4 replicas
    (the old arithmetic: ceil(20,000 / (76,800 x 0.7)) = 1)."""
    cap = sizing.ReplicaCapacity(64, 1600.0, 20000.0, False, "")
    assert sizing.requests_per_second(cap, 8000, 50) == pytest.approx(1 / 0.43125)
    assert sizing.output_tokens_per_second_served(cap, 8000, 50) == pytest.approx(50 / 0.43125)
    assert sizing.service_seconds(cap, 8000, 50) == 28
    assert sizing.replicas_for(cap, 20_000, 8000, 50, 0.7) == 4
