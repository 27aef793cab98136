#!/usr/bin/env bash
# Per-instruction stall samples of one wo_gemm kernel (SASS), for finding
# what a warp waits on. Usage: ncu_sass.sh NAME KERNEL_REGEX K N M [bits]
# (the path env vars as in the library). PROBE=sparse24 profiles the 2:4
# matmul instead (bits 4: int4 + 2:4, else bf16 2:4; tools/probes/sparse24_one.py). Writes $OUT/NAME.csv and the
# kernel's SASS ($OUT/NAME.sass), prints the hottest instructions.
set -uo pipefail
name=$1 kernel=$2 k=$3 n=$4 m=$5 bits=${6:-4}
OUT=${OUT:-/tmp/slimops_out}
probe="python3 tools/probes/wo_gemm_one.py $k $n $m $bits 5"
if [ "${PROBE:-wo_gemm}" = sparse24 ]; then
  probe="python3 tools/probes/sparse24_one.py $k $n $m 5 $([ "$bits" = 4 ] && echo int4)"
fi
ncu --clock-control none -k "regex:$kernel" --launch-skip 2 --launch-count 1 --section SourceCounters \
  --section WarpStateStats --import-source no -f -o "/tmp/$name" \
  $probe > "$OUT/$name.ncu.log" 2>&1
ncu -i "/tmp/$name.ncu-rep" --page source --csv --print-source sass > "$OUT/$name.csv" 2>&1
python3 - "$OUT/$name.csv" <<'PY'
import csv, sys
lines = open(sys.argv[1]).read().splitlines()
# Newer ncu prints a "Kernel Name" line before the header.
start = next((i for i, l in enumerate(lines) if l.startswith('"Address"')), 0)
rows = list(csv.DictReader(lines[start:]))
if not rows:
    print(open(sys.argv[1]).read()[:2000]); sys.exit()
cols = list(rows[0].keys())
samp = next(c for c in cols if c.startswith("Warp Stall Sampling (All"))
num = lambda v: float(v.replace(",", "") or 0)
total = sum(num(r[samp]) for r in rows)
print(f"{len(rows)} SASS lines, {total:.0f} samples; columns: {cols[:12]}")
for r in sorted(rows, key=lambda r: -num(r[samp]))[:45]:
    print(f"{num(r[samp]) / total * 100:5.1f}% {r.get('Address', '')} {r['Source'][:90]}")
PY
