#!/usr/bin/env python3
"""Flags SASS instructions that read a uniform register (URn) which no
instruction of the same kernel writes: the signature of the ptxas 13.0
miscompile behind session 12's illegal instruction (LDGSTS through
desc[UR1] with UR0/UR1 never set; bench/NOTES.md). Input: `cuobjdump -sass`
output (cuobjdump and nvdisasm come in pip's nvidia-cuda-cuobjdump and
nvidia-cuda-nvdisasm wheels). tools/check_cuda_compile.sh runs it on every
kernel. Usage: sass_undefined_ur.py FILE.sass [...]; exit 1 when anything
is flagged."""
import re
import sys

INSN = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")
UR = re.compile(r"\bUR(\d+)\b")


def kernels(lines):
    name, body = None, []
    for line in lines:
        if "Function :" in line:
            if name:
                yield name, body
            name, body = line.split("Function :")[1].strip(), []
        elif name:
            m = INSN.search(line)
            if m:
                body.append((m.group(1), m.group(3), m.group(4)))
    if name:
        yield name, body


def undefined_reads(body):
    written = {"255"}  # URZ prints as URZ; keep 255 harmless
    for _, op, args in body:
        first = args.split(",")[0].strip()
        m = re.fullmatch(r"UR(\d+)", first)
        # A bare URn first operand is a destination (ULDC, S2UR, R2UR, VOTEU,
        # REDUX, ...); memory operands are bracketed. Erring towards "written"
        # can only hide a hit, never invent one.
        if m:
            written.add(m.group(1))
            width = 4 if ".128" in op else 2 if (".64" in op or ".WIDE" in op) else 1
            written.update(str(int(m.group(1)) + i) for i in range(width))
    for addr, op, args in body:
        missing = [r for r in UR.findall(args) if r not in written]
        if missing:
            yield addr, op, args, missing


def main():
    bad = total = 0
    for path in sys.argv[1:]:
        with open(path) as f:
            for name, body in kernels(f):
                total += 1
                hits = list(undefined_reads(body))
                if hits:
                    bad += 1
                    print(f"{path}: {name}: {len(hits)} reads of unwritten uniform registers, first at "
                          f"{hits[0][0]}: {hits[0][1]} {hits[0][2]}")
    print(f"sass_undefined_ur: {bad} of {total} kernel(s) flagged")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
