#!/usr/bin/env bash
# Round 17 on the GPU machine: the plane GEMV (the FMA GEMV that WGPU runs
# at m <= 8, and CUDA with the tensor-core GEMV off). From the repository
# root, with OUT set; CUDA_XZ and WGPU_XZ name the packed CUDA and WGPU test
# executables built here (each with its COMMIT beside it). The WGPU steps
# need the Vulkan loader's Debian packages in .gl/ (see scripts/h200_wgpu.sh).
#   STEP=profile  ncu --set full of the first plane kernel at m = 1 and
#                 m = 8, 8192² (details page, SASS source page; CUDA_XZ)
#   STEP=plane    the plane GEMV checked on CUDA (GEMV_PATH=plane) and on
#                 WGPU, its device times at the issue's six shapes (ncu, L2
#                 flushed), its launch knobs swept on both (PLANE_TUNES), and
#                 the WGPU GEMV table
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
summary="cases passed|cases failed|differ|test result|panicked"
shapes="1 8192 8192,8 8192 8192,1 4096 14336,8 4096 14336,1 14336 4096,8 14336 4096"
# (The first run of this step swept "0 0 0 0,2 16 0 0,4 8 0 0,4 32 0 0,1 16 0 0,0 0 2 0,0 0 8 0,0 0 0 4,0 0 0 16";
# each new knob set is a new kernel to compile, so keep the list short.)
tunes=${PLANE_TUNES:-"0 0 0 0,0 0 0 2,0 0 0 8"}
END=${END:-560}
# Seconds for the next step: N, or what is left before END if less.
left() { local t=$((END - SECONDS)); [ "$t" -lt "$1" ] && echo "$t" || echo "$1"; }
unpack() { BIN_XZ=$1; export BIN_XZ; source scripts/gpu_bin.sh; }
case ${STEP:-plane} in
  profile)
    unpack "${CUDA_XZ:?}"
    for m in 1 8; do
      rep=/tmp/plane_$m
      GEMV_PATH=plane GEMV_ONLY="$m 8192 8192" ncu --set full -k regex:gemv_plane -c 1 -f -o "$rep" \
        .gpu/cube_kernels --ignored gemv_device_profile --exact --nocapture --test-threads=1 \
        >> "$OUT/profile_log.txt" 2>&1
      ncu -i "$rep.ncu-rep" --page details > "$OUT/details_$m.txt" 2>&1
      ncu -i "$rep.ncu-rep" --page source --csv --print-source sass > "/tmp/sass_$m.csv" 2>&1
      xz -c "/tmp/sass_$m.csv" > "$OUT/sass_$m.csv.xz"
      grep -E "Duration|Registers Per|Achieved Occupancy|Executed Ipc A|Local Memory|Issue Slots Busy" \
        "$OUT/details_$m.txt"
    done
    ;;
  plane)
    unpack "${CUDA_XZ:?}"
    cp "$OUT/gpu.txt" "$OUT/gpu_cuda.txt"
    GEMV_PATH=plane timeout "$(left 120)" .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_forward_small_m > "$OUT/cuda_plane_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_plane_checks.txt"
    NCU_PATHS=plane NCU_SHAPES="$shapes" timeout "$(left 150)" python3 scripts/ncu_gemv.py .gpu/cube_kernels \
      > "$OUT/cuda_plane_times.txt" 2>&1
    grep -E "^\| [18] |copy|failed|rror" "$OUT/cuda_plane_times.txt"
    PLANE_TUNES="$tunes" timeout "$(left 180)" .gpu/cube_kernels --ignored plane_gemv_tuning --nocapture \
      --test-threads=1 > "$OUT/cuda_plane_tuning.txt" 2>&1
    grep "|" "$OUT/cuda_plane_tuning.txt"
    # shellcheck source=scripts/gpu_vulkan.sh
    source scripts/gpu_vulkan.sh
    unpack "${WGPU_XZ:?}"
    timeout "$(left 120)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_forward_small_m \
      matmul_forward_gemv > "$OUT/wgpu_plane_checks.txt" 2>&1
    grep -E "$summary" "$OUT/wgpu_plane_checks.txt"
    PLANE_TUNES="$tunes" timeout "$(left 180)" .gpu/cube_kernels --ignored plane_gemv_tuning --nocapture \
      --test-threads=1 > "$OUT/wgpu_plane_tuning.txt" 2>&1
    grep "|" "$OUT/wgpu_plane_tuning.txt"
    timeout "$(left 100)" .gpu/cube_kernels --ignored gemv_benchmarks --nocapture --test-threads=1 \
      > "$OUT/wgpu_gemv_benchmarks.txt" 2>&1
    grep "|" "$OUT/wgpu_gemv_benchmarks.txt"
    ;;
  *) echo "STEP must be profile or plane" >&2; exit 2 ;;
esac
