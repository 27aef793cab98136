// The pybind11 module slimops._C. Loading it registers the ops (the
// TORCH_LIBRARY blocks in csrc/torch run as the library loads); the module
// itself only answers questions about the build and the CPU path. It includes
// no torch header, so it builds fast and never depends on torch's pybind11.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "cpu/cpu_features.h"

namespace py = pybind11;
using slimops::cpu::CpuIsa;

namespace {

CpuIsa parse_or_throw(const std::string& name) {
  CpuIsa isa;
  if (!slimops::cpu::parse_cpu_isa(name.c_str(), &isa))
    throw py::value_error("slimops: unknown CPU ISA '" + name + "'; expected 'scalar', 'avx2', 'avx_vnni' or 'avx512_vnni'");
  return isa;
}

void set_cpu_isa(const std::string& name) {
  const CpuIsa isa = parse_or_throw(name);
  if (slimops::cpu::set_cpu_isa(isa) != slimops::Status::kOk)
    throw py::value_error("slimops: this CPU cannot run the '" + name + "' path");
}

std::vector<std::string> available_cpu_isas() {
  std::vector<std::string> out;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvxVnni, CpuIsa::kAvx512Vnni})
    if (slimops::cpu::cpu_supports(isa)) out.emplace_back(slimops::cpu::cpu_isa_name(isa));
  return out;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "slimops native extension: loading it registers torch.ops.slimops.*";
  m.def("build_info", [] {
    py::dict d;
    d["version"] = SLIMOPS_VERSION;
    d["torch_version"] = SLIMOPS_TORCH_VERSION;
    d["cuda"] = bool(SLIMOPS_WITH_CUDA);
    d["cuda_archs"] = SLIMOPS_CUDA_ARCHS;
    d["cuda_version"] = SLIMOPS_CUDA_VERSION;
    return d;
  });
  m.def("available_cpu_isas", &available_cpu_isas, "CPU instruction sets this machine can run");
  m.def("selected_cpu_isa", [] { return std::string(slimops::cpu::cpu_isa_name(slimops::cpu::selected_cpu_isa())); },
        "the CPU instruction set the kernels use now");
  m.def("reset_cpu_isa", &slimops::cpu::reset_cpu_isa, "back to the automatic choice of CPU path");
  m.def("cpu_isa_forced", &slimops::cpu::cpu_isa_forced, "whether a CPU path is forced");
  m.def("cpu_has_avx512_bf16", &slimops::cpu::cpu_has_avx512_bf16,
        "whether the AVX-512 BF16 kernels (vdpbf16ps) are built and this CPU runs them");
  m.def("set_cpu_isa", &set_cpu_isa, py::arg("name"), "force a CPU path: 'scalar', 'avx2', 'avx_vnni' or 'avx512_vnni'");

  // SLIMOPS_CPU_ISA forces a path for the whole process; a bad value fails
  // the import loudly rather than silently running another path.
  if (const char* forced = std::getenv("SLIMOPS_CPU_ISA"); forced && *forced) set_cpu_isa(forced);
}
