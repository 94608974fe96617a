"""The benchmark suite of issue 10: MoE layers and the MoEUT-44M forward,
moe-mlir against its peers in one run, with the machine's limits.

usage: .venv/bin/python bench/suite.py [--quick] [--threads 1,2]
       [--out bench-results] [--peer-memory-gb 6] [--no-forward]
       [--no-openvino] [--no-attention] [--shapes MoEUT-44M,MoEUT-244M]
       [--tokens 1,8,64,512,2048,8192] [--forward-tokens 256,1024]

One command, three files in --out: suite.md (markdown tables), suite.csv
(one row per case, system and thread count) and suite.png (moe-mlir's speed
against each peer, per case). Measured, each at 1 and 2 threads (reported
separately; every system gets the same thread count):

  - the machine: the FMA peak of one core (bench/peak_fma.c; the peak at T
    threads is counted as T times that) and the read bandwidth at T threads
    (bench/read_bandwidth.c);
  - com.microsoft.MoE at the MoEUT-44M and MoEUT-244M feed-forward shapes
    (relu, ORT's softmax gate and k), N = 1, 8, 64, 512, 2048, 8192 tokens:
    moe-mlir and ONNX Runtime on the same file, PyTorch eager on the
    reference (python/moe_ref/ort_moe.py);
  - the σ-MoE layer (sigmoid gate, the org.moe_mlir export) at the same
    shapes and N: moe-mlir and ONNX Runtime on the same file, OpenVINO on a
    plain torch.onnx.export of the same module and weights, PyTorch eager
    on the module;
  - a SwitchHead layer (MoEUT-44M: 4 heads of 82, 8 experts, k 2) at
    T = 256 and 1024 and a Mixture-of-Tokens layer (D 412, 32 experts of
    128, groups of 32 sequences) at 512 and 2048 tokens, with the same peers;
  - the published MoEUT-44M forward at T = 256 and 1024 (bench/moeut44m.py:
    ONNX Runtime on the same file, OpenVINO on the plain export).

Reported per row: p50 ms of each system, tokens/s, the GFLOP/s of the
layer's matmul work (expert, projection and attention products; routing
and elementwise work not counted) and its share of the peak, the ratio of
each peer's time to moe-mlir's, and for N <= 8 the bytes the layer must
read (the selected experts' weights and the selector; min(N k, E) experts,
so for N > 1 an upper bound: repeated selections are counted each time)
over moe-mlir's time,
against the measured bandwidth ("bw x": time / (bytes / bandwidth); 1 is
the bound). For N <= 8 every system takes 32 different inputs in turn,
so the selected experts change from call to call as they do from token to
token (one input would keep its experts in the caches). The systems are
timed in alternating turns (a pause, an untimed call, then timed calls for
about 50 ms), never right after another system's calls: every runtime's
threads spin for a while after its calls, and on two cores they would
take the core the next system's worker needs. Outputs are
compared with ONNX Runtime's (max |diff|, on the first input).

The plain exports of the reference modules gather each token's expert
weights (w1[ids]): N k D I floats per projection, 2 N k D I for both.
Where that exceeds --peer-memory-gb, PyTorch eager and OpenVINO are skipped for that case and
the table says so (ONNX Runtime too on the σ-MoE layer, whose function
body gathers the same way, past --ort-memory-gb, by default half the
machine's memory: at the 244M shape N = 2048 gathers 34 GB); a peer whose time per call, scaled linearly from the
last N, would pass --max-peer-seconds (10) is skipped at the larger N.
--quick runs N = 1, 64, 512 at the 44M shape, T = 256,
and no forward at 1024.
"""
import argparse
import csv
import gc
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "python"))
build = os.environ.get("MOE_BUILD_DIR", os.path.join(root, "build"))
sys.path.insert(0, os.path.join(build, "python"))
import moe_mlir  # noqa: E402
from moe_ref import modules as M  # noqa: E402
from moe_ref.configs import PUBLISHED  # noqa: E402
from moe_ref.onnx_export import export_layer  # noqa: E402
from moe_ref.ort_moe import OrtMoE  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--quick", action="store_true")
p.add_argument("--threads", default="1,2")
p.add_argument("--out", default=os.path.join(root, "bench-results"))
p.add_argument("--peer-memory-gb", type=float, default=6.0)
def half_of_memory_gb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2e6
    return 8.0


p.add_argument("--ort-memory-gb", type=float, default=half_of_memory_gb(),
               help="skip ONNX Runtime on the sigma-MoE layer (whose "
               "org.moe_mlir function body gathers expert weights) where "
               "the gathers of both projections would pass this (default: "
               "half the machine's memory)")
p.add_argument("--no-forward", action="store_true")
p.add_argument("--no-attention", action="store_true",
               help="no SwitchHead and Mixture-of-Tokens layers")
p.add_argument("--shapes", default="MoEUT-44M,MoEUT-244M",
               help="feed-forward shapes (names of moe_ref.configs.PUBLISHED)")
p.add_argument("--tokens", default="1,8,64,512,2048,8192",
               help="token counts N of the feed-forward layers")
p.add_argument("--forward-tokens", default="256,1024",
               help="sequence lengths of the MoEUT-44M forward")
p.add_argument("--no-openvino", action="store_true")
p.add_argument("--min-seconds", type=float, default=1.0,
               help="time each system for at least this long per case")
p.add_argument("--max-peer-seconds", type=float, default=10.0,
               help="skip a peer at larger N once its time per call, "
               "scaled from the last N, would pass this")
a = p.parse_args()
threads_list = [int(t) for t in a.threads.split(",")]
os.makedirs(a.out, exist_ok=True)
work = tempfile.mkdtemp(prefix="moe-suite-")

if not a.no_openvino:
    import openvino as ov
    core = ov.Core()


def build_tool(name, flags=()):
    exe = os.path.join(work, name)
    if not os.path.exists(exe):
        subprocess.run(["clang-22", "-O2", "-march=native", *flags,
                        os.path.join(root, "bench", name + ".c"), "-o", exe],
                       check=True)
    return exe


def machine(threads):
    peak = subprocess.run([build_tool("peak_fma")], check=True,
                          capture_output=True, text=True).stdout.split()[1]
    bw = subprocess.run([build_tool("read_bandwidth", ["-pthread"]),
                         str(threads)], check=True, capture_output=True,
                        text=True).stdout.split()[1]
    return float(peak), float(bw)


# Between two systems' turns: every system's pool spins for a while after
# its last parallel loop (ONNX Runtime's, OpenMP's in PyTorch, TBB's in
# OpenVINO, moe-mlir's), and on two cores a spinning thread of the last
# system takes the core the next one's worker needs. With call-by-call
# turns, the first two-thread run of the suite timed moe-mlir's N = 1 layer
# at 0.71 ms against 0.17 ms on one thread.
TURN_GAP_S = 0.02
# A turn: one untimed call, then timed calls for about this long (at least
# one, at most TURN_CALLS).
TURN_S = 0.05
TURN_CALLS = 10


def time_alternating(runners, min_seconds):
    """p50 ms of each runner, in turns until each has run for min_seconds
    (at least 3 and at most 30 timed calls each). A turn is an untimed call
    and then timed calls for TURN_S (at most TURN_CALLS), after a pause of
    TURN_GAP_S, so that no system is timed while another's threads still
    spin; turns alternate, so slow drifts of the machine reach every
    system alike."""
    for _, fn in runners:
        fn()  # warm-up: first-touch of buffers, lazy compiles
    times = {name: [] for name, _ in runners}
    while True:
        for name, fn in runners:
            time.sleep(TURN_GAP_S)
            fn()
            start = time.perf_counter()
            for _ in range(TURN_CALLS):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
                if time.perf_counter() - start >= TURN_S or \
                        len(times[name]) >= 30:
                    break
        done = all(len(v) >= 3 and (sum(v) >= min_seconds or len(v) >= 30)
                   for v in times.values())
        if done:
            break
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def ort_session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts,
                                providers=["CPUExecutionProvider"])


def openvino_request(path, threads):
    compiled = core.compile_model(path, "CPU", {
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": threads})
    return compiled.create_infer_request()


def plain_export(module, example, path, dynamic):
    with torch.no_grad():
        torch.onnx.export(module, (example,), path, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": dynamic, "y": dynamic})


class Layer:
    """One layer: its org.moe_mlir (or com.microsoft) file, compiled once;
    a plain export and a torch callable where the peers apply."""

    def __init__(self, name, shape, model, torch_fn, plain_module=None,
                 example=(3,), ort_gathers=False):
        self.name, self.shape, self.torch_fn = name, shape, torch_fn
        # ONNX Runtime runs the org.moe_mlir function's body, which gathers
        # each token's expert weights as the reference does.
        self.ort_gathers = ort_gathers
        self.path = os.path.join(work, f"{name}-{shape}.onnx")
        onnx.save(model, self.path)
        t0 = time.perf_counter()
        self.artifact = moe_mlir.compile(self.path, self.path + ".moeb")
        self.compile_s = time.perf_counter() - t0
        self.plain = None
        if plain_module is not None and not a.no_openvino:
            self.plain = self.path.replace(".onnx", "-plain.onnx")
            # The example's leading dims (the last is the model's width)
            # are dynamic in the export.
            width = model.graph.input[0].type.tensor_type.shape.dim[
                -1].dim_value
            dynamic = {i: f"d{i}" for i in range(len(example))}
            plain_export(plain_module, torch.zeros(*example, width),
                         self.plain, dynamic)


rows = []


def record(case, n, threads, p50, peak, bw, flops, tokens, bytes_read,
           diff, skipped):
    ours = p50["moe-mlir"]
    for system, ms in p50.items():
        rows.append({
            "case": case, "tokens": n, "threads": threads, "system": system,
            "p50_ms": round(ms, 4),
            "tokens_per_s": round(tokens / ms * 1e3, 1),
            "gflops": round(flops / ms / 1e6, 2) if flops else "",
            "pct_peak": round(100 * flops / ms / 1e6 / (peak * threads), 1)
            if flops else "",
            "time_over_ours": round(ms / ours, 3),
            "gbps": round(bytes_read / ms / 1e6, 2) if bytes_read else "",
            "bw_bound_x": round(ms / (bytes_read / (bw * 1e9) * 1e3), 2)
            if bytes_read else "",
            "max_abs_diff_vs_ort": f"{diff:.2e}" if diff is not None else "",
            "note": "",
        })
    for system, why in skipped.items():
        rows.append({"case": case, "tokens": n, "threads": threads,
                     "system": system, "p50_ms": "", "tokens_per_s": "",
                     "gflops": "", "pct_peak": "", "time_over_ours": "",
                     "gbps": "", "bw_bound_x": "", "max_abs_diff_vs_ort": "",
                     "note": why})


# (case, system, threads) -> (N, p50 ms) of the last measurement: a peer
# whose time, scaled linearly in N, would pass --max-peer-seconds per call
# is skipped at larger N.
last_times = {}


def run_layer(layer, n, threads, peak, bw, xs, flops, tokens, bytes_read,
              gather_bytes):
    """Times `layer` on the inputs `xs`, taken in turn call after call (one
    input, or several for decode-sized N so that the selected experts
    change between calls as they do between tokens, instead of staying in
    the caches)."""
    case = f"{layer.name} {layer.shape}"
    ours = moe_mlir.InferenceSession(layer.artifact, threads=threads)
    skipped = {}
    ref = None
    if layer.ort_gathers and gather_bytes > a.ort_memory_gb * 1e9:
        skipped["ONNX Runtime"] = (
            f"skipped: the function body gathers {gather_bytes / 1e9:.1f} GB "
            f"of expert weights (--ort-memory-gb {a.ort_memory_gb:.1f})")
        diff = None
    else:
        ref = ort_session(layer.path, threads)
        want = ref.run(None, {"x": xs[0]})[0]
        got = ours.run(None, {"x": xs[0]})[0]
        diff = float(np.abs(got - want).max()) if got.size else 0.0

    def cycling(call):
        state = {"i": 0}

        def fn():
            call(xs[state["i"] % len(xs)])
            state["i"] += 1
        return fn
    runners = [("moe-mlir", cycling(lambda x: ours.run(None, {"x": x})))]
    if ref is not None:
        runners.append(("ONNX Runtime",
                        cycling(lambda x: ref.run(None, {"x": x}))))
    too_big = gather_bytes > a.peer_memory_gb * 1e9
    big_note = (f"skipped: the reference gathers {gather_bytes / 1e9:.1f} GB "
                f"of expert weights (--peer-memory-gb {a.peer_memory_gb:g})")

    def too_slow(system):
        prev = last_times.get((case, system, threads))
        if prev and prev[1] * n / prev[0] > 1e3 * a.max_peer_seconds:
            return (f"skipped: projected over {a.max_peer_seconds:g} s per "
                    f"call from {prev[1]:.0f} ms at N = {prev[0]} "
                    f"(--max-peer-seconds)")
        return None
    if layer.plain is not None:
        why = big_note if too_big else too_slow("OpenVINO")
        if why:
            skipped["OpenVINO"] = why
        else:
            req = openvino_request(layer.plain, threads)
            runners.append(("OpenVINO", cycling(lambda x: req.infer({"x": x}))))
    if layer.torch_fn is not None:
        why = big_note if too_big else too_slow("PyTorch eager")
        if why:
            skipped["PyTorch eager"] = why
        else:
            def run_torch(x):
                with torch.no_grad():
                    layer.torch_fn(torch.from_numpy(x))
            runners.append(("PyTorch eager", cycling(run_torch)))
    torch.set_num_threads(threads)
    p50 = time_alternating(runners, a.min_seconds)
    for system, ms in p50.items():
        last_times[(case, system, threads)] = (n, ms)
    record(case, n, threads, p50, peak, bw, flops, tokens, bytes_read, diff,
           skipped)
    del runners, ours, ref
    gc.collect()
    with open("/proc/self/status") as f:
        rss = [ln.split()[1] for ln in f if ln.startswith("VmRSS")]
    print(f"    {case} N={n} {threads} thread(s): ours {p50['moe-mlir']:.3f} "
          f"ms, ORT {p50.get('ONNX Runtime', float('nan')):.3f} ms; "
          f"RSS {int(rss[0]) / 1e6 if rss else 0:.1f} GB", flush=True)


def ffn_cases(shape, tokens_list, threads, peak, bw):
    cfg = PUBLISHED[shape][0]
    d, i, e, k = cfg.d_model, cfg.expert_size, cfg.ff_experts, cfg.ff_k
    torch.manual_seed(0)
    ms_layer = OrtMoE(d, i, e, k, "relu")
    sigma = M.SigmaMoE(d, e, i, k).eval()
    layers = [
        (Layer("com.microsoft.MoE", shape, ms_layer.export(),
               ms_layer.forward), e),
        (Layer("sigma-MoE", shape,
               export_layer(sigma, "sigma_moe", ["N", d]), sigma.forward,
               plain_module=sigma, ort_gathers=True), e),
    ]
    rng = np.random.default_rng(0)
    for n in tokens_list:
        # Decode-sized N: 32 inputs in turn, each selecting its own experts.
        xs = [rng.standard_normal((n, d), dtype=np.float32)
              for _ in range(32 if n <= 8 else 1)]
        flops = 2 * n * k * 2 * d * i
        for layer, experts in layers:
            # Decode-sized N: the bytes of the selected experts (at most
            # all of them) and of the selector.
            sel = min(n * k, experts)
            bytes_read = 4 * (sel * 2 * d * i + experts * d) if n <= 8 else 0
            run_layer(layer, n, threads, peak, bw, xs, flops, n, bytes_read,
                      gather_bytes=4 * n * k * 2 * d * i)


def attention_cases(tlist, threads, peak, bw):
    cfg = PUBLISHED["MoEUT-44M"][0]
    d, h, dh = cfg.d_model, cfg.n_heads, cfg.head_dim
    torch.manual_seed(0)
    sh = M.SwitchHead(d, h, dh, cfg.att_experts, cfg.att_k).eval()

    class SelfAttention(torch.nn.Module):
        """The layer as export_layer wires it: q, k and v from x."""

        def __init__(self):
            super().__init__()
            self.sh = sh

        def forward(self, x):
            return self.sh(x, x, x)
    wrapped = SelfAttention().eval()
    layer = Layer("SwitchHead", "MoEUT-44M",
                  export_layer(sh, "switchhead", ["B", "T", d]),
                  wrapped.forward, plain_module=wrapped, example=(1, 3))
    rng = np.random.default_rng(0)
    for t in tlist:
        x = rng.standard_normal((1, t, d), dtype=np.float32)
        flops = (2 * t * d * h * dh * 2            # q, k
                 + 2 * t * h * cfg.att_k * d * dh * 2  # value, output experts
                 + 2 * t * t * h * dh * 2)          # scores, values
        run_layer(layer, t, threads, peak, bw, [x], flops, t, 0,
                  gather_bytes=4 * t * h * cfg.att_k * 2 * d * dh)


def mot_cases(nlist, threads, peak, bw):
    d, e, i, g = 412, 32, 128, 32
    torch.manual_seed(0)
    mot = M.MixtureOfTokens(d, e, i, g).eval()
    layer = Layer("MixtureOfTokens", "D412-E32", export_layer(
        mot, "mot", ["B", "T", d]), mot.forward, plain_module=mot,
        example=(g, 3))
    rng = np.random.default_rng(0)
    for n in nlist:
        x = rng.standard_normal((g, n // g, d), dtype=np.float32)
        # Per group and expert one mixed token through both projections.
        flops = 2 * (n // g) * e * 2 * d * i
        run_layer(layer, n, threads, peak, bw, [x], flops, n, 0,
                  gather_bytes=0)


def forward_cases(tlist, threads):
    for t in tlist:
        cmd = [sys.executable, os.path.join(root, "bench", "moeut44m.py"),
               "--tokens", str(t), "--repeats", "3" if t <= 256 else "1",
               "--threads", str(threads)]
        if a.no_openvino:
            cmd.append("--no-openvino")
        out = subprocess.run(cmd, check=True, capture_output=True,
                             text=True).stdout
        p50 = {}
        for line in out.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3 and cells[1].replace(".", "").isdigit():
                name = ("moe-mlir" if cells[0] == "moe-mlir" else
                        "ONNX Runtime" if cells[0].startswith("ONNX") else
                        "OpenVINO" if cells[0].startswith("OpenVINO") else
                        cells[0])
                p50[name] = float(cells[1])
        diff = None
        for line in out.splitlines():
            if line.startswith("max |logits - ORT| = "):
                diff = float(line.split("= ")[1].split(";")[0])
        record("MoEUT-44M forward", t, threads, p50, 1, 1, 0, t, 0, diff,
               {})


t_start = time.perf_counter()
shapes = ["MoEUT-44M"] if a.quick else a.shapes.split(",")
ntok = ([1, 64, 512] if a.quick else
        [int(t) for t in a.tokens.split(",")])
forward_t = ([256] if a.quick else
             [int(t) for t in a.forward_tokens.split(",")])
limits = {}
for threads in threads_list:
    peak, bw = machine(threads)
    limits[threads] = (peak, bw)
    print(f"{threads} thread(s): FMA peak {peak:.1f} GFLOP/s per core, "
          f"read bandwidth {bw:.1f} GB/s", flush=True)
    for shape in shapes:
        ffn_cases(shape, ntok, threads, peak, bw)
        print(f"  feed-forward {shape} done "
              f"({time.perf_counter() - t_start:.0f} s)", flush=True)
    if not a.no_attention:
        attention_cases([256] if a.quick else [256, 1024], threads, peak,
                        bw)
        mot_cases([512] if a.quick else [512, 2048], threads, peak, bw)
    print(f"  layers done ({time.perf_counter() - t_start:.0f} s)",
          flush=True)
    if not a.no_forward:
        forward_cases(forward_t, threads)
        print(f"  forward done ({time.perf_counter() - t_start:.0f} s)",
              flush=True)

fields = ["case", "tokens", "threads", "system", "p50_ms", "tokens_per_s",
          "gflops", "pct_peak", "time_over_ours", "gbps", "bw_bound_x",
          "max_abs_diff_vs_ort", "note"]
with open(os.path.join(a.out, "suite.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)

# Markdown: one table per thread count, one line per case and N.
lines = [f"# moe-mlir benchmark suite\n",
         f"Command: `.venv/bin/python bench/suite.py "
         f"{' '.join(sys.argv[1:])}`; "
         f"{time.strftime('%Y-%m-%d %H:%M')}; total "
         f"{time.perf_counter() - t_start:.0f} s.\n"]
systems = ["ONNX Runtime", "OpenVINO", "PyTorch eager"]
for threads in threads_list:
    peak, bw = limits[threads]
    lines.append(f"\n## {threads} thread(s)\n\nFMA peak {peak:.1f} GFLOP/s "
                 f"per core ({peak * threads:.1f} for {threads}); read "
                 f"bandwidth {bw:.1f} GB/s. Ratios: peer time / moe-mlir "
                 f"time (above 1: moe-mlir is faster).\n")
    lines.append("| case | N | moe-mlir ms | tokens/s | GFLOP/s | % peak | "
                 "GB/s (bw x) | ONNX Runtime ms (ratio) | OpenVINO ms "
                 "(ratio) | PyTorch ms (ratio) | max diff vs ORT |")
    lines.append("|" + "---|" * 11)
    keys = []
    for r in rows:
        key = (r["case"], r["tokens"])
        if r["threads"] == threads and key not in keys:
            keys.append(key)
    for case, n in keys:
        by = {r["system"]: r for r in rows if r["threads"] == threads
              and r["case"] == case and r["tokens"] == n}
        o = by["moe-mlir"]
        cells = [case, str(n), f"{o['p50_ms']:.3f}", f"{o['tokens_per_s']:.0f}",
                 str(o["gflops"] or ""), str(o["pct_peak"] or ""),
                 f"{o['gbps']} ({o['bw_bound_x']})" if o["gbps"] else ""]
        for s in systems:
            r = by.get(s)
            if r is None:
                cells.append("")
            elif r["note"]:
                cells.append("skipped (memory)" if "gathers" in r["note"]
                             else "skipped (time)")
            else:
                cells.append(f"{r['p50_ms']:.3f} ({r['time_over_ours']:.2f})")
        cells.append(o["max_abs_diff_vs_ort"])
        lines.append("| " + " | ".join(cells) + " |")
notes = sorted({r["note"] for r in rows if r["note"]})
if notes:
    lines.append("\nSkipped peers:\n")
    lines += [f"- {n}" for n in notes]
with open(os.path.join(a.out, "suite.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))

# The plot: per case, peer time / moe-mlir time against N (log-log), one
# panel per thread count.
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is missing (scripts/setup.sh installs "
          "python3-matplotlib): no suite.png", file=sys.stderr)
    sys.exit(0)
fig, axes = plt.subplots(1, len(threads_list),
                         figsize=(7 * len(threads_list), 5), squeeze=False)
for ax, threads in zip(axes[0], threads_list):
    for case in dict.fromkeys(r["case"] for r in rows):
        for s, marker in zip(systems, "osd"):
            pts = [(r["tokens"], r["time_over_ours"]) for r in rows
                   if r["case"] == case and r["system"] == s
                   and r["threads"] == threads and r["time_over_ours"]]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker=marker, label=f"{case} vs {s}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens N (T for attention and the forward)")
    ax.set_ylabel("peer time / moe-mlir time")
    ax.set_title(f"{threads} thread(s)")
    ax.legend(fontsize=6)
fig.tight_layout()
fig.savefig(os.path.join(a.out, "suite.png"), dpi=120)
print(f"wrote {a.out}/suite.md, suite.csv, suite.png")
