#!/usr/bin/env bash
# One device-tool session on the GPU box, in one call (device time is
# scarce): build, CUDA tests, compute-sanitizer, benchmarks. Logs and tables
# go under $OUT. Usage: bash tools/h100_session.sh [build] [test] [test-all] [sanitize] [sanitize-new] [bench]
# [bench-attn] [bench-sparse] [bench-paths] [wgmma-sweep] [s24-wgmma] [s24-sweep] [e2e] [lr-corr] [lowrank] [flush-probe] [compress-gpu]
# [cold-stream] [stage-probe]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/slimops_out}
mkdir -p "$OUT"
steps=${*:-build test sanitize bench}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv > "$OUT/gpu.txt" 2>&1
for step in $steps; do
  echo "== $step $(date +%T)"
  case $step in
    build)
      python3 -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
      python3 -m slimops.cli info ;;
    test)
      python3 -m pytest -q -p no:cacheprovider tests -k "cuda or opcheck" > "$OUT/pytest_cuda.log" 2>&1
      tail -3 "$OUT/pytest_cuda.log"
      grep -E "^(FAILED|ERROR)" "$OUT/pytest_cuda.log" | head -20 ;;
    test-all)
      # The whole suite (CPU tests too), as CI runs it but with the GPU present.
      python3 -m pytest -q -p no:cacheprovider tests > "$OUT/pytest_all.log" 2>&1
      tail -3 "$OUT/pytest_all.log"
      grep -E "^(FAILED|ERROR)" "$OUT/pytest_all.log" | head -20 ;;
    sanitize)
      # A subset: memcheck runs kernels 10-100x slower.
      timeout "${SANITIZE_TIMEOUT:-170}" compute-sanitizer --tool memcheck --error-exitcode 1 python3 -m pytest -q \
        -p no:cacheprovider tests/test_wo_gemm.py -k "${SANITIZE_K:-cuda and (tensor_core or batched or (wgmma and not 1000))}" \
        > "$OUT/memcheck.log" 2>&1
      echo "memcheck exit $?"; grep -E "ERROR SUMMARY|passed|failed" "$OUT/memcheck.log" | tail -3
      grep -c "Invalid\|Error" "$OUT/memcheck.log" ;;
    bench)
      for bits in 4 8; do
        python3 -m slimops.cli bench gemm --device cuda --bits $bits --json "$OUT/gemm_int${bits}_cuda_h100.json" \
          --markdown "$OUT/gemm_int${bits}_cuda_h100.md" > "$OUT/bench_int${bits}.log" 2>&1
        tail -48 "$OUT/bench_int${bits}.log" | grep -E "^\|" | cut -d'|' -f2-3,5-
      done ;;
    sanitize-new)
      # The kv_attention and sparse24 CUDA tests: memcheck on a subset, and
      # racecheck on the attention kernels (shared-memory pipelines).
      timeout "${SANITIZE_TIMEOUT:-200}" compute-sanitizer --tool memcheck --error-exitcode 1 python3 -m pytest -q \
        -p no:cacheprovider tests/test_kv_attention.py tests/test_sparse24.py -k "cuda and not opcheck and ${SANITIZE_NEW_K:-not 64-}" \
        > "$OUT/memcheck_new.log" 2>&1
      echo "memcheck exit $?"; grep -E "ERROR SUMMARY|passed|failed" "$OUT/memcheck_new.log" | tail -3
      timeout "${RACECHECK_TIMEOUT:-120}" compute-sanitizer --tool racecheck --error-exitcode 1 python3 -m pytest -q \
        -p no:cacheprovider tests/test_kv_attention.py -k "cuda and (ragged or long_context or heads_and_masking)" \
        > "$OUT/racecheck_kv.log" 2>&1
      echo "racecheck exit $?"; grep -E "RACECHECK SUMMARY|passed|failed" "$OUT/racecheck_kv.log" | tail -3 ;;
    bench-attn)
      python3 -m slimops.cli bench attention --device cuda --json "$OUT/attention_cuda_h100.json" \
        --markdown "$OUT/attention_cuda_h100.md" > "$OUT/bench_attention.log" 2>&1
      grep -E "^\|" "$OUT/bench_attention.log" | tail -30 ;;
    bench-sparse)
      python3 -m slimops.cli bench sparse24 --device cuda --json "$OUT/sparse24_cuda_h100.json" \
        --markdown "$OUT/sparse24_cuda_h100.md" > "$OUT/bench_sparse24.log" 2>&1
      grep -E "^\|" "$OUT/bench_sparse24.log" | tail -50 ;;
    e2e)
      # Whole-model decode (issue 9): its tests, then E2E_ARGS (default: the full Llama-3-8B run).
      python3 -m pytest -q -p no:cacheprovider tests/test_bench_e2e.py tests/test_fuse_projections.py \
        tests/test_transformers_integration.py tests/test_sparse24.py -k "${E2E_TESTS_K:-cuda or e2e or fuse}" \
        > "$OUT/pytest_e2e.log" 2>&1
      tail -3 "$OUT/pytest_e2e.log"; grep -E "^(FAILED|ERROR)" "$OUT/pytest_e2e.log" | head
      plot=""; python3 -c "import matplotlib" 2>/dev/null && plot="--plot $OUT/e2e_h100.png"
      timeout "${E2E_TIMEOUT:-400}" python3 -m slimops.cli bench e2e --device cuda ${E2E_ARGS:---profile} --json "$OUT/e2e_h100.json" \
        --markdown "$OUT/e2e_h100.md" $plot > "$OUT/bench_e2e.log" 2>&1
      echo "e2e exit $?"; grep -E "^\|" "$OUT/bench_e2e.log" | tail -20 ;;
    lr-corr)
      # wo_gemm_lowrank (issue 7): its tests and wo_gemm's, memcheck and
      # racecheck on the fused kernel, then its benchmark and lowrank's.
      python3 -m pytest -q -p no:cacheprovider tests/test_wo_gemm_lowrank.py tests/test_quant_lowrank.py \
        tests/test_wo_gemm.py tests/test_opcheck.py > "$OUT/pytest_lr.log" 2>&1
      tail -3 "$OUT/pytest_lr.log"; grep -E "^(FAILED|ERROR)" "$OUT/pytest_lr.log" | head -20
      for tool in memcheck racecheck; do
        timeout "${SANITIZE_TIMEOUT:-150}" compute-sanitizer --tool $tool --error-exitcode 1 python3 -m pytest -q \
          -p no:cacheprovider tests/test_wo_gemm_lowrank.py -k "cuda_shapes and (1000 or 384)" > "$OUT/${tool}_lr.log" 2>&1
        echo "$tool exit $?"; grep -E "SUMMARY|passed|failed" "$OUT/${tool}_lr.log" | tail -3
      done
      for family in int4-lr lowrank; do
        python3 -m slimops.cli bench $family --device cuda --json "$OUT/${family}_cuda_h100.json" \
          --markdown "$OUT/${family}_cuda_h100.md" > "$OUT/bench_${family}.log" 2>&1
        grep -E "^\|" "$OUT/bench_${family}.log" | tail -12
      done ;;
    lowrank)
      # lowrank_linear (issue 7): its CUDA tests, memcheck and racecheck on the
      # small-M kernels, the timing tool per path, then the bench family.
      timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_lowrank_cuda.py tests/test_lowrank_linear.py \
        > "$OUT/pytest_lowrank.log" 2>&1
      tail -3 "$OUT/pytest_lowrank.log"; grep -E "^(FAILED|ERROR)" "$OUT/pytest_lowrank.log" | head -20
      for tool in memcheck racecheck; do
        timeout "${SANITIZE_TIMEOUT:-150}" compute-sanitizer --tool $tool --error-exitcode 1 python3 -m pytest -q \
          -p no:cacheprovider tests/test_lowrank_cuda.py -k "reference and 512-200-48 and fused" \
          > "$OUT/${tool}_lowrank.log" 2>&1
        echo "$tool exit $?"; grep -E "SUMMARY|passed|failed" "$OUT/${tool}_lowrank.log" | tail -3
      done
      for path in ${LOWRANK_PATHS:-fused auto}; do
        timeout 150 python3 tools/time_lowrank_cuda.py --path $path --reps 50 > "$OUT/time_lowrank_$path.md" 2>&1
        cat "$OUT/time_lowrank_$path.md"
      done
      python3 -m slimops.cli bench lowrank --device cuda --json "$OUT/lowrank_cuda_h100.json" \
        --markdown "$OUT/lowrank_cuda_h100.md" > "$OUT/bench_lowrank.log" 2>&1
      grep -E "^\|" "$OUT/bench_lowrank.log" | tail -12 ;;
    flush-probe)
      # The fixed cost of a microsecond timing, after a dirty and a clean flush.
      timeout 200 python3 tools/flush_probe.py > "$OUT/flush_probe.md" 2>&1; cat "$OUT/flush_probe.md" ;;
    compress-gpu)
      # Issue 8 on the GPU: torch.compile(fullgraph=True) of compressed models,
      # then SmolLM2-135M's decode rate per recipe.
      timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_calibrated_compress.py tests/test_quant_linear.py \
        tests/test_save_load.py tests/test_fuse_projections.py -k "compile" > "$OUT/pytest_compile.log" 2>&1
      tail -3 "$OUT/pytest_compile.log"; grep -E "^(FAILED|ERROR)" "$OUT/pytest_compile.log" | head
      timeout 300 python3 tools/gpu_decode_rate.py --json "$OUT/decode_rate_h100.json" > "$OUT/decode_rate_h100.md" 2>&1
      cat "$OUT/decode_rate_h100.md" | grep -v Converting ;;
    s24-wgmma)
      # The Hopper 2:4 kernel: its tests (forced at every M and tile), then
      # memcheck on a subset.
      timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_sparse24.py -k "${S24_K:-cuda}" \
        > "$OUT/pytest_s24.log" 2>&1
      tail -3 "$OUT/pytest_s24.log"; grep -E "^(FAILED|ERROR)" "$OUT/pytest_s24.log" | head -20
      grep -E "^E  " "$OUT/pytest_s24.log" | head -8
      timeout "${SANITIZE_TIMEOUT:-150}" compute-sanitizer --tool memcheck --error-exitcode 1 python3 -m pytest -q \
        -p no:cacheprovider tests/test_sparse24.py -k "wgmma and (None or 64) and not 1030" > "$OUT/memcheck_s24.log" 2>&1
      echo "memcheck exit $?"; grep -E "ERROR SUMMARY|passed|failed" "$OUT/memcheck_s24.log" | tail -3 ;;
    cold-stream)
      # The cold-read floor under the runner's timing (tools/probes/cold_stream.cu).
      nvcc -O3 -gencode arch=compute_90a,code=sm_90a tools/probes/cold_stream.cu -o /tmp/cold_stream \
        && /tmp/cold_stream 30 | tee "$OUT/cold_stream.md" ;;
    stage-probe)
      # What bounds the 2:4 wgmma kernel at M = 64 (tools/probes/tma_stage_probe.cu).
      nvcc -std=c++17 -O3 -Icsrc -gencode arch=compute_90a,code=sm_90a --expt-relaxed-constexpr \
        tools/probes/tma_stage_probe.cu -o /tmp/tma_stage_probe && /tmp/tma_stage_probe 30 all | tee "$OUT/stage_probe.md" ;;
    s24-sweep)
      # Every 2:4 path and wgmma token tile at M = 16..4096 (tools/sparse24_sweep.py).
      # S24_SWEEP_ARGS2, if set, runs a second sweep (other M, other configs).
      timeout "${SWEEP_TIMEOUT:-300}" python3 tools/sparse24_sweep.py --out "$OUT/s24_sweep.md" ${S24_SWEEP_ARGS:-} \
        > "$OUT/s24_sweep.log" 2>&1
      echo "sweep exit $?"; grep -E "^\|" "$OUT/s24_sweep.log" | tail -30; grep -v "^|" "$OUT/s24_sweep.log" | tail -5
      if [ -n "${S24_SWEEP_ARGS2:-}" ]; then
        timeout "${SWEEP_TIMEOUT:-300}" python3 tools/sparse24_sweep.py --out "$OUT/s24_sweep2.md" $S24_SWEEP_ARGS2 \
          > "$OUT/s24_sweep2.log" 2>&1
        echo "sweep2 exit $?"; grep -E "^\|" "$OUT/s24_sweep2.log" | tail -30
      fi ;;
    wgmma-sweep)
      # Every path and wgmma tile at M = 16..4096 (tools/wo_gemm_sweep.py).
      for bits in 4 8; do
        python3 tools/wo_gemm_sweep.py --bits $bits --out "$OUT/wgmma_sweep_int$bits.md" ${SWEEP_ARGS:-} \
          > "$OUT/wgmma_sweep_int$bits.log" 2>&1
        cut -d'|' -f2-3,11- "$OUT/wgmma_sweep_int$bits.log" | tail -30
      done ;;
    bench-paths)
      # Every CUDA path at every M, to set the dispatch thresholds.
      for path in gemv mma dense; do
        SLIMOPS_CUDA_WO_GEMM=$path python3 -m slimops.cli bench gemm --device cuda --bits 4 --reps 20 \
          --shapes 8192x8192,4096x14336 --m 1,4,8,16,32,64,128,256,512 --json "$OUT/paths_int4_$path.json" \
          > "$OUT/paths_int4_$path.log" 2>&1
        echo "-- $path"; grep -E "^\|" "$OUT/paths_int4_$path.log" | cut -d'|' -f2-3,5- | tail -18
      done ;;
  esac
done
