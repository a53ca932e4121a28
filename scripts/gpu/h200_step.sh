# Sourced by GPU-machine runners for bounded steps: usage: OUT=<dir> source scripts/gpu/h200_step.sh, then left N, m1_times FILE [VAR=value ...], run_check FILE SECONDS "TEST ..." [VAR=value ...], unpack_cuda_xz
# `left N`: the seconds for the next step (N, or what is left before END, default
# 560, if less), so that a call's steps end inside the device tool's limit.
# `m1_times`: the tensor-core GEMV's m = 1 device times at 8192², 4096 × 14336 and
# 14336 × 4096 (scripts/profile/ncu_gemv.py on .gpu/cube_kernels), appended to $OUT/FILE.
# `run_check`: the named checks of .gpu/cube_kernels (all for ""), CHECK_THREADS at
# a time (default 1), output and exit status in $OUT/FILE, summary lines printed.
# `unpack_cuda_xz`: unpacks $CUDA_XZ through scripts/gpu/gpu_bin.sh.
: "${OUT:?set OUT to the output folder}"
summary="cases passed|cases failed|differ|test result|panicked"
END=${END:-560}
left() { local t=$((END - SECONDS)); [ "$t" -lt "$1" ] && echo "$t" || echo "$1"; }
m1_times() {
  local file=$OUT/$1
  shift
  echo "== ${*:-defaults}" >> "$file"
  env "$@" NCU_PATHS=mma NCU_SHAPES="1 8192 8192,1 4096 14336,1 14336 4096" timeout "$(left 60)" \
    python3 scripts/profile/ncu_gemv.py .gpu/cube_kernels 2>&1 | grep -E "^\| 1 |copy|rror|ailed" >> "$file"
}
run_check() {
  local file=$OUT/$1 limit=$2 tests=$3
  shift 3
  # shellcheck disable=SC2086 # the test names are separate arguments
  env "$@" timeout "$(left "$limit")" .gpu/cube_kernels --test-threads="${CHECK_THREADS:-1}" \
    --nocapture $tests > "$file" 2>&1
  echo "checks rc=$?" >> "$file"
  grep -E "$summary|checks rc" "$file" | head -20
}
unpack_cuda_xz() {
  BIN_XZ=${CUDA_XZ:?set CUDA_XZ to the packed test executable}
  export BIN_XZ
  # shellcheck source=scripts/gpu/gpu_bin.sh
  source scripts/gpu/gpu_bin.sh
}
