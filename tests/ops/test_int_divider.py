"""cuda_ext/int_divider.h on the host: the multiply-high quotient the 32-bit kernels use
equals plain division over the whole range it is used for (numerators in [0, 2^31),
divisors in [1, 2^31)), edges included, which the op tests' small tensors cannot reach."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = r"""
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>
#include "int_divider.h"

int main() {
  std::mt19937_64 rng(0);
  std::vector<int32_t> divisors = {1, 2, 3, 5, 7, 10, 56, 112, 641, 1 << 16, (1 << 16) + 1, 46341,
                                   (1 << 30) - 1, 1 << 30, (1 << 30) + 1, 2147483646, 2147483647};
  for (int i = 0; i < 2000; ++i) divisors.push_back(1 + static_cast<int32_t>(rng() % 2147483647u));
  for (int i = 0; i < 2000; ++i) divisors.push_back(1 + static_cast<int32_t>(rng() % 4096u));
  long long checked = 0;
  for (int32_t d : divisors) {
    const softpool::FastDivider div(d);
    std::vector<int64_t> ns = {0, 1, d - 1, d, int64_t{d} + 1, 2 * int64_t{d} - 1, 2 * int64_t{d},
                               2147483647, 2147483646, 2147483647 - d, 2147483647 / d * d, 2147483647 / d * d - 1};
    for (int i = 0; i < 500; ++i) ns.push_back(static_cast<int64_t>(rng() % 2147483648u));
    for (int64_t n64 : ns) {
      if (n64 < 0 || n64 > 2147483647) continue;
      const int32_t n = static_cast<int32_t>(n64);
      if (div.div(n) != n / d || div.value() != d) {
        std::printf("wrong: %d / %d gave %d\n", n, d, div.div(n));
        return 1;
      }
      ++checked;
    }
  }
  std::printf("%lld quotients\n", checked);
  return 0;
}
"""


def test_fast_divider_matches_plain_division(tmp_path):
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler on PATH")
    (tmp_path / "check.cpp").write_text(PROGRAM)
    build = subprocess.run([compiler, "-std=c++17", "-O2", f"-I{ROOT / 'cuda_ext'}", "check.cpp", "-o", "check"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(tmp_path / "check")], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout
    assert int(run.stdout.split()[0]) > 4000 * 500
