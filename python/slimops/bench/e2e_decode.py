"""Prefill then greedy decode with a static cache, the decode step replayed
from a CUDA graph: the harness `slimops bench e2e` runs every variant in,
baseline included.

What runs where and why:
- The prefill runs eagerly on both sides. transformers' sdpa mask for a
  StaticCache compares the cache offset (a device tensor) with 0 in Python
  during a prefill, a device sync that graph capture forbids; a prompt of 512
  tokens is compute-bound, so the launch overhead a graph would remove is
  small, and it is the same code on both sides.
- One decode step (forward of the last token, argmax, write the token, advance
  the position) is captured once into a CUDA graph after warm-up, and the
  decode loop is nothing but replays: no Python, no launch overhead, on both
  sides. Everything a step reads that changes between steps (the input token,
  its position, the cache lengths) lives in device tensors that the graph
  itself updates.
- On CPU there are no graphs: the same step runs eagerly.
"""

from __future__ import annotations

import statistics
import time

import torch


class GreedyDecoder:
    """Greedy generation of ``new`` tokens after a ``prompt`` ([B, P] token ids)
    for one model and its preallocated cache (room for P + new positions)."""

    def __init__(self, model, cache, prompt: torch.Tensor, new: int, use_graph: bool):
        self.model, self.cache, self.prompt, self.new = model, cache, prompt, new
        B, P = prompt.shape
        dev = prompt.device
        self.prompt_positions = torch.arange(P, device=dev).unsqueeze(0)
        # The graph's inputs and outputs, updated in place by the step itself.
        self.ids = torch.zeros(B, 1, dtype=torch.long, device=dev)  # the last generated token
        self.pos = torch.zeros(1, dtype=torch.long, device=dev)  # its position
        self.tokens = torch.zeros(B, new + 1, dtype=torch.long, device=dev)  # column 0 from the prefill
        self.use_graph = use_graph
        self.graph = None
        self.prefill_logits = None  # [B, vocab] of the last prefill

    def _logits(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids, position_ids=positions, past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1]

    @torch.no_grad()
    def prefill(self) -> None:
        """Empties the cache and runs the prompt; the first new token goes to ``ids``."""
        self.cache.reset()
        self.prefill_logits = self._logits(self.prompt, self.prompt_positions)
        nxt = self.prefill_logits.argmax(-1, keepdim=True)
        self.ids.copy_(nxt)
        self.tokens[:, :1].copy_(nxt)
        self.pos.fill_(self.prompt.shape[1])

    @torch.no_grad()
    def _step(self) -> None:
        nxt = self._logits(self.ids, self.pos.view(1, 1)).argmax(-1, keepdim=True)
        self.tokens.index_copy_(1, self.pos - (self.prompt.shape[1] - 1), nxt)
        self.ids.copy_(nxt)
        self.pos.add_(1)

    def capture(self, warmup: int = 3) -> None:
        """Warms the step up on a side stream (lazy allocations, library
        handles, heuristics), then records it into a CUDA graph. Capturing
        runs no kernel, so the state after it is the prefill's."""
        if warmup >= self.new:
            raise ValueError(f"need more than {warmup} new tokens to warm the decode step up")
        self.prefill()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.prefill()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._step()

    def decode(self) -> None:
        """The ``new`` decode steps after a prefill."""
        for _ in range(self.new):
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step()

    def generate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, new + 1] greedy tokens (the prefill's and the decode steps'), and
        the prefill's next-token logits [B, vocab] in float32."""
        self.prefill()
        self.decode()
        return self.tokens.clone(), self.prefill_logits.float()

    def time(self, reps: int) -> dict:
        """Median prefill ms and decode ms per step over ``reps`` generations."""
        cuda = self.prompt.device.type == "cuda"
        if cuda and self.use_graph:
            if self.graph is None:
                self.capture()
        else:  # the same warm-up as capture()'s, eagerly
            self.prefill()
            for _ in range(min(3, self.new)):
                self._step()
        prefill_ms, decode_ms = [], []
        for _ in range(reps):
            self.cache.reset()
            prefill_ms.append(_timed(self.prefill, cuda))
            decode_ms.append(_timed(self.decode, cuda) / self.new)
        return {"prefill_ms": statistics.median(prefill_ms), "decode_ms_per_step": statistics.median(decode_ms)}


def _timed(fn, cuda: bool) -> float:
    """Milliseconds of fn(): CUDA events around it on the GPU, wall clock on CPU."""
    if not cuda:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def profile_decode(decoder: GreedyDecoder, steps: int = 8, top: int = 15) -> list[dict]:
    """Where a decode step's GPU (or CPU) time goes: ``steps`` eager steps after
    a prefill under torch.profiler, ops by self device time per step."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = decoder.prompt.device.type == "cuda"
    steps = min(steps, decoder.new)
    decoder.prefill()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            decoder._step()
        if cuda:
            torch.cuda.synchronize()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    # Host-side op events only: on CUDA an op's self device time is the time of
    # the kernels it launched itself, so these add up to the step's kernel
    # time once (the kernels' own entries would count it twice).
    events = [e for e in prof.key_averages() if e.device_type == DeviceType.CPU and getattr(e, key) > 0]
    total = sum(getattr(e, key) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, key), reverse=True)
    return [
        {"op": e.key, "ms_per_step": getattr(e, key) / 1e3 / steps, "share": getattr(e, key) / total, "calls_per_step": e.count / steps}
        for e in events[:top]
    ]
