# Sourced by the round scripts (scripts/h200_r18.sh, h200_r19.sh) on the GPU
# machine, from the repository root: the output folder check, the pattern
# that picks a check's summary lines, and `left N`, the seconds for the next
# step (N, or what is left before END, default 560, if less), so that a
# call's steps end inside the device tool's limit; and `m1_times FILE
# [VAR=value ...]`, the tensor-core GEMV's m = 1 device times at the issue's
# three shapes (scripts/ncu_gemv.py, the unpacked .gpu/cube_kernels) under
# the environment given, appended to $OUT/FILE below a line naming it; and
# `run_check FILE SECONDS "TEST ..." [VAR=value ...]`, the named checks of
# .gpu/cube_kernels (all of them for "", CHECK_THREADS at a time, default 1)
# under the environment given, their output and exit status in $OUT/FILE
# and their summary lines printed; and `unpack_cuda_xz`, which unpacks
# $CUDA_XZ (the packed test executable) to .gpu/cube_kernels and records the
# machine (scripts/gpu_bin.sh).
: "${OUT:?set OUT to the output folder}"
summary="cases passed|cases failed|differ|test result|panicked"
END=${END:-560}
left() { local t=$((END - SECONDS)); [ "$t" -lt "$1" ] && echo "$t" || echo "$1"; }
m1_times() {
  local file=$OUT/$1
  shift
  echo "== ${*:-defaults}" >> "$file"
  env "$@" NCU_PATHS=mma NCU_SHAPES="1 8192 8192,1 4096 14336,1 14336 4096" timeout "$(left 60)" \
    python3 scripts/ncu_gemv.py .gpu/cube_kernels 2>&1 | grep -E "^\| 1 |copy|rror|ailed" >> "$file"
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
  # shellcheck source=scripts/gpu_bin.sh
  source scripts/gpu_bin.sh
}
