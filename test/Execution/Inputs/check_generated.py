"""Checks moe-run's generated.npy against greedy decoding with the artifact's
full forward (entry main) on the growing prefix: no cache involved."""
import sys

import numpy as np

import moe_mlir

artifact, prompt_path, generated_path = sys.argv[1:4]
session = moe_mlir.InferenceSession(artifact)
seq = np.load(prompt_path)
got = np.load(generated_path)
assert got.dtype == np.int64 and got.shape[0] == seq.shape[0], got.shape
for _ in range(got.shape[1]):
    logits = session.run(None, {"tokens": seq})[0]
    seq = np.concatenate([seq, logits[:, -1].argmax(-1)[:, None]], 1)
want = seq[:, -got.shape[1]:]
if not np.array_equal(got, want):
    sys.exit(f"generated.npy differs:\n{got}\nfull forward:\n{want}")
print("generated.npy equals greedy decoding with the full forward: "
      f"{got.shape[0]} x {got.shape[1]} tokens")
