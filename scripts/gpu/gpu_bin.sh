# Sourced by the scripts/gpu/ runners on the GPU machine: unpacks $BIN_XZ (the xz-packed test executable) to .gpu/cube_kernels; usage: BIN_XZ=.gpu/<dir>/cube_kernels.xz source scripts/gpu/gpu_bin.sh
# The GPU machine has no Rust and its checkout no history: the executable is built
# and packed on a development machine, with a COMMIT file beside it naming the commit;
# the machine, the date and that commit go to $OUT/gpu.txt.
BIN_XZ=${BIN_XZ:?set BIN_XZ to the xz-packed cube_kernels executable} python3 - <<'PY'
import lzma, os, shutil
with lzma.open(os.environ["BIN_XZ"]) as packed, open(".gpu/cube_kernels", "wb") as out:
    shutil.copyfileobj(packed, out)
PY
chmod +x .gpu/cube_kernels
{
  date -u
  echo "built from commit $(cat "$(dirname "$BIN_XZ")/COMMIT" 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
} > "$OUT/gpu.txt"
