#!/usr/bin/env bash
# Round 18 on the GPU machine. From the repository root, with OUT set;
# CUDA_XZ and WGPU_XZ name the packed CUDA and WGPU test executables built
# here (each with its COMMIT beside it), OLD_XZ CUDA executables to compare
# with; the WGPU steps need the Vulkan loader's Debian packages in .gl/ (see
# scripts/h200_wgpu.sh).
#   STEP=cuda  the f16-activation GEMV check (f32 scales read as they are)
#              and the m <= 8 check; with COPY=1 the same-size copy and read
#              timed like the GEMV (ncu, L2 flushed) and with CUDA events
#              (scripts/ncu_copy.py); the tensor-core GEMV's device time and
#              instruction count at the issue's shapes (ncu_gemv.py), one-
#              and two-launch forms; the SASS of the one-launch kernel at
#              m = 1, 8192² (scripts/cubecl_sass.py); then the one-launch form
#              of each executable in OLD_XZ (space-separated) in the same run
#   STEP=verify the m <= 8 and f16 GEMV checks with more time (NVRTC
#              compiles every launch shape the first time), m = 1 device
#              times of CUDA_XZ, OLD_XZ, CUDA_XZ again, and the CUDA GEMV
#              table (stream times, f16 column)
#   STEP=launch one launch shape (SHAPE) closely: ptxas registers, spills
#              and opcode counts of CUDA_XZ's and OLD_XZ's one-launch
#              kernels, and CUDA_XZ under the launch knobs in TUNES
#   STEP=floor the fastest read of the same bytes (scripts/read_floor.py:
#              read-only kernels of several shapes and PyTorch's copy, ncu),
#              then m = 1 device times of CUDA_XZ twice (ncu_gemv.py)
#   STEP=rest  the CUDA GEMV table (stream times, f16 column); on WGPU the
#              f16 GEMV check and the plane GEMV's plane counts with
#              BURN_TERNARY_SM_COUNT=132 (the built-in choice against 2, 4, 8)
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200_step.sh
source scripts/h200_step.sh
shapes="1 8192 8192,8 8192 8192,1 4096 14336,8 4096 14336,1 14336 4096,8 14336 4096"
# Each unpack's machine and commit line, in one file.
unpack() {
  BIN_XZ=$1; export BIN_XZ; source scripts/gpu_bin.sh
  cat "$OUT/gpu.txt" >> "$OUT/gpus.txt"; rm "$OUT/gpu.txt"
}
unpack "${CUDA_XZ:?}"
case ${STEP:-cuda} in
  cuda)
    timeout "$(left 150)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_f16_gemv \
      matmul_forward_small_m > "$OUT/cuda_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_checks.txt"
    if [ -n "${COPY:-}" ]; then
      PYTHONUNBUFFERED=1 timeout "$(left 100)" python3 scripts/ncu_copy.py > "$OUT/copy_times.txt" 2>&1
      cat "$OUT/copy_times.txt"
    fi
    NCU_PATHS="mma prepass" NCU_SHAPES="$shapes" timeout "$(left 150)" python3 scripts/ncu_gemv.py \
      .gpu/cube_kernels > "$OUT/gemv_times.txt" 2>&1
    grep -E "^\| [18] |copy|failed|rror" "$OUT/gemv_times.txt"
    # The one-launch kernel's SASS at m = 1, 8192² (opcode counts in sass.txt).
    GEMV_ONLY="1 8192 8192" CUBECL_DEBUG_LOG=/tmp/cubecl.log timeout "$(left 60)" .gpu/cube_kernels \
      --ignored gemv_device_profile --exact --nocapture --test-threads=1 > /dev/null 2>&1
    timeout "$(left 60)" python3 scripts/cubecl_sass.py /tmp/cubecl.log gemv_mma /tmp/sass > "$OUT/sass.txt" 2>&1
    grep -E "registers|opcodes" "$OUT/sass.txt"
    tar -C /tmp/sass -cJf "$OUT/sass.tar.xz" .
    # Earlier executables' one-launch form, same shapes, same run.
    i=0
    for old in ${OLD_XZ:-}; do
      i=$((i + 1))
      unpack "$old"
      NCU_PATHS="mma" NCU_SHAPES="$shapes" timeout "$(left 100)" python3 scripts/ncu_gemv.py \
        .gpu/cube_kernels > "$OUT/gemv_times_old$i.txt" 2>&1
      grep -E "^\| [18] |failed|rror" "$OUT/gemv_times_old$i.txt"
    done
    ;;
  verify)
    timeout "$(left 300)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_forward_small_m \
      matmul_f16_gemv > "$OUT/cuda_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_checks.txt"
    # m = 1 device times again, new and old executables alternating.
    for bin in "$CUDA_XZ" ${OLD_XZ:-} "$CUDA_XZ"; do
      unpack "$bin"
      m1_times gemv_m1_repeat.txt
    done
    cat "$OUT/gemv_m1_repeat.txt"
    unpack "$CUDA_XZ"
    timeout "$(left 150)" .gpu/cube_kernels --ignored gemv_benchmarks --nocapture --test-threads=1 \
      > "$OUT/cuda_gemv_benchmarks.txt" 2>&1
    grep "|" "$OUT/cuda_gemv_benchmarks.txt"
    ;;
  floor)
    PYTHONUNBUFFERED=1 timeout "$(left 200)" python3 scripts/read_floor.py > "$OUT/read_floor.txt" 2>&1
    cat "$OUT/read_floor.txt"
    for _ in 1 2; do
      m1_times gemv_m1_repeat.txt
    done
    cat "$OUT/gemv_m1_repeat.txt"
    ;;
  launch)
    # One launch shape (SHAPE, default 14336 x 4096 at m = 1) looked at
    # closely: registers, spills and opcode counts of its one-launch kernel
    # for CUDA_XZ and each OLD_XZ, then CUDA_XZ's device time under the
    # launch knobs in TUNES (NCU_TUNES format of ncu_gemv.py).
    shape=${SHAPE:-"1 14336 4096"}
    for bin in "$CUDA_XZ" ${OLD_XZ:-}; do
      unpack "$bin"
      rm -rf /tmp/cubecl.log /tmp/sass
      GEMV_ONLY="$shape" CUBECL_DEBUG_LOG=/tmp/cubecl.log timeout "$(left 60)" .gpu/cube_kernels \
        --ignored gemv_device_profile --exact --nocapture --test-threads=1 > /dev/null 2>&1
      timeout "$(left 60)" python3 scripts/cubecl_sass.py /tmp/cubecl.log gemv_mma /tmp/sass > /dev/null 2>&1
      { echo "== $bin"; grep -E "^== |Used|spill|^opcodes" /tmp/sass/ptxas.txt; } >> "$OUT/launch_sass.txt"
    done
    cat "$OUT/launch_sass.txt"
    unpack "$CUDA_XZ"
    NCU_PATHS=mma NCU_SHAPES="$shape" NCU_TUNES="${TUNES:-0 0 0 0,0 0 1 0,0 0 3 0,0 0 0 8,4 0 1 0}" \
      timeout "$(left 150)" python3 scripts/ncu_gemv.py .gpu/cube_kernels > "$OUT/launch_tunes.txt" 2>&1
    grep -E "^\| [18] |rror" "$OUT/launch_tunes.txt"
    ;;
  rest)
    timeout "$(left 150)" .gpu/cube_kernels --ignored gemv_benchmarks --nocapture --test-threads=1 \
      > "$OUT/cuda_gemv_benchmarks.txt" 2>&1
    grep "|" "$OUT/cuda_gemv_benchmarks.txt"
    # shellcheck source=scripts/gpu_vulkan.sh
    source scripts/gpu_vulkan.sh
    unpack "${WGPU_XZ:?}"
    timeout "$(left 100)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_f16_gemv \
      > "$OUT/wgpu_checks.txt" 2>&1
    grep -E "$summary" "$OUT/wgpu_checks.txt"
    BURN_TERNARY_SM_COUNT=132 PLANE_TUNES="0 0 0 0,0 0 0 2,0 0 0 4,0 0 0 8" timeout "$(left 200)" \
      .gpu/cube_kernels --ignored plane_gemv_tuning --nocapture --test-threads=1 \
      > "$OUT/wgpu_plane_tuning_sm132.txt" 2>&1
    grep "|" "$OUT/wgpu_plane_tuning_sm132.txt"
    ;;
  *) echo "STEP must be cuda, verify, floor, launch or rest" >&2; exit 2 ;;
esac
