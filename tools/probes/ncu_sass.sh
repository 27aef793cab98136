#!/usr/bin/env bash
# Per-instruction stall samples of one wo_gemm kernel (SASS), for finding
# what a warp waits on. Usage: ncu_sass.sh NAME KERNEL_REGEX K N M [bits]
# (the path env vars as in the library). Writes $OUT/NAME.csv and the
# kernel's SASS ($OUT/NAME.sass), prints the hottest instructions.
set -uo pipefail
name=$1 kernel=$2 k=$3 n=$4 m=$5 bits=${6:-4}
OUT=${OUT:-/tmp/slimops_out}
ncu --clock-control none -k "regex:$kernel" --launch-skip 2 --launch-count 1 --section SourceCounters \
  --section WarpStateStats --import-source no -f -o "/tmp/$name" \
  python3 tools/probes/wo_gemm_one.py "$k" "$n" "$m" "$bits" 5 > "$OUT/$name.ncu.log" 2>&1
ncu -i "/tmp/$name.ncu-rep" --page source --csv --print-source sass > "$OUT/$name.csv" 2>&1
python3 - "$OUT/$name.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
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
